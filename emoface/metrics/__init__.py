"""emoface metrics: torchmetrics ``Metric`` classes (DDP-synced) and :mod:`.functional` forms.

Video metrics take ``update(preds, target)`` with videos ``(B, T, 3, H, W)`` uint8 or float in
[0, 1] (RGB) and ``compute()`` returns the mean over videos of each video's mean over frames.
"""

from emoface.metrics import functional
from emoface.metrics.emotion import EmotionAccuracy, EmotionLogitsAccuracy
from emoface.metrics.face_crop import face_crop
from emoface.metrics.fid import FID, build_fid_inception
from emoface.metrics.geometry import GazeError, LandmarkDistance, PoseError
from emoface.metrics.image import LPIPS, PSNR, SSIM, build_lpips
from emoface.metrics.motion import FrechetMotionDistance, MotionEnergyCorrelation, MotionStatistics
from emoface.metrics.sync import SyncScore

__all__ = [
    "FID",
    "LPIPS",
    "PSNR",
    "SSIM",
    "EmotionAccuracy",
    "EmotionLogitsAccuracy",
    "GazeError",
    "FrechetMotionDistance",
    "LandmarkDistance",
    "MotionEnergyCorrelation",
    "MotionStatistics",
    "PoseError",
    "SyncScore",
    "build_fid_inception",
    "build_lpips",
    "face_crop",
    "functional",
]
