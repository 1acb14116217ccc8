"""Functional forms of emoface's metrics (pure functions, per-video results).

Shapes: ``B`` videos, ``T`` frames, ``H x W`` pixels. Videos are ``(B, T, 3, H, W)`` RGB, either
uint8 (0-255) or floating point in [0, 1]; a 4D ``(B, 3, H, W)`` input is a batch of one-frame
videos. Every ``*_per_frame`` function returns ``(B, T)`` and the per-video form returns the mean
over frames ``(B,)``; the Metric classes in :mod:`emoface.metrics` average those over videos.

Reference settings (the equality tests pin them):
    * PSNR = scikit-image ``peak_signal_noise_ratio(target, pred, data_range=R)`` per frame on the
      whole RGB frame, ``R`` = 255 for uint8 and 1.0 for floats unless given.
    * SSIM = scikit-image ``structural_similarity(target, pred, channel_axis=-1, data_range=R)``
      per frame with its defaults: 7 x 7 uniform window, sample covariance, K1 = 0.01, K2 = 0.03,
      mean over the valid (un-padded) region, then over the 3 channels.
    * FID = pytorch-fid's ``calculate_frechet_distance`` on 2048-d InceptionV3 pool features.
    * LSE-C / LSE-D / AV offset = joonson/syncnet_python's ``SyncNetInstance.evaluate``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import python_speech_features
import torch
import torch.nn.functional as F
from scipy.signal import resample_poly
from torch import Tensor

from emoface.emotions import EMOTIONS
from emoface.geometry.alignment import apply_similarity, umeyama
from emoface.geometry.landmarks import FACE_WITHOUT_MOUTH, MOUTH
from emoface.geometry.rotations import angular_error, euler_to_matrix, geodesic_angle

SYNCNET_SAMPLE_RATE = 16000
SYNCNET_FPS = 25
SYNCNET_WINDOW = 5
"""Video frames per SyncNet window."""
SYNCNET_MFCC_WINDOW = 20
"""MFCC columns (100 Hz) per SyncNet audio window; frame ``v`` takes columns ``[4v, 4v + 20)``."""
INT16_SCALE = 32768.0
"""The reference reads 16-bit PCM wav files, so its MFCC see samples in int16 units."""


# ----------------------------------------------------------------------------- helpers
def as_videos(videos: Tensor) -> Tensor:
    """``(B, T, 3, H, W)`` view of a batch of videos (a 4D batch of images becomes ``T = 1``)."""
    if videos.ndim == 4:
        videos = videos.unsqueeze(1)
    if videos.ndim != 5 or videos.shape[2] != 3:
        raise ValueError(f"expected videos (B, T, 3, H, W), got {tuple(videos.shape)}")
    return videos


def default_data_range(frames: Tensor) -> float:
    """255 for uint8 frames, 1.0 for floating point frames in [0, 1]."""
    return 255.0 if frames.dtype == torch.uint8 else 1.0


def to_unit_range(frames: Tensor) -> Tensor:
    """uint8 -> float32 / 255; floats are returned as float32 unchanged (assumed in [0, 1])."""
    return frames.float() / 255.0 if frames.dtype == torch.uint8 else frames.float()


def _check_pair(preds: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    preds, target = as_videos(preds), as_videos(target)
    if preds.shape != target.shape:
        raise ValueError(f"preds {tuple(preds.shape)} and target {tuple(target.shape)} differ in shape")
    return preds, target


# ----------------------------------------------------------------------------- PSNR / SSIM
def psnr_per_frame(preds: Tensor, target: Tensor, data_range: float | None = None) -> Tensor:
    """PSNR of each frame in dB, computed in float64 as scikit-image does.

    Args:
        preds: ``(B, T, 3, H, W)`` generated frames.
        target: ``(B, T, 3, H, W)`` ground-truth frames (same dtype convention).
        data_range: value range; default 255 for uint8 and 1.0 for floats.

    Returns:
        ``(B, T)`` float64; ``inf`` for identical frames (as scikit-image).
    """
    preds, target = _check_pair(preds, target)
    r = default_data_range(target) if data_range is None else float(data_range)
    mse = (preds.double() - target.double()).pow(2).mean(dim=(-3, -2, -1))
    return 10.0 * torch.log10(r**2 / mse)


def ssim_per_frame(
    preds: Tensor,
    target: Tensor,
    data_range: float | None = None,
    win_size: int = 7,
    k1: float = 0.01,
    k2: float = 0.03,
) -> Tensor:
    """Mean SSIM of each frame (scikit-image's ``structural_similarity`` defaults, per channel).

    Args:
        preds: ``(B, T, 3, H, W)``.
        target: ``(B, T, 3, H, W)``.
        data_range: value range; default 255 for uint8 and 1.0 for floats.
        win_size: side of the uniform window (odd).
        k1: luminance constant.
        k2: contrast constant.

    Returns:
        ``(B, T)`` float64.
    """
    preds, target = _check_pair(preds, target)
    if win_size % 2 != 1 or min(target.shape[-2:]) < win_size:
        raise ValueError(f"win_size must be odd and <= the frame size, got {win_size}")
    r = default_data_range(target) if data_range is None else float(data_range)
    b, t, c, h, w = target.shape
    x = target.double().reshape(b * t * c, 1, h, w)
    y = preds.double().reshape(b * t * c, 1, h, w)
    # Valid box filtering == scikit-image's uniform_filter on the region it keeps after cropping.
    stack = torch.cat([x, y, x * x, y * y, x * y], 1)
    ux, uy, uxx, uyy, uxy = F.avg_pool2d(stack, win_size, stride=1).unbind(1)
    cov_norm = win_size**2 / (win_size**2 - 1)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1, c2 = (k1 * r) ** 2, (k2 * r) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return s.mean(dim=(-2, -1)).reshape(b, t, c).mean(-1)


def psnr(preds: Tensor, target: Tensor, data_range: float | None = None) -> Tensor:
    """Per-video PSNR ``(B,)``: the mean over frames of :func:`psnr_per_frame`."""
    return psnr_per_frame(preds, target, data_range).mean(1)


def ssim(preds: Tensor, target: Tensor, data_range: float | None = None, win_size: int = 7) -> Tensor:
    """Per-video SSIM ``(B,)``: the mean over frames of :func:`ssim_per_frame`."""
    return ssim_per_frame(preds, target, data_range, win_size).mean(1)


# ----------------------------------------------------------------------------- LPIPS
def lpips_per_frame(model: torch.nn.Module, preds: Tensor, target: Tensor, frame_chunk: int = 64) -> Tensor:
    """LPIPS distance of each frame.

    Args:
        model: an ``lpips.LPIPS`` network.
        preds: ``(B, T, 3, H, W)`` uint8 or [0, 1].
        target: ``(B, T, 3, H, W)``.
        frame_chunk: frames per forward pass.

    Returns:
        ``(B, T)`` float32. Inputs are scaled to [-1, 1], the range lpips expects.
    """
    preds, target = _check_pair(preds, target)
    b, t = target.shape[:2]
    device = next(model.parameters()).device
    out = []
    for p, q in zip(preds.flatten(0, 1).split(frame_chunk), target.flatten(0, 1).split(frame_chunk)):
        p = to_unit_range(p.to(device)) * 2.0 - 1.0
        q = to_unit_range(q.to(device)) * 2.0 - 1.0
        out.append(model(p, q).flatten())
    return torch.cat(out).view(b, t)


# ----------------------------------------------------------------------------- FID
def inception_features(model: torch.nn.Module, frames: Tensor, frame_chunk: int = 64) -> Tensor:
    """2048-d pool features of pytorch-fid's InceptionV3 (``InceptionV3([3])``).

    Args:
        model: ``pytorch_fid.inception.InceptionV3`` returning the pool block.
        frames: ``(N, 3, H, W)`` uint8 or [0, 1] RGB (resized to 299 and scaled inside the model).
        frame_chunk: frames per forward pass.

    Returns:
        ``(N, 2048)`` float32.
    """
    device = next(model.parameters()).device
    out = []
    for chunk in frames.split(frame_chunk):
        pred = model(to_unit_range(chunk.to(device)))[0]
        if pred.shape[-2:] != (1, 1):
            pred = F.adaptive_avg_pool2d(pred, (1, 1))
        out.append(pred.flatten(1))
    return torch.cat(out)


def feature_statistics(features: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and unbiased covariance ``(D, D)`` (float64) of ``(N, D)`` features (pytorch-fid's)."""
    feats = np.asarray(
        features.detach().cpu().double() if isinstance(features, Tensor) else features, np.float64
    )
    return feats.mean(0), np.cov(feats, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Frechet distance between two Gaussians: pytorch-fid's ``calculate_frechet_distance``."""
    from pytorch_fid.fid_score import calculate_frechet_distance

    return float(
        calculate_frechet_distance(np.asarray(mu1), np.asarray(sigma1), np.asarray(mu2), np.asarray(sigma2))
    )


# ----------------------------------------------------------------------------- SyncNet LSE
def syncnet_mfcc(waveform: Tensor | np.ndarray, sample_rate: int = SYNCNET_SAMPLE_RATE) -> Tensor:
    """13 MFCC at 100 Hz exactly as syncnet_python computes them.

    The reference reads a 16 kHz 16-bit wav and calls ``python_speech_features.mfcc(audio, 16000)``
    (defaults: 25 ms window, 10 ms step, 26 filters, NFFT 512, pre-emphasis 0.97, lifter 22,
    log energy as coefficient 0). A float waveform in [-1, 1] is brought to int16 units first
    (``* 32768``), which only matters for coefficient 0.

    Args:
        waveform: ``(S,)`` mono float in [-1, 1].
        sample_rate: its rate; resampled (polyphase) to 16 kHz when different.

    Returns:
        ``(13, M)`` float32 with ``M = 1 + ceil((S - 400) / 160)`` at 16 kHz.
    """
    audio = np.asarray(
        waveform.detach().cpu().double() if isinstance(waveform, Tensor) else waveform, np.float64
    )
    if audio.ndim != 1:
        raise ValueError(f"expected a mono waveform (S,), got shape {audio.shape}")
    if sample_rate != SYNCNET_SAMPLE_RATE:
        g = math.gcd(int(sample_rate), SYNCNET_SAMPLE_RATE)
        audio = resample_poly(audio, SYNCNET_SAMPLE_RATE // g, int(sample_rate) // g)
    mfcc = python_speech_features.mfcc(audio * INT16_SCALE, SYNCNET_SAMPLE_RATE)
    return torch.from_numpy(np.ascontiguousarray(mfcc.T)).float()


def reference_resize(frames: Tensor, size: int) -> Tensor:
    """Resize uint8 frames exactly as syncnet_python does: OpenCV ``cv2.resize`` (``INTER_LINEAR``).

    The reference pipeline resizes each uint8 face crop with ``cv2.resize(crop, (224, 224))``;
    antialiased (or even plain) float bilinear interpolation moves LSE-D by up to 0.14, so
    every non-native input goes through OpenCV on the uint8 image, on the CPU.

    Args:
        frames: ``(T, 3, H, W)`` uint8, or float in [0, 1] (rounded to uint8 first, as a written
            video would be).
        size: output side.

    Returns:
        ``(T, 3, size, size)`` uint8 on the input's device.
    """
    import cv2

    if frames.dtype != torch.uint8:
        frames = (frames.float() * 255.0).round().clamp(0, 255).to(torch.uint8)
    images = frames.permute(0, 2, 3, 1).contiguous().cpu().numpy()  # (T, H, W, 3)
    out = np.stack([cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR) for image in images])
    return torch.from_numpy(out).permute(0, 3, 1, 2).to(frames.device)


def syncnet_video_input(frames: Tensor, image_size: int) -> Tensor:
    """Face crops as SyncNet expects them: ``(T, 3, H, W)`` RGB -> ``(T, 3, S, S)`` BGR 0-255 float.

    Frames of another size are resized with :func:`reference_resize` (OpenCV on uint8, the
    reference's own resize), so LSE equals syncnet_python's on any input size.
    """
    if frames.shape[-2:] != (image_size, image_size):
        frames = reference_resize(frames, image_size)
    x = frames.float() if frames.dtype == torch.uint8 else frames.float() * 255.0
    return x.flip(1)


def num_sync_windows(num_frames: int, num_samples: int, samples_per_frame: int = 640) -> int:
    """Windows the reference scores: ``min(T, floor(S / 640)) - 5`` (it drops the last one)."""
    return min(num_frames, num_samples // samples_per_frame) - SYNCNET_WINDOW


@torch.no_grad()
def syncnet_embeddings(
    net: torch.nn.Module,
    frames: Tensor,
    waveform: Tensor,
    sample_rate: int = SYNCNET_SAMPLE_RATE,
    batch_size: int = 50,
) -> tuple[Tensor, Tensor]:
    """Lip and audio embeddings of every 5-frame window of one video.

    Args:
        net: a :class:`emoface.networks.SyncNet` (``forward_lip``, ``forward_aud``, ``image_size``).
        frames: ``(T, 3, H, W)`` RGB face crops, uint8 or [0, 1], 25 fps.
        waveform: ``(S,)`` mono audio.
        sample_rate: audio rate.
        batch_size: windows per forward pass (results do not depend on it).

    Returns:
        ``(N, D)`` lip and ``(N, D)`` audio embeddings, ``N = num_sync_windows``.
    """
    samples_16k = round(waveform.shape[-1] * SYNCNET_SAMPLE_RATE / sample_rate)
    n = num_sync_windows(frames.shape[0], samples_16k)
    if n < 1:
        raise ValueError(
            f"a video needs at least {SYNCNET_WINDOW + 1} frames with audio for SyncNet; got "
            f"{frames.shape[0]} frames and {samples_16k / SYNCNET_SAMPLE_RATE:.3f} s of audio"
        )
    device = next(net.parameters()).device
    mfcc = syncnet_mfcc(waveform, sample_rate)  # (13, M)
    aud = mfcc.unfold(1, SYNCNET_MFCC_WINDOW, 4)[:, :n].permute(1, 0, 2).unsqueeze(1)  # (N, 1, 13, 20)
    video = syncnet_video_input(frames[: n + SYNCNET_WINDOW - 1].to(device), net.image_size)  # (T', 3, S, S)
    lips, auds = [], []
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        idx = torch.arange(start, stop, device=device)[:, None] + torch.arange(SYNCNET_WINDOW, device=device)
        clip = video[idx].permute(0, 2, 1, 3, 4)  # (n, 3, 5, S, S)
        lips.append(net.forward_lip(clip))
        auds.append(net.forward_aud(aud[start:stop].to(device)))
    return torch.cat(lips), torch.cat(auds)


def offset_distances(video_emb: Tensor, audio_emb: Tensor, vshift: int = 15) -> Tensor:
    """Distances of each frame's lip embedding to the audio embeddings shifted by ``-vshift..vshift``.

    Vectorised form of the reference ``calc_pdist`` (zero-padded audio, ``pairwise_distance``
    with its ``eps = 1e-6``).

    Args:
        video_emb: ``(N, D)``.
        audio_emb: ``(N, D)``.
        vshift: largest shift in frames.

    Returns:
        ``(N, 2 * vshift + 1)``; column ``k`` pairs frame ``i`` with audio window ``i + k - vshift``.
    """
    padded = F.pad(audio_emb, (0, 0, vshift, vshift))  # (N + 2v, D)
    windows = padded.unfold(0, 2 * vshift + 1, 1).transpose(1, 2)  # (N, 2v+1, D)
    return torch.linalg.vector_norm(video_emb.unsqueeze(1) - windows + 1e-6, dim=-1)


def sync_scores_from_distances(dists: Tensor, vshift: int = 15) -> dict[str, Tensor]:
    """LSE-D, LSE-C and AV offset from :func:`offset_distances` ``(N, 2v+1)``.

    ``mdist`` = mean over frames per offset; LSE-D = min(mdist); LSE-C = median(mdist) - min(mdist);
    offset = vshift - argmin(mdist), as syncnet_python reports it: the best match pairs frame ``i``
    with audio window ``i - offset``, so a positive offset means the audio leads the video.
    """
    mdist = dists.mean(0)
    minval, minidx = torch.min(mdist, 0)
    return {
        "lse_d": minval,
        "lse_c": torch.median(mdist) - minval,
        "offset": (vshift - minidx).to(mdist.dtype),
    }


def sync_scores(
    net: torch.nn.Module,
    videos: Tensor,
    audio: Tensor,
    sample_rate: int = SYNCNET_SAMPLE_RATE,
    vshift: int = 15,
    batch_size: int = 50,
    lengths: Sequence[int] | Tensor | None = None,
) -> dict[str, Tensor]:
    """LSE-C, LSE-D and AV offset of each video.

    Args:
        net: a SyncNet in eval mode.
        videos: ``(B, T, 3, H, W)`` RGB face crops (see :func:`emoface.metrics.face_crop`), 25 fps.
        audio: ``(B, S)`` mono waveforms at ``sample_rate``.
        sample_rate: audio rate.
        vshift: offsets -vshift..vshift frames (15 in the reference).
        batch_size: windows per forward pass.
        lengths: valid frames per video (all ``T`` when ``None``); audio is cut to match.

    Returns:
        ``{"lse_c": (B,), "lse_d": (B,), "offset": (B,)}`` float32.
    """
    videos = as_videos(videos)
    if audio.ndim != 2 or audio.shape[0] != videos.shape[0]:
        raise ValueError(f"expected audio (B, S) for {videos.shape[0]} videos, got {tuple(audio.shape)}")
    spf = sample_rate / SYNCNET_FPS
    results: dict[str, list[Tensor]] = {"lse_c": [], "lse_d": [], "offset": []}
    for i in range(videos.shape[0]):
        t = int(lengths[i]) if lengths is not None else videos.shape[1]
        wav = audio[i, : round(t * spf)] if lengths is not None else audio[i]
        v_emb, a_emb = syncnet_embeddings(net, videos[i, :t], wav, sample_rate, batch_size)
        scores = sync_scores_from_distances(offset_distances(v_emb, a_emb, vshift), vshift)
        for key, value in scores.items():
            results[key].append(value.float().cpu())
    return {key: torch.stack(values) for key, values in results.items()}


# ----------------------------------------------------------------------------- emotion
def reorder_logits(logits: Tensor, labels: Sequence[str]) -> Tensor:
    """Columns of ``logits (B, C)`` named by ``labels`` put in :data:`EMOTIONS` order ``(B, 8)``."""
    missing = [e for e in EMOTIONS if e not in labels]
    if missing:
        raise ValueError(f"classifier labels {tuple(labels)} lack {missing}")
    return logits[:, [list(labels).index(e) for e in EMOTIONS]]


def emotion_accuracy(logits: Tensor, target: Tensor, num_classes: int = len(EMOTIONS)) -> dict[str, Tensor]:
    """Top-1 accuracy and per-class accuracy.

    Args:
        logits: ``(B, C)`` video logits in :data:`EMOTIONS` order.
        target: ``(B,)`` long class indices.
        num_classes: ``C``.

    Returns:
        ``{"accuracy": (), "per_class": (C,)}`` (NaN for classes without videos).
    """
    correct = (logits.argmax(-1) == target).double()
    total = torch.bincount(target, minlength=num_classes).double()
    hits = torch.bincount(target, weights=correct, minlength=num_classes)
    return {"accuracy": correct.mean(), "per_class": hits / total}


# ----------------------------------------------------------------------------- landmarks
LANDMARK_NORMALIZATIONS = ("none", "interocular", "procrustes")


def normalize_landmark_pair(preds: Tensor, target: Tensor, normalize: str = "none") -> tuple[Tensor, Tensor]:
    """Bring generated and ground-truth landmarks to the frame distances are measured in.

    Args:
        preds: ``(..., 68, D)`` landmarks, ``D`` 2 or 3.
        target: ``(..., 68, D)``.
        normalize: ``"none"`` (distances in the landmarks' own units, e.g. pixels of the 256 px
            crop as papers report LMD); ``"interocular"`` (both divided by the target's outer-eye
            corner distance 36-45, scale free); ``"procrustes"`` (preds similarity-aligned to the
            target per frame on all 68 points, then divided like ``"interocular"``: shape only,
            pose removed).

    Returns:
        The normalized ``(preds, target)``.
    """
    if normalize not in LANDMARK_NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {LANDMARK_NORMALIZATIONS}, got {normalize!r}")
    if normalize == "none":
        return preds, target
    if normalize == "procrustes":
        pad = (0, 3 - preds.shape[-1])
        p3, t3 = F.pad(preds.double(), pad), F.pad(target.double(), pad)
        rotation, translation, scale = umeyama(p3, t3)
        preds = apply_similarity(p3, rotation, translation, scale)[..., : target.shape[-1]].to(preds.dtype)
    iod = torch.linalg.vector_norm(target[..., 45, :] - target[..., 36, :], dim=-1)[..., None, None]
    return preds / iod, target / iod


def landmark_distance(
    preds: Tensor, target: Tensor, normalize: str = "none", dims: int = 2
) -> dict[str, Tensor]:
    """LMD, M-LMD (mouth, 48-67) and F-LMD (the other 48 points) per video.

    Per frame: the mean Euclidean distance over the points of the group; per video: the mean
    over frames.

    Args:
        preds: ``(B, T, 68, 2|3)`` generated landmarks.
        target: ``(B, T, 68, 2|3)`` ground truth.
        normalize: see :func:`normalize_landmark_pair`.
        dims: coordinates used (2: x, y as papers report; 3: with depth).

    Returns:
        ``{"lmd", "m_lmd", "f_lmd"}`` each ``(B,)`` float64.
    """
    if preds.shape != target.shape or preds.ndim != 4 or preds.shape[-2] != 68:
        raise ValueError(
            f"expected (B, T, 68, D) landmarks, got {tuple(preds.shape)} and {tuple(target.shape)}"
        )
    preds, target = preds[..., :dims].double(), target[..., :dims].double()
    preds, target = normalize_landmark_pair(preds, target, normalize)
    dist = torch.linalg.vector_norm(preds - target, dim=-1)  # (B, T, 68)
    return {
        "lmd": dist.mean(-1).mean(-1),
        "m_lmd": dist[..., list(MOUTH)].mean(-1).mean(-1),
        "f_lmd": dist[..., list(FACE_WITHOUT_MOUTH)].mean(-1).mean(-1),
    }


def gaze_error(preds: Tensor, target: Tensor, confidence: Tensor | None = None) -> Tensor:
    """Per-video mean angular gaze error in degrees.

    Args:
        preds: ``(B, T, 2, 2)`` per eye (yaw, pitch) degrees, head-relative.
        target: ``(B, T, 2, 2)``.
        confidence: ``(B, T, 2)`` weights in [0, 1] of the target gaze (uniform when ``None``).

    Returns:
        ``(B,)`` float64: the (confidence-weighted) mean over frames and eyes.
    """
    if preds.shape != target.shape or preds.shape[-1] != 2:
        raise ValueError(f"expected gaze (B, T, 2, 2), got {tuple(preds.shape)} and {tuple(target.shape)}")
    err = angular_error(preds.double(), target.double()).flatten(1)  # (B, T*2)
    if confidence is None:
        return err.mean(-1)
    w = confidence.double().flatten(1)
    return (err * w).sum(-1) / w.sum(-1).clamp_min(1e-12)


def as_rotation(pose: Tensor, batch_dims: int = 2) -> Tensor:
    """Rotation matrices from ``(*batch, 3, 3)`` matrices or ``(*batch, 3)`` (yaw, pitch, roll) degrees.

    The format is decided by the number of dimensions (``batch_dims`` leading ones), so a clip of
    3 frames of Euler angles ``(B, 3, 3)`` is not mistaken for matrices.
    """
    if pose.ndim == batch_dims + 2 and pose.shape[-2:] == (3, 3):
        return pose
    if pose.ndim == batch_dims + 1 and pose.shape[-1] == 3:
        return euler_to_matrix(pose)
    raise ValueError(f"expected rotations (B, T, 3, 3) or Euler angles (B, T, 3), got {tuple(pose.shape)}")


def pose_error(
    pred_rotation: Tensor,
    target_rotation: Tensor,
    pred_translation: Tensor | None = None,
    target_translation: Tensor | None = None,
) -> dict[str, Tensor]:
    """Per-video head-pose error.

    Args:
        pred_rotation: ``(B, T, 3, 3)`` rotations or ``(B, T, 3)`` (yaw, pitch, roll) degrees.
        target_rotation: same.
        pred_translation: ``(B, T, 3)`` (optional).
        target_translation: ``(B, T, 3)`` (optional).

    Returns:
        ``{"rotation": (B,)}`` mean geodesic angle in degrees and, with translations,
        ``"translation": (B,)`` mean Euclidean distance in their units; float64.
    """
    rot_err = geodesic_angle(as_rotation(pred_rotation.double()), as_rotation(target_rotation.double()))
    out = {"rotation": rot_err.flatten(1).mean(-1)}
    if pred_translation is not None and target_translation is not None:
        dist = torch.linalg.vector_norm(pred_translation.double() - target_translation.double(), dim=-1)
        out["translation"] = dist.flatten(1).mean(-1)
    return out


# ----------------------------------------------------------------------------- motion
MOTION_CUES = ("head_yaw", "head_pitch", "head_roll", "gaze_yaw", "gaze_pitch")
"""The motion cues of :func:`motion_tracks`, in column order."""
MOTION_FEATURE_STATISTICS = ("mean", "std", "speed")
"""Per-cue statistics stacked by :func:`motion_features` (``len * len(MOTION_CUES)`` dims)."""


def motion_tracks(euler: Tensor, gaze: Tensor) -> Tensor:
    """The motion cues of cue sequences ``(B, T, 5)`` in degrees (:data:`MOTION_CUES` order).

    Args:
        euler: ``(B, T, 3)`` head (yaw, pitch, roll) degrees, or rotations ``(B, T, 3, 3)``.
        gaze: ``(B, T, 2, 2)`` per-eye (yaw, pitch) degrees; the two eyes are averaged.
    """
    if euler.ndim == 4:
        from emoface.geometry.rotations import matrix_to_euler

        euler = matrix_to_euler(euler)
    if euler.ndim != 3 or euler.shape[-1] != 3:
        raise ValueError(f"euler must be (B, T, 3) degrees or (B, T, 3, 3) rotations, got {tuple(euler.shape)}")
    if gaze.ndim != 4 or gaze.shape[-2:] != (2, 2) or gaze.shape[:2] != euler.shape[:2]:
        raise ValueError(f"gaze must be (B, T, 2, 2) matching euler {tuple(euler.shape[:2])}, got {tuple(gaze.shape)}")
    return torch.cat([euler.double(), gaze.double().mean(-2)], -1)


def motion_statistics(tracks: Tensor) -> dict[str, Tensor]:
    """Within-clip motion of each cue: ``{"std": (B, C), "velocity": (B, C)}``.

    ``std``: standard deviation over frames (population, around the clip's own mean posture);
    ``velocity``: mean absolute frame-to-frame change (degrees per frame).

    Args:
        tracks: ``(B, T, C)`` with ``T >= 2`` (e.g. :func:`motion_tracks`).
    """
    if tracks.ndim != 3 or tracks.shape[1] < 2:
        raise ValueError(f"tracks must be (B, T, C) with T >= 2 frames, got {tuple(tracks.shape)}")
    tracks = tracks.double()
    return {"std": tracks.std(1, unbiased=False), "velocity": tracks.diff(dim=1).abs().mean(1)}


def motion_features(tracks: Tensor) -> Tensor:
    """The Frechet motion distance's per-sequence feature ``(B, 3 C)``: per cue its mean posture,
    within-clip standard deviation and mean absolute velocity (degrees, degrees per frame).

    Why these: the mean is the emotion's posture, the std how far the cue moves and the velocity
    how fast; damped motion (the deterministic failure) shows in the last two, a wrong posture in
    the first. The distribution of these vectors over clips is compared, as FID compares image
    features, so a generator must reproduce how motion varies from clip to clip, not only its mean.
    """
    stats = motion_statistics(tracks)
    return torch.cat([tracks.double().mean(1), stats["std"], stats["velocity"]], -1)


def frechet_motion_distance(pred_features: Tensor, true_features: Tensor) -> Tensor:
    """Frechet distance between the Gaussians of generated and real :func:`motion_features` ``(N, D)``."""
    if pred_features.shape[0] < 2 or true_features.shape[0] < 2:
        raise ValueError(f"the Frechet distance needs >= 2 sequences per set, got {pred_features.shape[0]} "
                         f"generated and {true_features.shape[0]} real")  # fmt: skip
    mu1, sigma1 = feature_statistics(pred_features)
    mu2, sigma2 = feature_statistics(true_features)
    return torch.tensor(frechet_distance(mu1, sigma1, mu2, sigma2), dtype=torch.float64)


def speech_energy(audio: Tensor, frames: int) -> Tensor:
    """Speech energy per video frame ``(B, T)`` from audio features ``(B, R T, F)``.

    Column 0 of emoface's audio features is python_speech_features' MFCC c0, the log energy of
    each 25 ms analysis frame; the energy per video frame is the mean of ``exp(c0 / 2)`` (an
    RMS amplitude) over its ``R`` rows.
    """
    if audio.ndim != 3 or frames < 1 or audio.shape[1] % frames:
        raise ValueError(f"audio must be (B, R * {frames}, F) features, got {tuple(audio.shape)}")
    rows = audio.shape[1] // frames
    return torch.exp(0.5 * audio[..., 0].double()).reshape(audio.shape[0], frames, rows).mean(-1)


def head_speed(euler: Tensor) -> Tensor:
    """Head angular speed ``(B, T - 1)`` in degrees per frame (norm of the Euler-angle change)."""
    if euler.ndim == 4:
        from emoface.geometry.rotations import matrix_to_euler

        euler = matrix_to_euler(euler)
    return torch.linalg.vector_norm(euler.double().diff(dim=1), dim=-1)


def pearson(x: Tensor, y: Tensor, dim: int = -1) -> Tensor:
    """Pearson correlation along ``dim`` (0 where either signal is constant)."""
    x = x.double() - x.double().mean(dim, keepdim=True)
    y = y.double() - y.double().mean(dim, keepdim=True)
    denominator = torch.sqrt((x * x).sum(dim) * (y * y).sum(dim))
    return torch.where(
        denominator > 1e-12, (x * y).sum(dim) / denominator.clamp_min(1e-12), torch.zeros_like(denominator)
    )


def motion_energy_correlation(euler: Tensor, energy: Tensor) -> Tensor:
    """Per-video correlation ``(B,)`` of head motion with speech energy.

    Head motion is the angular speed between frames ``t - 1`` and ``t`` (:func:`head_speed`),
    paired with the energy of frame ``t`` (nods and turns move the head while the voice is loud).

    Args:
        euler: ``(B, T, 3)`` degrees or ``(B, T, 3, 3)`` rotations.
        energy: ``(B, T)`` speech energy per frame (:func:`speech_energy`).
    """
    if energy.shape != euler.shape[:2]:
        raise ValueError(f"energy must be (B, T) = {tuple(euler.shape[:2])}, got {tuple(energy.shape)}")
    return pearson(head_speed(euler), energy[:, 1:])
