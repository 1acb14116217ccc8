"""Systems: training steps, losses and logging (networks come from :mod:`emoface.networks`)."""

from emoface.lightning_modules.benchmark import Benchmark
from emoface.lightning_modules.cue_emotion_classifier import CueEmotionClassifier
from emoface.lightning_modules.emotion_classifier import EmotionClassifier
from emoface.lightning_modules.face_renderer import FaceRenderer
from emoface.lightning_modules.landmarks_to_keypoints import LandmarksToKeypoints
from emoface.lightning_modules.speech_to_landmarks import SpeechToLandmarks
from emoface.lightning_modules.syncnet_trainer import SyncNetTrainer

__all__ = [
    "Benchmark",
    "CueEmotionClassifier",
    "EmotionClassifier",
    "FaceRenderer",
    "LandmarksToKeypoints",
    "SpeechToLandmarks",
    "SyncNetTrainer",
]
