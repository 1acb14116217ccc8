"""LivePortrait networks (KwaiVGI/LivePortrait), state-dict compatible with the public files.

Plain ``nn.Module`` implementations whose parameter names and shapes equal the public weight
files', so those load strictly (:func:`load_live_portrait`): the appearance feature extractor
(F), the motion extractor (M, ConvNeXt-V2-tiny), the warping network with its dense motion (W),
the SPADE decoder (G, 256 px in, 512 px out) and the stitching / retargeting MLPs (S).
Constructor defaults are the public ``models.yaml`` sizes; every size is an argument.

    nets = load_live_portrait("pretrained_weights")              # the downloaded folder
    motion = nets.motion_extractor.motion(image)                   # degrees, (B, 21, 3) canonical kp
    kp = keypoints_from_motion(motion["kp"], motion)               # (B, 21, 3) posed keypoints
    feature = nets.appearance_feature_extractor(image)             # (B, 32, 16, 64, 64)
    features = nets.warping_module(feature, kp_driving, kp)["out"] # (N, 256, 64, 64)
    frames = nets.spade_generator(features)                        # (N, 3, 512, 512)

Batched inference with the source encoded once: :class:`emoface.rendering.LivePortraitRenderer`.
"""

from emoface.networks.live_portrait.appearance import AppearanceFeatureExtractor
from emoface.networks.live_portrait.checkpoint import (
    FILES,
    LivePortraitMismatchError,
    LivePortraitNetworks,
    build_networks,
    is_live_portrait_folder,
    load_live_portrait,
    save_live_portrait,
)
from emoface.networks.live_portrait.keypoints import (
    NUM_KP,
    headpose_degrees,
    keypoints_from_motion,
    relative_motion,
    rotation_matrix,
    transform_keypoints,
)
from emoface.networks.live_portrait.motion_extractor import MotionExtractor
from emoface.networks.live_portrait.spade_generator import SPADEDecoder
from emoface.networks.live_portrait.stitching import StitchingRetargeting, StitchingRetargetingNetwork
from emoface.networks.live_portrait.warping import LivePortraitDenseMotion, WarpingNetwork

__all__ = [
    "FILES",
    "NUM_KP",
    "AppearanceFeatureExtractor",
    "LivePortraitDenseMotion",
    "LivePortraitMismatchError",
    "LivePortraitNetworks",
    "MotionExtractor",
    "SPADEDecoder",
    "StitchingRetargeting",
    "StitchingRetargetingNetwork",
    "WarpingNetwork",
    "build_networks",
    "headpose_degrees",
    "is_live_portrait_folder",
    "keypoints_from_motion",
    "load_live_portrait",
    "relative_motion",
    "rotation_matrix",
    "save_live_portrait",
    "transform_keypoints",
]
