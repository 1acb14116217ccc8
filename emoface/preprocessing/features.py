"""Per-clip feature extraction: audio features, landmark gaps, the face crop and head pose."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import python_speech_features as psf
import torch

from emoface.geometry.alignment import invert_similarity, umeyama
from emoface.geometry.landmarks import RIGID, mean_face
from emoface.geometry.rotations import matrix_to_euler

AUDIO_ROWS_PER_SECOND = 100
NUM_MFCC = 13
NUM_FBANK = 26
AUDIO_DIM = NUM_MFCC + NUM_FBANK


class ClipFailure(Exception):
    """A clip cannot be used; ``reason`` goes to the manifest."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ----------------------------------------------------------------------------------------------
# Audio
# ----------------------------------------------------------------------------------------------
def rows_per_frame(fps: float) -> int:
    """Audio feature rows per video frame (4 at 25 fps)."""
    rows = AUDIO_ROWS_PER_SECOND / fps
    if abs(rows - round(rows)) > 1e-9:
        raise ValueError(f"fps {fps} does not divide {AUDIO_ROWS_PER_SECOND} Hz audio features")
    return round(rows)


def audio_features(wave: np.ndarray, sample_rate: int, num_frames: int, fps: float) -> np.ndarray:
    """13 MFCC (python_speech_features defaults, the SyncNet convention) + 26 log-filterbank energies.

    Args:
        wave: float32 ``(S,)`` mono; ``S`` should be ``num_frames * sample_rate / fps``.
        sample_rate: Hz (16000).
        num_frames: video frames ``T`` the features must cover.
        fps: video frame rate (25).

    Returns:
        float32 ``(rows_per_frame * T, 39)``: row ``4t .. 4t + 3`` belongs to frame ``t``. The
        analysis frames (25 ms every 10 ms) cover ``4T - 1`` rows; the last row is repeated.
    """
    mfcc = psf.mfcc(wave, samplerate=sample_rate, numcep=NUM_MFCC, nfilt=NUM_FBANK)
    fbank = psf.logfbank(wave, samplerate=sample_rate, nfilt=NUM_FBANK)
    features = np.concatenate([mfcc, fbank], axis=1)
    rows = rows_per_frame(fps) * num_frames
    if len(features) < rows:
        features = np.concatenate([features, np.repeat(features[-1:], rows - len(features), 0)])
    return features[:rows].astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Landmark gaps
# ----------------------------------------------------------------------------------------------
def longest_run(mask: np.ndarray) -> int:
    """Length of the longest run of ``True`` in a boolean ``(T,)`` array."""
    best = run = 0
    for value in mask:
        run = run + 1 if value else 0
        best = max(best, run)
    return best


def drop_stray_faces(landmarks: np.ndarray, found: np.ndarray, max_jump: float = 1.0) -> np.ndarray:
    """Frames whose face lies far from where the video's face mostly is count as not found.

    A per-frame detector that takes each frame's largest face takes a false detection (a
    face-like pattern, another person) for the face where it misses the real one. The face's
    usual place is the median of the landmarks' centres over the frames, its size the median
    width; a frame whose centre is more than ``max_jump`` widths from it is dropped (so that
    :func:`fill_gaps` fills it from its neighbours). Meant for one face that moves less than its
    width, as a talking head does; the real face must be found in most frames.

    Args:
        landmarks: ``(T, 68, 3)``; rows where ``found`` is False are ignored.
        found: bool ``(T,)``.

    Returns:
        bool ``(T,)``: ``found`` without the stray frames.
    """
    found = np.asarray(found, dtype=bool)
    if not found.any():
        return found
    points = np.asarray(landmarks)[found, :, :2]
    centres = points.mean(axis=1)  # (F, 2)
    widths = points[..., 0].max(axis=1) - points[..., 0].min(axis=1)
    distance = np.linalg.norm(centres - np.median(centres, axis=0), axis=1)
    kept = found.copy()
    kept[np.flatnonzero(found)] = distance <= max_jump * np.median(widths)
    return kept


def fill_gaps(landmarks: np.ndarray, found: np.ndarray, max_gap: int, max_missing: float) -> np.ndarray:
    """Interpolate landmarks of frames where no face was found.

    Args:
        landmarks: ``(T, 68, 3)``; rows where ``found`` is False are ignored.
        found: bool ``(T,)``.
        max_gap: the longest run of missing frames that may be interpolated.
        max_missing: the largest fraction of missing frames allowed.

    Returns:
        ``(T, 68, 3)`` float32 with gaps filled linearly (ends held at the nearest detection).

    Raises:
        ClipFailure: no face at all, too many missing frames, or a gap longer than ``max_gap``.
    """
    num = len(found)
    missing = ~found
    if not found.any():
        raise ClipFailure("no face found in any frame")
    if missing.mean() > max_missing:
        raise ClipFailure(f"no face in {int(missing.sum())}/{num} frames (limit {max_missing:.0%})")
    gap = longest_run(missing)
    if gap > max_gap:
        raise ClipFailure(f"no face in {gap} consecutive frames (limit {max_gap})")
    if not missing.any():
        return landmarks.astype(np.float32)
    index = np.arange(num)
    flat = landmarks.reshape(num, -1)
    filled = np.stack([np.interp(index, index[found], flat[found, k]) for k in range(flat.shape[1])], 1)
    return filled.reshape(landmarks.shape).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Crop
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CropBox:
    """A square box in source-frame pixels: ``[x0, x0 + side) x [y0, y0 + side)``, resized to ``size``."""

    x0: int
    y0: int
    side: int
    size: int

    @property
    def scale(self) -> float:
        """Crop pixels per source pixel."""
        return self.size / self.side

    def as_array(self) -> np.ndarray:
        """``(4,)`` int64 ``(x0, y0, side, size)``."""
        return np.array([self.x0, self.y0, self.side, self.size], dtype=np.int64)


def stable_crop_box(landmarks: np.ndarray, size: int, crop_scale: float = 1.6, lift: float = 0.1) -> CropBox:
    """One square box for the whole clip, so the crop does not jitter.

    The centre is the median over frames of the landmark bounding-box centres (lifted by
    ``lift`` of the face height so the forehead fits); the side is ``crop_scale`` times the
    largest face extent over the clip (the face never leaves the box).

    Args:
        landmarks: ``(T, 68, >=2)`` source-frame pixels.
        size: output side in pixels.
        crop_scale: box side / face extent.
        lift: upward shift of the centre, as a fraction of the face height.
    """
    xy = landmarks[..., :2]
    low, high = xy.min(1), xy.max(1)  # (T, 2)
    extent = (high - low).max(1)  # (T,)
    centre = np.median((low + high) / 2.0, axis=0)
    centre[1] -= lift * np.median(high[:, 1] - low[:, 1])
    side = max(8, round(crop_scale * float(extent.max())))
    x0 = round(centre[0] - side / 2.0)
    y0 = round(centre[1] - side / 2.0)
    return CropBox(x0, y0, side, size)


def crop_frames(frames: np.ndarray, box: CropBox) -> np.ndarray:
    """Cut ``box`` out of each frame (black outside the frame) and resize it.

    Args:
        frames: uint8 ``(t, H, W, 3)``.

    Returns:
        uint8 ``(t, size, size, 3)``.
    """
    _, height, width, _ = frames.shape
    pad_left, pad_top = max(0, -box.x0), max(0, -box.y0)
    pad_right, pad_bottom = max(0, box.x0 + box.side - width), max(0, box.y0 + box.side - height)
    interpolation = cv2.INTER_AREA if box.side > box.size else cv2.INTER_LINEAR
    out = np.empty((len(frames), box.size, box.size, 3), dtype=np.uint8)
    for t, frame in enumerate(frames):
        if pad_left or pad_top or pad_right or pad_bottom:
            frame = cv2.copyMakeBorder(frame, pad_top, pad_bottom, pad_left, pad_right, cv2.BORDER_CONSTANT, value=0)
        x0, y0 = box.x0 + pad_left, box.y0 + pad_top
        roi = frame[y0 : y0 + box.side, x0 : x0 + box.side]
        out[t] = cv2.resize(roi, (box.size, box.size), interpolation=interpolation)
    return out


CROP_MODES = ("clip", "track")
"""Crops of :func:`~emoface.preprocessing.pipeline.extract_clip`: ``clip`` (one box per clip,
:func:`stable_crop_box`) and ``track`` (one box of fixed side per frame, :func:`tracking_crop_boxes`)."""


@dataclass(frozen=True)
class CropTrack:
    """Square boxes of one side that follow the face: frame ``t`` is
    ``[x0[t], x0[t] + side) x [y0[t], y0[t] + side)`` (sub-pixel), resized to ``size``.

    Coordinates are continuous source pixels (pixel ``i`` covers ``[i, i + 1)``), the convention of
    :func:`landmarks_to_crop` and of ``cv2.resize`` in :func:`crop_frames`.
    """

    x0: np.ndarray  # (T,) float64
    y0: np.ndarray  # (T,) float64
    side: float
    size: int

    @property
    def scale(self) -> float:
        """Crop pixels per source pixel."""
        return self.size / self.side

    def __len__(self) -> int:
        return len(self.x0)

    def as_array(self) -> np.ndarray:
        """``(T, 4)`` float32 ``(x0, y0, side, size)`` per frame."""
        num = len(self.x0)
        return np.stack([self.x0, self.y0, np.full(num, self.side), np.full(num, float(self.size))], 1).astype(np.float32)

    def frames(self, start: int, stop: int) -> CropTrack:
        """The boxes of frames ``start .. stop - 1`` (frames past the last box keep the last box)."""
        index = np.minimum(np.arange(start, stop), len(self.x0) - 1)
        return CropTrack(self.x0[index], self.y0[index], self.side, self.size)


def _gaussian_smooth(values: np.ndarray, sigma: float) -> np.ndarray:
    """Smooth ``(T, D)`` along time with a Gaussian of ``sigma`` frames (edges held)."""
    if sigma <= 0 or len(values) < 2:
        return values.astype(np.float64)
    radius = int(math.ceil(3.0 * sigma))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    padded = np.concatenate([np.repeat(values[:1], radius, 0), values, np.repeat(values[-1:], radius, 0)])
    return np.stack([np.convolve(padded[:, d], taps, mode="valid") for d in range(values.shape[1])], 1)


def tracking_crop_boxes(
    landmarks: np.ndarray,
    size: int,
    crop_scale: float = 1.6,
    lift: float = 0.1,
    smoothing: float = 5.0,
    frame_size: tuple[int, int] | None = None,
) -> CropTrack:
    """Per-frame boxes of one side that follow the face: for heads that turn, tilt and move.

    :func:`stable_crop_box` sizes one box for the union of the clip's faces; when the head moves
    a lot that box grows past the frame (black borders) and the face shrinks in it. Here the
    side is ``crop_scale`` times a robust face size (the median over frames of the face extent,
    so the face keeps its size in every crop of the clip), and each frame's centre follows the
    face's bounding-box centre smoothed over time (a Gaussian of ``smoothing`` frames, so the
    crop glides rather than jitters), lifted by ``lift`` of the median face height. Where the
    box fits in the frame it is moved inside it rather than padded.

    Args:
        landmarks: ``(T, 68, >=2)`` source-frame pixels.
        size: output side in pixels.
        crop_scale: box side / median face extent.
        lift: upward shift of the centre, as a fraction of the median face height.
        smoothing: standard deviation of the temporal Gaussian, in frames (0: none).
        frame_size: ``(height, width)`` of the source frames; ``None``: no clamping.

    Returns:
        :class:`CropTrack` with ``T`` boxes.
    """
    xy = np.asarray(landmarks, dtype=np.float64)[..., :2]
    low, high = xy.min(1), xy.max(1)  # (T, 2)
    extent = (high - low).max(1)  # (T,)
    side = max(8.0, crop_scale * float(np.median(extent)))
    centre = _gaussian_smooth((low + high) / 2.0, smoothing)  # (T, 2)
    centre[:, 1] -= lift * float(np.median(high[:, 1] - low[:, 1]))
    x0, y0 = centre[:, 0] - side / 2.0, centre[:, 1] - side / 2.0
    if frame_size is not None:
        height, width = frame_size
        if side <= width:
            x0 = np.clip(x0, 0.0, width - side)
        if side <= height:
            y0 = np.clip(y0, 0.0, height - side)
    return CropTrack(x0, y0, side, size)


def crop_frames_tracked(frames: np.ndarray, track: CropTrack) -> np.ndarray:
    """Cut each frame's box of ``track`` out (sub-pixel, black outside the frame) and resize it.

    Consistent with :func:`crop_frames` (equal to it for integer boxes when enlarging): crop
    pixel ``d`` samples source position ``x0 + (d + 0.5) / scale`` (continuous coordinates).
    When shrinking, each frame is first reduced by area averaging (no aliasing), then sampled
    bilinearly.

    Args:
        frames: uint8 ``(t, H, W, 3)``.
        track: ``t`` boxes (:meth:`CropTrack.frames`).

    Returns:
        uint8 ``(t, size, size, 3)``.
    """
    if len(track) != len(frames):
        raise ValueError(f"{len(frames)} frames but {len(track)} crop boxes")
    _, height, width, _ = frames.shape
    scale = track.scale
    out = np.empty((len(frames), track.size, track.size, 3), dtype=np.uint8)
    for t, frame in enumerate(frames):
        fx = fy = 1.0
        if scale < 1.0:  # shrink by area first: bilinear sampling alone would alias
            reduced = (max(1, round(width * scale)), max(1, round(height * scale)))
            frame = cv2.resize(frame, reduced, interpolation=cv2.INTER_AREA)
            fx, fy = reduced[0] / width, reduced[1] / height
        # Inverse map: crop pixel d -> (reduced) source pixel index.
        matrix = np.array(
            [
                [fx / scale, 0.0, (track.x0[t] + 0.5 / scale) * fx - 0.5],
                [0.0, fy / scale, (track.y0[t] + 0.5 / scale) * fy - 0.5],
            ]
        )
        out[t] = cv2.warpAffine(frame, matrix, (track.size, track.size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)  # fmt: skip
    return out


def crop_padding(box: CropBox | CropTrack, frame_size: tuple[int, int]) -> np.ndarray:
    """Fraction of each crop's area that lies outside a ``(height, width)`` frame ``(T,)`` (``(1,)``
    for a :class:`CropBox`): zero when the crop is all image, no black border."""
    height, width = frame_size
    if isinstance(box, CropBox):
        x0, y0, side = np.array([box.x0], float), np.array([box.y0], float), float(box.side)
    else:
        x0, y0, side = box.x0, box.y0, box.side
    inside_x = np.clip(np.minimum(x0 + side, width) - np.maximum(x0, 0.0), 0.0, None)
    inside_y = np.clip(np.minimum(y0 + side, height) - np.maximum(y0, 0.0), 0.0, None)
    share = 1.0 - inside_x * inside_y / side**2
    return np.where(share < 1e-9, 0.0, share)  # a box clamped to the edge is all image, whatever the rounding


def landmarks_to_crop(landmarks: np.ndarray, box: CropBox | CropTrack) -> np.ndarray:
    """Source-frame landmarks ``(T, 68, 3)`` (or ``(..., 68, 3)`` for a :class:`CropBox`) -> crop
    pixels (z scaled like x and y); a :class:`CropTrack` moves frame ``t`` by its own box."""
    out = landmarks.astype(np.float64).copy()
    if isinstance(box, CropTrack):
        if len(out) != len(box):
            raise ValueError(f"{len(out)} frames of landmarks but {len(box)} crop boxes")
        out[..., 0] -= box.x0[:, None]
        out[..., 1] -= box.y0[:, None]
    else:
        out[..., 0] -= box.x0
        out[..., 1] -= box.y0
    return (out * box.scale).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Head pose
# ----------------------------------------------------------------------------------------------
def estimate_pose(landmarks: np.ndarray) -> dict[str, np.ndarray]:
    """Head pose by Umeyama alignment of the rigid landmarks to the canonical mean face.

    Args:
        landmarks: ``(T, 68, 3)`` pixels (x, y, depth z).

    Returns:
        float32 arrays ``rotation (T, 3, 3)``, ``euler (T, 3)`` (yaw, pitch, roll) degrees,
        ``translation (T, 3)`` pixels, ``scale (T,)`` pixels per canonical unit, and
        ``normalized_landmarks (T, 68, 3)`` (all 68 points brought back through the inverse
        similarity: pose removed, expression kept).
    """
    points = torch.from_numpy(np.asarray(landmarks, dtype=np.float64))
    canonical = mean_face(dtype=torch.float64)
    rigid = list(RIGID)
    rotation, translation, scale = umeyama(canonical[rigid], points[:, rigid])
    normalized = invert_similarity(points, rotation, translation, scale)
    return {
        "rotation": rotation.float().numpy(),
        "euler": matrix_to_euler(rotation).float().numpy(),
        "translation": translation.float().numpy(),
        "scale": scale.float().numpy(),
        "normalized_landmarks": normalized.float().numpy(),
    }
