"""Face crops of the benchmark: the aligned crop (default) and syncnet_python's box crop.

**Aligned crop** (:func:`alignment_matrices`, :func:`warp_faces`; the protocol of EAT's public MEAD
evaluation): per frame, a similarity transform (rotation, uniform scale, translation; Umeyama
least squares) brings the rigid landmarks :data:`ALIGN_POINTS` (nose and both eyes, which move
little with speech and expression) onto a fixed template, the canonical mean face's x, y
(:func:`face_template`), and the frame is warped with it (OpenCV ``warpAffine``, bilinear). The
template scales with the crop side, so the same face layout is cut at 128 (image metrics, LMD) and
224 (SyncNet, emotion); :func:`rescale_matrices` turns one size's matrices into another's.

**Own-face alignment** (the benchmark's default, ``crop: own``): every video is aligned by its own
landmarks with :func:`similarity_to_template` (skimage's estimate, template -> frame, inverted)
onto :func:`crop_template` (the mean face, or EAT's ``base_68`` shipped as package data), gaps
filled by :func:`fill_missing_matrices`, jitter removed by :func:`smooth_matrices` and
:func:`register_to_median`, warped by :func:`warp_faces` (``antialias``) or
:func:`warp_faces_skimage` (EAT's warp).

**Box crop** (:func:`box_matrices`, as a matrix for :func:`warp_faces`, or :func:`face_crop`) follows syncnet_python's ``run_pipeline.crop_video``: per frame a face box of half-size
``bs = max(w, h) / 2`` around its centre ``(mx, my)`` is smoothed over time with a median
filter (kernel 13; edges repeated rather than zero-padded), the crop spans columns ``mx -+ bs (1 + cs)`` and rows ``my - bs`` to
``my + bs (1 + 2 cs)`` with ``cs = 0.4`` (the mouth and chin sit in the lower half), outside
pixels are grey 110, and the crop is resized to 224 x 224. emoface takes the face box from the
68 landmarks (x, y extent) instead of the S3FD detector, so that every method - and the ground
truth - is cropped by the same rule from landmarks of the same extractor.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.ndimage import median_filter
from torch import Tensor
from torchvision.ops import roi_align

from emoface.geometry.alignment import umeyama
from emoface.geometry.landmarks import MEAN_FACE_NP

PAD_VALUE = 110.0
"""Grey level the reference pads frames with (0-255 units)."""

ALIGN_POINTS: tuple[int, ...] = tuple(range(27, 48))
"""iBUG-68 points the aligned crop is fitted on: nose (27-35) and both eyes (36-47). EAT's
evaluation slices 27:45, which drops half of the left eye; both eyes keep the fit symmetric."""

TEMPLATE_EYE_DISTANCE = 0.45
"""Outer-eye-corner distance (36-45) of the template as a fraction of the crop side: the face's
landmarks then span about 0.66 of the side, centred, with forehead above and chin room below."""


def face_template(size: int, eye_distance: float = TEMPLATE_EYE_DISTANCE) -> np.ndarray:
    """The aligned crop's template: the mean face's x, y in pixels of a ``size`` crop, ``(68, 2)`` float64.

    The mean face (outer eye corners 1 apart) is scaled to ``eye_distance * size`` and the centre
    of its landmark extent put at the crop's centre. Pixel centres are at integer coordinates
    (OpenCV's convention), so unit coordinate ``u`` is pixel ``u * size - 0.5``.
    """
    xy = MEAN_FACE_NP[:, :2].astype(np.float64)
    centre = (xy.min(0) + xy.max(0)) / 2
    unit = 0.5 + eye_distance * (xy - centre)
    return unit * size - 0.5


def alignment_matrices(
    landmarks: Tensor | np.ndarray, size: int, eye_distance: float = TEMPLATE_EYE_DISTANCE
) -> np.ndarray:
    """Per-frame similarity ``(T, 2, 3)`` float64 mapping frame pixels onto the template of a ``size`` crop.

    Args:
        landmarks: ``(T, 68, D)`` (D >= 2) in the frames' pixels.
        size: crop side.
        eye_distance: see :func:`face_template`.

    Raises:
        ValueError: landmarks of the wrong shape or not finite.
    """
    points = torch.as_tensor(np.asarray(landmarks, dtype=np.float64))
    if points.ndim != 3 or points.shape[1] != 68 or points.shape[2] < 2:
        raise ValueError(f"expected (T, 68, D) landmarks, got {tuple(points.shape)}")
    if not torch.isfinite(points[..., :2]).all():
        raise ValueError("landmarks contain NaN or inf; the aligned crop needs a face in every frame")
    pts = points[:, list(ALIGN_POINTS), :2]
    target = torch.from_numpy(face_template(size, eye_distance)[list(ALIGN_POINTS)])
    rotation, translation, scale = umeyama(pts, target.expand_as(pts))  # target ~ s R p + t
    matrices = torch.cat([scale[:, None, None] * rotation, translation[:, :, None]], -1)
    return matrices.numpy()


def box_matrices(boxes: Tensor, size: int, crop_scale: float = 0.4) -> np.ndarray:
    """syncnet_python's box crop (see :func:`face_crop`) as per-frame affine matrices ``(T, 2, 3)`` float64.

    Args:
        boxes: ``(T, 3)`` :func:`face_boxes` ``(mx, my, bs)``.
    """
    mx, my, bs = boxes.double().numpy().T
    x0, x1 = mx - bs * (1 + crop_scale), mx + bs * (1 + crop_scale)
    y0, y1 = my - bs, my + bs * (1 + 2 * crop_scale)
    kx, ky = size / (x1 - x0), size / (y1 - y0)
    out = np.zeros((len(mx), 2, 3))
    # Crop edges x0 -> -0.5 and x1 -> size - 0.5 (pixel centres at integers, edges at half pixels).
    out[:, 0, 0], out[:, 0, 2] = kx, -0.5 - kx * x0
    out[:, 1, 1], out[:, 1, 2] = ky, -0.5 - ky * y0
    return out


def rescale_matrices(matrices: np.ndarray, from_size: int, to_size: int) -> np.ndarray:
    """Matrices of a ``from_size`` crop turned into those of the same crop at ``to_size``."""
    k = to_size / from_size
    out = np.array(matrices, dtype=np.float64, copy=True)
    out[:, :, :2] *= k
    out[:, :, 2] = k * (out[:, :, 2] + 0.5) - 0.5
    return out


def transform_points(points: Tensor | np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """Landmarks ``(T, 68, D)`` moved into the crop: x, y by the matrix, depth (if any) by its scale."""
    pts = np.asarray(points, dtype=np.float64)
    out = pts.copy()
    out[..., :2] = pts[..., :2] @ matrices[:, :, :2].transpose(0, 2, 1) + matrices[:, None, :, 2]
    if pts.shape[-1] > 2:
        out[..., 2:] *= np.sqrt(np.abs(np.linalg.det(matrices[:, :, :2])))[:, None, None]
    return out.astype(np.float32)


def warp_faces(
    frames: Tensor, matrices: np.ndarray, size: int, border: str = "replicate", antialias: bool = False
) -> Tensor:
    """Warp frame ``t`` with ``matrices[t]`` into a ``size`` crop (OpenCV ``warpAffine``, bilinear).

    Args:
        frames: ``(T, 3, H, W)`` uint8 RGB, or ``(1, 3, H, W)`` for one frame warped ``T`` times.
        matrices: ``(T, 2, 3)`` frame pixels -> crop pixels.
        size: crop side.
        border: ``"replicate"`` (edge pixels: no hard edge for LPIPS/FID to see) or ``"pad"``
            (syncnet_python's grey 110).
        antialias: where a matrix shrinks the frame (scale < 1), first shrink the frame by that
            scale with OpenCV's ``INTER_AREA`` and warp the rest: bilinear sampling alone aliases
            when shrinking, so a large video would give a crop sharper and noisier than a small
            video of the same face.

    Returns:
        ``(T, 3, size, size)`` uint8.
    """
    import cv2

    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[1] != 3:
        raise ValueError(f"expected (T, 3, H, W) uint8 frames, got {tuple(frames.shape)} {frames.dtype}")
    if frames.shape[0] not in (1, len(matrices)):
        raise ValueError(f"{frames.shape[0]} frames for {len(matrices)} matrices")
    images = frames.permute(0, 2, 3, 1).numpy()
    mode = cv2.BORDER_REPLICATE if border == "replicate" else cv2.BORDER_CONSTANT
    pad = (int(PAD_VALUE),) * 3
    out = []
    for t, m in enumerate(matrices):
        image, m = images[min(t, len(images) - 1)], np.asarray(m, np.float64)
        scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
        if antialias and scale < 0.99:
            h, w = image.shape[:2]
            small = (max(1, round(w * scale)), max(1, round(h * scale)))
            image = cv2.resize(image, small, interpolation=cv2.INTER_AREA)
            kx, ky = small[0] / w, small[1] / h  # frame -> shrunk frame, pixel centres at integers
            shrink = np.array([[kx, 0.0, 0.5 * kx - 0.5], [0.0, ky, 0.5 * ky - 0.5]])
            m = compose(np.linalg.inv(np.vstack([shrink, [0.0, 0.0, 1.0]]))[:2], m)
        out.append(cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=mode, borderValue=pad))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


def face_boxes(landmarks: Tensor, smooth: int = 13) -> Tensor:
    """Face box centre and half-size per frame from landmarks, median-smoothed over time.

    Args:
        landmarks: ``(T, 68, D)`` with x, y in pixels.
        smooth: odd median-filter kernel over frames (1: none); the reference uses 13.

    Returns:
        ``(T, 3)`` float32 ``(mx, my, bs)``.
    """
    xy = landmarks[..., :2].detach().double().cpu()
    lo, hi = xy.min(-2).values, xy.max(-2).values
    centre = (lo + hi) / 2
    half = (hi - lo).max(-1).values / 2
    boxes = torch.cat([centre, half[:, None]], -1).numpy()
    if smooth > 1 and boxes.shape[0] > 1:
        # Edge frames repeat (mode "nearest") instead of the reference's zero padding, which would
        # shrink the boxes of the first and last 6 frames.
        boxes = median_filter(boxes, size=(min(smooth, boxes.shape[0]), 1), mode="nearest")
    return torch.from_numpy(np.ascontiguousarray(boxes)).float()


def face_crop(
    frames: Tensor,
    landmarks: Tensor | None = None,
    size: int = 224,
    crop_scale: float = 0.4,
    smooth: int = 13,
    boxes: Tensor | None = None,
) -> Tensor:
    """Crop and resize the face in every frame of one video (syncnet_python's rule).

    Args:
        frames: ``(T, 3, H, W)`` uint8 or [0, 1] RGB.
        landmarks: ``(T, 68, D)`` landmarks in the frames' pixels; ``None`` takes the whole frame
            as the face box (frames that are already face crops, e.g. emoface's 256 px cache).
        size: output side (224 for SyncNet).
        crop_scale: the reference's ``cs`` (0.4).
        smooth: median-filter kernel over frames for the box (13 in the reference).
        boxes: ``(T, 3)`` precomputed :func:`face_boxes` (overrides ``landmarks``), e.g. the ground
            truth's boxes applied to another method's frames so every method is cut alike.

    Returns:
        ``(T, 3, size, size)`` of the input dtype.
    """
    t, _, h, w = frames.shape
    uint8 = frames.dtype == torch.uint8
    x = frames.float() if uint8 else frames.float() * 255.0
    if boxes is not None:
        boxes = boxes.float()
    elif landmarks is None:
        # Whole-frame box, so the reference's rule reproduces a centred, slightly enlarged crop.
        boxes = torch.tensor([[w / 2, h / 2, max(h, w) / 2]], dtype=torch.float32).expand(t, 3)
    else:
        boxes = face_boxes(landmarks, smooth)
    mx, my, bs = boxes.to(x.device).unbind(-1)
    rois = torch.stack(
        [
            torch.arange(t, dtype=torch.float32, device=x.device),
            mx - bs * (1 + crop_scale),
            my - bs,
            mx + bs * (1 + crop_scale),
            my + bs * (1 + 2 * crop_scale),
        ],
        -1,
    )
    # roi_align samples 0 outside the frame; shifting by the pad value fills it with grey 110.
    out = roi_align(x - PAD_VALUE, rois, output_size=size, spatial_scale=1.0, sampling_ratio=2, aligned=True)
    out = (out + PAD_VALUE).clamp(0, 255)
    return out.round().to(torch.uint8) if uint8 else out / 255.0


# ------------------------------------------------------------------------------ own-face alignment

TEMPLATES = ("mean_face", "eat")
"""Templates of the own-face crop: emoface's mean face (:func:`face_template`) or EAT's ``base_68``."""

EAT_ALIGN_POINTS: tuple[int, ...] = tuple(range(27, 45))
"""The points EAT's evaluation fits its similarity on (``landmarks[27:45]``: nose and 9 eye points)."""

EAT_WARP_SIZE, EAT_IMAGE_SIZE, EAT_SYNC_WARP_SIZE, EAT_SYNC_SIZE = 163, 128, 256, 224
"""EAT's crops: a 163 warp cut ``[1:129, 1:129]`` (128) and a 256 warp cut ``[1:225, 1:225]`` (224)."""


def eat_template_points() -> np.ndarray:
    """EAT's 68-point template (its ``base_68.npy``) in pixels of a 163 x 163 frame, ``(68, 2)`` float64.

    Shipped as package data (``emoface/data/eat_template_68.txt``, from yuangan/evaluation_eat).
    """
    from importlib import resources

    text = resources.files("emoface").joinpath("data", "eat_template_68.txt").read_text()
    points = np.loadtxt(text.splitlines(), dtype=np.float64)
    if points.shape != (68, 2):
        raise ValueError(f"eat_template_68.txt: expected 68 x,y rows, got {points.shape}")
    return points


def crop_template(
    name: str, size: int, purpose: str = "image", eye_distance: float = TEMPLATE_EYE_DISTANCE
) -> np.ndarray:
    """Template points ``(68, 2)`` float64 in pixels of a ``size`` crop (pixel centres at integers).

    Args:
        name: ``"mean_face"`` (:func:`face_template`; one layout at every size) or ``"eat"``: EAT's
            template, for ``purpose="image"`` shifted by the ``[1:129]`` cut of its 163 warp (its 128
            crop), for ``"sync"`` moved so points 27-44 centre at (112, 112) of a 256 warp and cut
            ``[1:225]`` (its 224 crop); other sizes scale those crops.
        size: crop side.
        purpose: ``"image"`` (PSNR, SSIM, LPIPS, FID, LMD) or ``"sync"`` (SyncNet, emotion).
        eye_distance: the mean face's outer-eye-corner distance / side.
    """
    if name == "mean_face":
        return face_template(size, eye_distance)
    if name != "eat":
        raise ValueError(f"unknown template {name!r}; choose from {TEMPLATES}")
    points = eat_template_points()
    if purpose == "image":
        base, side = points - 1.0, EAT_IMAGE_SIZE
    elif purpose == "sync":
        centre = points[list(EAT_ALIGN_POINTS)].mean(0)
        base, side = points - centre + EAT_SYNC_SIZE / 2 - 1.0, EAT_SYNC_SIZE
    else:
        raise ValueError(f"purpose must be 'image' or 'sync', got {purpose!r}")
    k = size / side
    return (base + 0.5) * k - 0.5


def similarity_to_template(landmarks: np.ndarray, template: np.ndarray, points: Sequence[int]) -> np.ndarray:
    """Per-frame similarity ``(T, 2, 3)`` float64 mapping frame pixels onto ``template``, fitted as skimage does.

    ``skimage.transform.SimilarityTransform.estimate(template[points], landmarks[points])`` (Umeyama
    least squares from the template *to* the frame, EAT's call) gives the warp's inverse map; its
    inverse is returned, so :func:`warp_faces` with these matrices equals ``skimage.transform.warp``
    with that estimate (both sample the frame at the template->frame image of each crop pixel).

    Args:
        landmarks: ``(T, 68, D)`` (D >= 2) in frame pixels, finite.
        template: ``(68, 2)`` crop pixels.
        points: the fitted landmark indices.
    """
    pts = torch.as_tensor(np.asarray(landmarks, dtype=np.float64)[:, list(points), :2])
    target = torch.as_tensor(np.asarray(template, dtype=np.float64)[list(points)]).expand_as(pts)
    rotation, translation, scale = umeyama(target, pts)  # frame ~ s R template + t
    inverse_rotation = rotation.transpose(-1, -2) / scale[:, None, None]
    matrices = torch.cat([inverse_rotation, -(inverse_rotation @ translation[:, :, None])], -1)
    return matrices.numpy()


def smooth_matrices(matrices: np.ndarray, sigma: float) -> np.ndarray:
    """Similarities ``(T, 2, 3)`` low-passed over time (Gaussian of ``sigma`` frames, edges repeated).

    A similarity's matrix is linear in ``(a, b, tx, ty)`` (``[[a, -b, tx], [b, a, ty]]``), so the
    average of similarities is one: smoothing keeps every crop a similarity of its frame while
    detector jitter stops shaking it. ``sigma <= 0`` or one frame: unchanged.
    """
    from scipy.ndimage import gaussian_filter1d

    if sigma <= 0 or len(matrices) < 2:
        return np.asarray(matrices, dtype=np.float64)
    return gaussian_filter1d(np.asarray(matrices, dtype=np.float64), sigma, axis=0, mode="nearest")


def fill_missing_matrices(matrices: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Matrices ``(T, 2, 3)`` of frames without a face (``found`` False) linearly interpolated in time
    from the nearest frames with one (held constant before the first and after the last)."""
    found = np.asarray(found, dtype=bool)
    if found.all() or not found.any():
        return np.asarray(matrices, dtype=np.float64)
    t = np.arange(len(found))
    flat = np.asarray(matrices, dtype=np.float64).reshape(len(found), -1)
    out = np.stack([np.interp(t, t[found], flat[found, j]) for j in range(flat.shape[1])], 1)
    return out.reshape(matrices.shape)


def warp_faces_skimage(frames: Tensor, matrices: np.ndarray, size: int) -> Tensor:
    """:func:`warp_faces` with ``skimage.transform.warp`` (bilinear, order 1; outside the frame 0), EAT's warp.

    skimage warps ``img_as_float`` images (0-1); the result is brought back to uint8 by rounding ``x 255``.

    Args:
        frames: ``(T, 3, H, W)`` uint8 RGB (or ``(1, 3, H, W)``, one frame warped ``T`` times).
        matrices: ``(T, 2, 3)`` frame pixels -> crop pixels.
    """
    from skimage.transform import AffineTransform, warp

    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[1] != 3:
        raise ValueError(f"expected (T, 3, H, W) uint8 frames, got {tuple(frames.shape)} {frames.dtype}")
    images = frames.permute(0, 2, 3, 1).numpy()
    out = []
    for t, m in enumerate(matrices):
        forward = np.vstack([np.asarray(m, np.float64), [0.0, 0.0, 1.0]])
        image = images[min(t, len(images) - 1)].astype(np.float64) / 255.0
        warped = warp(image, AffineTransform(matrix=forward).inverse, output_shape=(size, size), order=1,
                      mode="constant", cval=0.0, preserve_range=True)  # fmt: skip
        out.append(np.clip(np.round(warped * 255.0), 0, 255).astype(np.uint8))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


def register_to_median(crops: np.ndarray, mask: np.ndarray, iterations: int = 50) -> np.ndarray:
    """Per-frame similarity ``(T, 2, 3)`` float64 moving each crop onto the video's median crop.

    Each grey crop is registered to the per-pixel median of all of them by OpenCV's ECC
    (``findTransformECC``, affine motion inside ``mask``, then the nearest similarity); a frame where
    ECC does not converge keeps the identity. Used by the own-face alignment to remove the
    detector's per-frame jitter with the image itself (the eyes and nose of one video change little
    from frame to frame, so their pixels pin the crop far more precisely than 68 detected points).

    Args:
        crops: ``(T, S, S, 3)`` uint8.
        mask: ``(S, S)`` uint8, 1 where the registration looks (e.g. the template's upper face).
        iterations: ECC iterations per frame.

    Returns:
        ``(T, 2, 3)`` crop pixels -> median-crop pixels.
    """
    import cv2

    grey = crops.astype(np.float32).mean(-1)
    reference = np.median(grey, 0).astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, iterations, 1e-5)
    out = np.tile(np.eye(2, 3), (len(crops), 1, 1))
    for t, image in enumerate(grey):
        warp = np.eye(2, 3, dtype=np.float32)
        try:
            _, warp = cv2.findTransformECC(reference, image, warp, cv2.MOTION_AFFINE, criteria, mask, 3)
        except cv2.error:  # no convergence (e.g. a blank frame): keep the landmark alignment
            continue
        # warp maps reference pixels to this crop's; its nearest similarity, inverted, moves the crop onto the reference
        a, b = (warp[0, 0] + warp[1, 1]) / 2, (warp[1, 0] - warp[0, 1]) / 2
        similarity = np.array([[a, -b, warp[0, 2]], [b, a, warp[1, 2]], [0.0, 0.0, 1.0]], np.float64)
        out[t] = np.linalg.inv(similarity)[:2]
    return out


def compose(first: np.ndarray, then: np.ndarray) -> np.ndarray:
    """Affine matrices ``(T, 2, 3)`` applying ``first`` then ``then`` (either may be ``(2, 3)``, broadcast)."""
    a, b = np.asarray(then, np.float64), np.asarray(first, np.float64)
    linear = a[..., :2] @ b[..., :2]
    shift = (a[..., :2] @ b[..., 2:])[..., 0] + a[..., 2]
    return np.concatenate([linear, shift[..., None]], -1)
