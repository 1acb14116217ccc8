"""Per-clip feature extraction: audio features, landmark gaps, the face crop and head pose."""

from __future__ import annotations

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


def landmarks_to_crop(landmarks: np.ndarray, box: CropBox) -> np.ndarray:
    """Source-frame landmarks ``(..., 68, 3)`` -> crop pixels (z scaled like x and y)."""
    out = landmarks.astype(np.float64).copy()
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
