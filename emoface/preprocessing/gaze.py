"""Gaze per eye from the image: a classical dark-blob pupil locator inside the landmark eye contour.

For each eye, the region inside the six contour landmarks is upsampled, and the pupil/iris is
taken as the intensity-weighted centroid of its darkest pixels (weights grow linearly below a
per-eye threshold between the darkest and the median brightness). The pupil is mapped into the
canonical frame through the inverse head-pose similarity (at the depth of the eye contour) and
its offset from the canonical eye-contour centre gives yaw/pitch with
:func:`emoface.geometry.gaze.pupil_offset_to_gaze`.

The confidence in [0, 1] is the product of eye openness (contour height / width against 0.2)
and the contrast between the dark blob and the rest of the eye; closed eyes and flat eye
regions get ~0.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from emoface.geometry.alignment import invert_similarity
from emoface.geometry.gaze import pupil_offset_to_gaze
from emoface.geometry.landmarks import EYES

UPSAMPLE = 4
OPEN_RATIO = 0.2
CONTRAST = 0.25


def locate_pupil(gray: np.ndarray, eye: np.ndarray) -> tuple[np.ndarray, float]:
    """Pupil centre of one eye.

    Args:
        gray: float32 ``(H, W)`` image in [0, 1].
        eye: ``(6, 2)`` eye-contour landmarks (x, y) in pixels of ``gray``.

    Returns:
        ``(pupil (2,), confidence)``; when the eye is closed or outside the image the pupil is
        the contour centre and the confidence 0.
    """
    centre = eye.mean(0)
    width = float(np.linalg.norm(eye[3] - eye[0]))
    height = float(np.linalg.norm(eye[1] - eye[5]) + np.linalg.norm(eye[2] - eye[4])) / 2.0
    if width < 2.0:
        return centre, 0.0
    openness = min(1.0, height / width / OPEN_RATIO)
    low = np.floor(eye.min(0)).astype(int) - 1
    high = np.ceil(eye.max(0)).astype(int) + 2
    h, w = gray.shape
    if low[0] < 0 or low[1] < 0 or high[0] > w or high[1] > h:
        return centre, 0.0
    roi = gray[low[1] : high[1], low[0] : high[0]]
    big = cv2.resize(roi, None, fx=UPSAMPLE, fy=UPSAMPLE, interpolation=cv2.INTER_LINEAR)
    mask = np.zeros(big.shape, dtype=np.uint8)
    polygon = ((eye - low + 0.5) * UPSAMPLE - 0.5).round().astype(np.int32)
    cv2.fillPoly(mask, [polygon], 1)
    inside = mask.astype(bool)
    if inside.sum() < 4:
        return centre, 0.0
    values = big[inside]
    darkest, median = float(values.min()), float(np.median(values))
    contrast = median - darkest
    if contrast <= 1e-6:
        return centre, 0.0
    threshold = darkest + 0.5 * contrast
    weights = np.clip((threshold - big) / (threshold - darkest), 0.0, None) * inside
    total = float(weights.sum())
    if total <= 0:
        return centre, 0.0
    ys, xs = np.mgrid[0 : big.shape[0], 0 : big.shape[1]]
    px = float((weights * xs).sum() / total)
    py = float((weights * ys).sum() / total)
    pupil = np.array([(px + 0.5) / UPSAMPLE - 0.5 + low[0], (py + 0.5) / UPSAMPLE - 0.5 + low[1]])
    confidence = openness * min(1.0, contrast / CONTRAST)
    return pupil, float(confidence)


def estimate_gaze(
    frames: np.ndarray,
    landmarks: np.ndarray,
    rotation: np.ndarray,
    translation: np.ndarray,
    scale: np.ndarray,
) -> dict[str, np.ndarray]:
    """Gaze per eye for every frame.

    Args:
        frames: uint8 ``(T, H, W, 3)`` RGB (the crops).
        landmarks: ``(T, 68, 3)`` in pixels of ``frames``.
        rotation, translation, scale: head pose ``(T, 3, 3)``, ``(T, 3)``, ``(T,)`` of those
            landmarks (see :func:`emoface.preprocessing.features.estimate_pose`).

    Returns:
        float32 ``gaze (T, 2, 2)`` (yaw, pitch) degrees head-relative, ``gaze_confidence (T, 2)``
        in [0, 1] and ``pupils (T, 2, 2)`` pixel positions; eye 0 is the subject's right eye.
    """
    num = len(frames)
    pupils = np.zeros((num, 2, 2), dtype=np.float64)
    confidence = np.zeros((num, 2), dtype=np.float32)
    for t in range(num):
        gray = cv2.cvtColor(frames[t], cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
        for e, eye in enumerate(EYES):
            pupils[t, e], confidence[t, e] = locate_pupil(gray, landmarks[t, list(eye), :2].astype(np.float64))
    lm = torch.from_numpy(np.asarray(landmarks, dtype=np.float64))
    centres = torch.stack([lm[:, list(eye)].mean(1) for eye in EYES], 1)  # (T, 2, 3)
    pupil3d = centres.clone()
    pupil3d[..., :2] = torch.from_numpy(pupils)
    pose = (
        torch.from_numpy(np.asarray(rotation, dtype=np.float64)),
        torch.from_numpy(np.asarray(translation, dtype=np.float64)),
        torch.from_numpy(np.asarray(scale, dtype=np.float64)),
    )
    offset = invert_similarity(pupil3d, *pose) - invert_similarity(centres, *pose)  # (T, 2, 3) canonical
    gaze = pupil_offset_to_gaze(offset)
    return {
        "gaze": gaze.float().numpy(),
        "gaze_confidence": confidence,
        "pupils": pupils.astype(np.float32),
    }
