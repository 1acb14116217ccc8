"""Cue metrics: landmark distance (LMD, M-LMD, F-LMD), gaze angular error and head-pose error."""

from __future__ import annotations

from torch import Tensor

from emoface.metrics import functional as MF
from emoface.metrics.base import VideoMeanMetric


class LandmarkDistance(VideoMeanMetric):
    """LMD over all 68 points, M-LMD over the mouth (48-67) and F-LMD over the other points.

    ``update(preds, target)`` with landmarks ``(B, T, 68, 2|3)``; per frame the mean Euclidean
    distance over the group's points, per video the mean over frames, ``compute()`` the mean over
    videos: ``{"lmd", "m_lmd", "f_lmd"}``.

    Args:
        normalize: ``"none"`` (landmark units, e.g. pixels of the 256 px crop, as papers report),
            ``"interocular"`` or ``"procrustes"`` (see :func:`emoface.metrics.functional.normalize_landmark_pair`).
        dims: 2 (x, y; default, as papers) or 3 (with depth).
    """

    higher_is_better = False

    def __init__(self, normalize: str = "none", dims: int = 2, **kwargs: object) -> None:
        super().__init__(["lmd", "m_lmd", "f_lmd"], **kwargs)
        if normalize not in MF.LANDMARK_NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {MF.LANDMARK_NORMALIZATIONS}, got {normalize!r}")
        self.normalize = normalize
        self.dims = dims

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add ``(B, T, 68, D)`` generated and ground-truth landmarks."""
        self._accumulate(MF.landmark_distance(preds, target, self.normalize, self.dims))

    def compute(self) -> dict[str, Tensor]:
        """``{"lmd", "m_lmd", "f_lmd"}`` means over videos."""
        return self._means()


class GazeError(VideoMeanMetric):
    """Mean angular error (degrees) between generated and ground-truth gaze directions.

    ``update(preds, target, confidence=None)`` with per-eye (yaw, pitch) degrees ``(B, T, 2, 2)``
    (head-relative, see docs/data_format.md) and optional target confidences ``(B, T, 2)``
    weighting frames and eyes within a video; averaged over videos.
    """

    higher_is_better = False

    def __init__(self, **kwargs: object) -> None:
        super().__init__(["value"], **kwargs)

    def update(self, preds: Tensor, target: Tensor, confidence: Tensor | None = None) -> None:
        """Add ``(B, T, 2, 2)`` gaze angles."""
        self._accumulate({"value": MF.gaze_error(preds, target, confidence)})

    def compute(self) -> Tensor:
        """Mean angular error in degrees."""
        return self._means()["value"]


class PoseError(VideoMeanMetric):
    """Head-pose error: rotation geodesic angle (degrees) and translation distance.

    ``update(pred_rotation, target_rotation, pred_translation=None, target_translation=None)``
    with rotations ``(B, T, 3, 3)`` or Euler ``(B, T, 3)`` (yaw, pitch, roll) degrees and
    translations ``(B, T, 3)``; per-video means over frames, averaged over videos.
    ``compute()`` = ``{"rotation"}`` plus ``"translation"`` when ``with_translation``.

    Args:
        with_translation: whether updates carry translations (then they are required).
    """

    higher_is_better = False

    def __init__(self, with_translation: bool = True, **kwargs: object) -> None:
        super().__init__(["rotation", "translation"] if with_translation else ["rotation"], **kwargs)
        self.with_translation = with_translation

    def update(
        self,
        pred_rotation: Tensor,
        target_rotation: Tensor,
        pred_translation: Tensor | None = None,
        target_translation: Tensor | None = None,
    ) -> None:
        """Add a batch of poses."""
        if self.with_translation and (pred_translation is None or target_translation is None):
            raise ValueError("PoseError(with_translation=True) needs pred_translation and target_translation")
        self._accumulate(MF.pose_error(pred_rotation, target_rotation, pred_translation, target_translation))

    def compute(self) -> dict[str, Tensor]:
        """``{"rotation", "translation"}`` means over videos."""
        return self._means()
