"""Relocation: reassemble the stage-1 cues into posed landmarks whose eyes carry the gaze.

Stage 1 generates three cues per frame: normalized landmarks (canonical frame, pose removed),
per-eye gaze (head-relative yaw/pitch) and head pose (``rotation``, ``translation``, ``scale``).
Relocation puts them back together; its output is what stage 2 reads.

**Relocated representation** ``(..., 70, 3)`` (:data:`NUM_RELOCATED_POINTS`):

* rows ``0..67``: the iBUG-68 landmarks posed in the frame,
  ``scale * R @ normalized + translation`` (x, y pixels of the crop, z depth in pixel units);
* row ``68`` (:data:`RIGHT_PUPIL`): the subject's right pupil (eye 0, landmarks 36-41);
* row ``69`` (:data:`LEFT_PUPIL`): the left pupil (eye 1, landmarks 42-47).

A pupil is modelled on an eyeball of radius ``eyeball_radius`` (canonical units) sitting behind
the centre of its eye contour: ``centre_eyeball = eye_centre + (0, 0, r)`` and
``pupil = centre_eyeball + r * d(gaze)`` with ``d = Rx(pitch) Ry(yaw) (0, 0, -1)``
(:func:`~emoface.geometry.rotations.gaze_to_vector`). So a zero gaze puts the pupil exactly on the
eye contour's centre, and the pupil moves with the gaze, then with the head pose like every
other point. The camera-frame gaze directions ``R @ d`` are returned beside the points.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from emoface.geometry.alignment import apply_similarity
from emoface.geometry.landmarks import EYEBALL_RADIUS, eye_centers
from emoface.geometry.rotations import gaze_to_vector

NUM_RELOCATED_POINTS = 70
RIGHT_PUPIL = 68
LEFT_PUPIL = 69
DEFAULT_EYEBALL_RADIUS = EYEBALL_RADIUS
"""Eyeball radius in canonical units (shared with mini-MEAD's renderer)."""


class Relocated(NamedTuple):
    """Output of :func:`relocate`.

    Attributes:
        points: ``(..., 70, 3)`` the relocated representation (68 landmarks + 2 pupils), posed.
        gaze_vectors: ``(..., 2, 3)`` unit gaze directions in the camera frame (right eye first).
    """

    points: Tensor
    gaze_vectors: Tensor

    @property
    def landmarks(self) -> Tensor:
        """``(..., 68, 3)`` posed iBUG-68 landmarks."""
        return self.points[..., :RIGHT_PUPIL, :]

    @property
    def pupils(self) -> Tensor:
        """``(..., 2, 3)`` posed pupil centres (right eye first)."""
        return self.points[..., RIGHT_PUPIL:, :]


def pupils_in_canonical_frame(
    normalized_landmarks: Tensor, gaze_deg: Tensor, eyeball_radius: float = DEFAULT_EYEBALL_RADIUS
) -> Tensor:
    """Pupil centres in the canonical frame.

    Args:
        normalized_landmarks: ``(..., 68, 3)``.
        gaze_deg: ``(..., 2, 2)`` per-eye (yaw, pitch) degrees, head-relative.
        eyeball_radius: canonical units.

    Returns:
        ``(..., 2, 3)`` pupils (right eye first).
    """
    centres = eye_centers(normalized_landmarks)  # (..., 2, 3)
    back = torch.zeros_like(centres)
    back[..., 2] = eyeball_radius
    return centres + back + eyeball_radius * gaze_to_vector(gaze_deg)


def relocate(
    normalized_landmarks: Tensor,
    gaze_deg: Tensor,
    rotation: Tensor,
    translation: Tensor,
    scale: Tensor,
    eyeball_radius: float = DEFAULT_EYEBALL_RADIUS,
) -> Relocated:
    """Apply the head pose to generated normalized landmarks, with the eyes carrying the gaze.

    Pure, batched over any leading dimensions and differentiable in every input.

    Args:
        normalized_landmarks: ``(..., 68, 3)`` canonical frame (pose removed).
        gaze_deg: ``(..., 2, 2)`` per-eye (yaw, pitch) degrees, relative to the head.
        rotation: ``(..., 3, 3)`` head rotation.
        translation: ``(..., 3)`` pixels.
        scale: ``(...)`` pixels per canonical unit.
        eyeball_radius: canonical units.

    Returns:
        :class:`Relocated` (``points (..., 70, 3)``, ``gaze_vectors (..., 2, 3)``).
    """
    pupils = pupils_in_canonical_frame(normalized_landmarks, gaze_deg, eyeball_radius)  # (..., 2, 3)
    canonical = torch.cat([normalized_landmarks, pupils], -2)  # (..., 70, 3)
    points = apply_similarity(canonical, rotation, translation, scale)
    gaze_vectors = gaze_to_vector(gaze_deg) @ rotation.transpose(-1, -2)  # (..., 2, 3): R @ d per eye
    return Relocated(points, gaze_vectors)
