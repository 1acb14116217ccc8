"""Plain ``nn.Module`` networks the systems are built from (no Lightning here)."""

from emoface.networks.audio import AudioEncoder
from emoface.networks.conditioning import EmotionEmbedding, ReferenceEncoder
from emoface.networks.cue_classifier import CueEmotionClassifierNet
from emoface.networks.emotion_fan import EmotionFAN
from emoface.networks.landmarks_to_keypoints import KeypointMapper
from emoface.networks.sequentializer import CueOutput, LandmarkSequentializer, Reference
from emoface.networks.speech_to_landmarks import SpeechToLandmarksNet
from emoface.networks.syncnet import SyncNet

__all__ = [
    "AudioEncoder",
    "CueEmotionClassifierNet",
    "CueOutput",
    "EmotionEmbedding",
    "EmotionFAN",
    "KeypointMapper",
    "LandmarkSequentializer",
    "Reference",
    "ReferenceEncoder",
    "SpeechToLandmarksNet",
    "SyncNet",
]
