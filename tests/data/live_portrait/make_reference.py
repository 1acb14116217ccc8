"""Regenerate the LivePortrait fixtures of ``tests/test_live_portrait_networks.py`` from the public code.

    python tests/data/live_portrait/make_reference.py PUBLIC_CHECKOUT

``PUBLIC_CHECKOUT`` is a checkout of KwaiVGI/LivePortrait (``src/modules``, ``src/utils/camera.py``
and ``src/config/models.yaml`` are used). Nothing of it is copied into this repository: the script
imports it from there and writes, next to this file:

* ``public_state_keys.json``: ``{file name: {key: shape}}`` of the public networks built from the
  public ``models.yaml`` exactly as its ``load_model`` builds them (the stitching file as
  ``{entry: {key: shape}}`` with the ``module.`` prefix of the released file);
* ``tiny_reference.pt``: inputs and the public networks' outputs at tiny sizes (``TINY`` below), with
  weights drawn by :func:`seeded_state` of the test module in sorted key order, so the test rebuilds
  the same weights in our networks (their names and shapes being equal is what the test checks):
  the appearance volume, the motion extractor's raw outputs and degrees, the posed keypoints of the
  public ``transform_keypoint`` formula, the warping module's outputs, the decoder's frames and the
  stitched keypoints (the public wrapper's ``stitching``).

How the committed fixtures were made: no network access to GitHub was available, so the public
files at commit a272d74 (``src/modules/{util, appearance_feature_extractor, convnextv2,
motion_extractor, dense_motion, warping_network, spade_generator, stitching_retargeting_network}.py``,
``src/utils/camera.py``, ``src/config/models.yaml``, as stored by a code-search index) were written
verbatim into a local checkout-shaped folder outside this repository (timm's ``DropPath`` and
``trunc_normal_``, unused at inference, stubbed) and the script ran on it. Rerun it on a real
checkout to confirm.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import yaml

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent.parent

TINY = {
    "appearance_feature_extractor": {
        "image_channel": 3, "block_expansion": 8, "num_down_blocks": 2, "max_features": 32,
        "reshape_channel": 4, "reshape_depth": 8, "num_resblocks": 1,
    },
    "motion_extractor": {"num_kp": 21, "num_bins": 66, "depths": [1, 1, 2, 1], "dims": [8, 16, 16, 32]},
    "warping_module": {
        "num_kp": 21, "block_expansion": 4, "max_features": 32, "num_down_blocks": 2, "reshape_channel": 4,
        "estimate_occlusion_map": True,
        "dense_motion_params": {"block_expansion": 4, "max_features": 16, "num_blocks": 2, "reshape_depth": 8, "compress": 2},
    },
    "spade_generator": {"upscale": 2, "max_features": 32, "block_expansion": 4, "out_channels": 8, "num_down_blocks": 2},
}  # fmt: skip
"""Tiny sizes (the stitching MLPs keep the public ones: they are small)."""
IMAGE_SIZE = 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path)
    args = parser.parse_args()
    sys.path.insert(0, str(args.checkout))
    sys.path.insert(0, str(TESTS))
    sys.path.insert(0, str(TESTS.parent))  # this checkout's emoface
    from src.modules.appearance_feature_extractor import AppearanceFeatureExtractor
    from src.modules.convnextv2 import ConvNeXtV2
    from src.modules.motion_extractor import MotionExtractor
    from src.modules.spade_generator import SPADEDecoder
    from src.modules.stitching_retargeting_network import StitchingRetargetingNetwork
    from src.modules.warping_network import WarpingNetwork
    from src.utils.camera import get_rotation_matrix, headpose_pred_to_degree
    from test_live_portrait_networks import seeded_state

    config = yaml.safe_load((args.checkout / "src/config/models.yaml").read_text())["model_params"]
    public = {
        "appearance_feature_extractor.pth": AppearanceFeatureExtractor(**config["appearance_feature_extractor_params"]),
        "motion_extractor.pth": MotionExtractor(**config["motion_extractor_params"]),
        "warping_module.pth": WarpingNetwork(**config["warping_module_params"]),
        "spade_generator.pth": SPADEDecoder(**config["spade_generator_params"]),
    }
    keys: dict[str, object] = {
        name: {key: list(value.shape) for key, value in net.state_dict().items()} for name, net in public.items()
    }
    stitching = config["stitching_retargeting_module_params"]
    keys["stitching_retargeting_module.pth"] = {
        entry: {f"module.{key}": list(value.shape) for key, value in StitchingRetargetingNetwork(**stitching[ours]).state_dict().items()}
        for ours, entry in (("stitching", "retarget_shoulder"), ("lip", "retarget_mouth"), ("eye", "retarget_eye"))
    }  # fmt: skip
    (HERE / "public_state_keys.json").write_text(json.dumps(keys, indent=1))
    del public

    # Tiny public networks; the motion extractor's backbone at tiny widths (its public factory
    # hardcodes ConvNeXt-V2-tiny's).
    f = AppearanceFeatureExtractor(**TINY["appearance_feature_extractor"])
    m = MotionExtractor(num_kp=21)
    m.detector = ConvNeXtV2(**TINY["motion_extractor"])
    w = WarpingNetwork(**TINY["warping_module"])
    g = SPADEDecoder(**TINY["spade_generator"])
    s = StitchingRetargetingNetwork(**stitching["stitching"])
    for seed, net in enumerate((f, m, w, g, s)):
        net.load_state_dict(seeded_state(net.state_dict(), seed), strict=True)
        net.eval()

    gen = torch.Generator().manual_seed(7)
    source = torch.rand(1, 3, IMAGE_SIZE, IMAGE_SIZE, generator=gen)
    driving = torch.rand(2, 3, IMAGE_SIZE, IMAGE_SIZE, generator=gen)
    with torch.no_grad():
        feature = f(source)
        raw_s, raw_d = m(source), m(driving)

        def posed(raw: dict) -> torch.Tensor:  # the public wrapper's transform_keypoint
            bs = raw["kp"].shape[0]
            pitch, yaw, roll = (headpose_pred_to_degree(raw[a]) for a in ("pitch", "yaw", "roll"))
            rot = get_rotation_matrix(pitch, yaw, roll)
            kp = raw["kp"].view(bs, -1, 3) @ rot + raw["exp"].view(bs, -1, 3)
            kp *= raw["scale"][..., None]
            kp[:, :, 0:2] += raw["t"][:, None, 0:2]
            return kp

        kp_s, kp_d = posed(raw_s), posed(raw_d)
        warped = w(feature.expand(2, -1, -1, -1, -1), kp_driving=kp_d, kp_source=kp_s.expand(2, -1, -1))
        frames = g(warped["out"])
        n, k = kp_d.shape[:2]
        delta = s(torch.cat([kp_s.expand(n, -1, -1).reshape(n, -1), kp_d.reshape(n, -1)], dim=1))
        stitched = kp_d.clone() + delta[..., : 3 * k].reshape(n, k, 3)
        stitched[..., :2] += delta[..., 3 * k : 3 * k + 2].reshape(n, 1, 2)
    torch.save(
        {
            "tiny": TINY, "source": source, "driving": driving, "feature": feature,
            "raw_source": raw_s, "raw_driving": raw_d,
            "degrees_driving": {a: headpose_pred_to_degree(raw_d[a]) for a in ("pitch", "yaw", "roll")},
            "kp_source": kp_s, "kp_driving": kp_d,
            "deformation": warped["deformation"], "occlusion_map": warped["occlusion_map"], "out": warped["out"],
            "frames": frames, "stitched": stitched,
        },
        HERE / "tiny_reference.pt",
    )  # fmt: skip


if __name__ == "__main__":
    main()
