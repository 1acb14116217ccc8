"""face-vid2vid renderer networks, state-dict compatible with the public vox-256 checkpoints.

Plain ``nn.Module`` re-implementations of the public face-vid2vid code
(zhanglonghao1992/One-Shot_Free-View_Neural_Talking_Head_Synthesis, also used by SadTalker and
EAT): parameter and buffer names and shapes equal the public ones, so a public checkpoint loads
with ``load_state_dict(strict=True)`` (:func:`load_face_vid2vid_state`), and the outputs equal the
public code's. Constructor defaults are the vox-256 sizes; every size is an argument.

    kp_detector = CanonicalKeypointDetector()          # image -> {"value": (B, 15, 3)} canonical keypoints
    he_estimator = HeadExpressionEstimator()           # image -> yaw/pitch/roll bins, t, exp
    generator = OcclusionAwareSPADEGenerator()         # or OcclusionAwareGenerator (plain decoder)
    load_face_vid2vid_state("00000189-checkpoint.pth.tar", kp_detector, he_estimator, generator)
    # or: the three built as the file needs (plain or SPADE generator read from its keys; also
    # SadTalker's SadTalker_V0.0.2_256.safetensors)
    nets = load_face_vid2vid_networks("00000189-checkpoint.pth.tar")
    source = generator.encode_source(image)            # once per source image
    frames = generator.animate(source, {"value": kp_src}, {"value": kp_drv})["prediction"]  # (N, 3, H, W)

Posed keypoints (``R kp_canonical + t + exp``) come from :mod:`emoface.geometry.keypoints`.
"""

from emoface.networks.face_vid2vid.checkpoint import (
    LAYOUTS,
    WEIGHTS_KEY,
    CheckpointMismatchError,
    FaceVid2VidCheckpoint,
    NetworkMismatch,
    UnknownCheckpointLayoutError,
    generator_variant,
    load_face_vid2vid_networks,
    load_face_vid2vid_state,
    read_face_vid2vid_checkpoint,
)
from emoface.networks.face_vid2vid.dense_motion import DenseMotionNetwork
from emoface.networks.face_vid2vid.discriminator import Discriminator, MultiScaleDiscriminator
from emoface.networks.face_vid2vid.generator import (
    VOX256_DENSE_MOTION,
    OcclusionAwareGenerator,
    OcclusionAwareSPADEGenerator,
    SPADEDecoder,
)
from emoface.networks.face_vid2vid.head_estimator import HeadExpressionEstimator
from emoface.networks.face_vid2vid.keypoint_detector import CanonicalKeypointDetector

__all__ = [
    "LAYOUTS",
    "VOX256_DENSE_MOTION",
    "WEIGHTS_KEY",
    "CanonicalKeypointDetector",
    "CheckpointMismatchError",
    "DenseMotionNetwork",
    "FaceVid2VidCheckpoint",
    "Discriminator",
    "HeadExpressionEstimator",
    "MultiScaleDiscriminator",
    "NetworkMismatch",
    "OcclusionAwareGenerator",
    "OcclusionAwareSPADEGenerator",
    "SPADEDecoder",
    "UnknownCheckpointLayoutError",
    "generator_variant",
    "load_face_vid2vid_networks",
    "load_face_vid2vid_state",
    "read_face_vid2vid_checkpoint",
]
