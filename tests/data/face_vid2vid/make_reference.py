"""Regenerate the face-vid2vid fixtures of ``tests/test_face_vid2vid_networks.py`` from the public code.

    python tests/data/face_vid2vid/make_reference.py PUBLIC_CHECKOUT

``PUBLIC_CHECKOUT`` is a checkout of zhanglonghao1992/One-Shot_Free-View_Neural_Talking_Head_Synthesis
(the version with ``OcclusionAwareSPADEGenerator``; commit 9511d25a was used). Nothing of it is
copied into this repository: the script imports it from there (with plain BatchNorm standing in for
its ``sync_batchnorm`` package, same state-dict keys) and writes, next to this file:

* ``vox256_state_keys.json``: ``{network: {key: shape}}`` of the public networks at the vox-256
  sizes (``config/vox-256.yaml``), for ``kp_detector``, ``he_estimator``, ``generator_original``,
  ``generator_spade`` and ``discriminator``;
* ``tiny_reference.pt`` / ``tiny_config.json``: tiny public networks (random weights, random
  BatchNorm statistics, eval mode), fixed inputs and the public outputs: canonical keypoints, the
  head estimates (raw bin logits in the public returned naming, ``t``, ``exp``), the posed
  keypoints from the public ``keypoint_transformation`` (modules/model.py), both generators'
  ``mask``, ``occlusion_map`` and ``prediction``, and the discriminator's maps.

Two public constants are sizes hardcoded in the code rather than configured, and are too large for a
small fixture: the head estimator's stage widths (256, 512, 1024, 2048 = ``max_features`` / 8 ... / 1
at vox-256) and the SPADE decoder's widths (256 in, 64 out, 128 hidden). For the tiny fixture
(only) the script imports a temporary copy of the public modules in which those literals are
replaced by the equivalent expressions of the sizes (``max_features // 8`` ...,
``block_expansion * 2**num_down_blocks``, ``block_expansion``, a module constant); at vox-256
sizes they evaluate to the public literals. The vox-256 key manifest uses the unmodified code.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import shutil
import subprocess
import sys
import tempfile
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent

VOX256 = {
    "common_params": {"num_kp": 15, "image_channel": 3, "feature_channel": 32, "estimate_jacobian": False},
    "kp_detector_params": {
        "temperature": 0.1, "block_expansion": 32, "max_features": 1024, "scale_factor": 0.25,
        "num_blocks": 5, "reshape_channel": 16384, "reshape_depth": 16,
    },
    "he_estimator_params": {"block_expansion": 64, "max_features": 2048, "num_bins": 66},
    "generator_params": {
        "block_expansion": 64, "max_features": 512, "num_down_blocks": 2, "reshape_channel": 32,
        "reshape_depth": 16, "num_resblocks": 6, "estimate_occlusion_map": True,
        "dense_motion_params": {
            "block_expansion": 32, "max_features": 1024, "num_blocks": 5, "reshape_depth": 16, "compress": 4,
        },
    },
    "discriminator_params": {"scales": [1], "block_expansion": 32, "max_features": 512, "num_blocks": 4, "sn": True},
}  # fmt: skip
"""``model_params`` of the public ``config/vox-256.yaml``."""

TINY = {
    "common_params": {"num_kp": 4, "image_channel": 3, "feature_channel": 4, "estimate_jacobian": False},
    "kp_detector_params": {
        "temperature": 0.1, "block_expansion": 4, "max_features": 16, "scale_factor": 0.25,
        "num_blocks": 3, "reshape_channel": 64, "reshape_depth": 4,
    },
    "he_estimator_params": {"block_expansion": 8, "max_features": 64, "num_bins": 66},
    "generator_params": {
        "block_expansion": 2, "max_features": 16, "num_down_blocks": 2, "reshape_channel": 4,
        "reshape_depth": 4, "num_resblocks": 2, "estimate_occlusion_map": True,
        "dense_motion_params": {
            "block_expansion": 4, "max_features": 16, "num_blocks": 2, "reshape_depth": 4, "compress": 2,
        },
    },
    "discriminator_params": {"scales": [1], "block_expansion": 4, "max_features": 16, "num_blocks": 3, "sn": True},
}  # fmt: skip
TINY_SPADE_HIDDEN = 4
TINY_IMAGE_SIZE = 64
TINY_BATCH = 2
SEED = 0


def _import_public(modules_parent: Path) -> dict[str, types.ModuleType]:
    """Import the public ``modules`` package from ``modules_parent`` (plain BatchNorm for sync_batchnorm)."""
    from torch import nn

    stand_in = types.ModuleType("sync_batchnorm")
    stand_in.SynchronizedBatchNorm2d = nn.BatchNorm2d
    stand_in.SynchronizedBatchNorm3d = nn.BatchNorm3d
    stand_in.DataParallelWithCallback = nn.DataParallel
    sys.modules["sync_batchnorm"] = stand_in
    if not (modules_parent / "modules" / "hopenet.py").exists():
        # modules/model.py imports the head-pose teacher for training; only keypoint_transformation is used.
        sys.modules["modules.hopenet"] = types.ModuleType("modules.hopenet")
    sys.path.insert(0, str(modules_parent))
    import importlib

    names = ("util", "keypoint_detector", "dense_motion", "generator", "discriminator", "model")
    return {name: importlib.import_module(f"modules.{name}") for name in names}


def _build(public: dict[str, types.ModuleType], config: dict) -> dict:
    common = config["common_params"]
    generator_args = {**config["generator_params"], **common}
    return {
        "kp_detector": public["keypoint_detector"].KPDetector(**config["kp_detector_params"], **common),
        "he_estimator": public["keypoint_detector"].HEEstimator(**config["he_estimator_params"], **common),
        "generator_original": public["generator"].OcclusionAwareGenerator(**copy.deepcopy(generator_args)),
        "generator_spade": public["generator"].OcclusionAwareSPADEGenerator(**copy.deepcopy(generator_args)),
        "discriminator": public["discriminator"].MultiScaleDiscriminator(**config["discriminator_params"], **common),
    }


def write_manifest(checkout: Path) -> None:
    """``vox256_state_keys.json`` from the unmodified public modules."""
    public = _import_public(checkout)
    nets = _build(public, VOX256)
    manifest = {name: {key: list(value.shape) for key, value in net.state_dict().items()} for name, net in nets.items()}
    (HERE / "vox256_state_keys.json").write_text(json.dumps(manifest, indent=1) + "\n")
    for name, keys in manifest.items():
        params = sum(p.numel() for p in nets[name].parameters())
        print(f"{name}: {len(keys)} keys, {params / 1e6:.1f}M parameters")


def _patched_copy(checkout: Path, target: Path) -> Path:
    """A copy of the public ``modules`` with the hardcoded widths turned into expressions of the sizes."""
    shutil.copytree(checkout / "modules", target / "modules")
    detector = target / "modules" / "keypoint_detector.py"
    text = detector.read_text()
    head, sep, body = text.partition("class HEEstimator")
    body, count = re.subn(r"\b(256|512|1024|2048)\b", lambda m: f"(max_features // {2048 // int(m.group(1))})", body)
    assert sep and count > 20, "HEEstimator widths not found"
    detector.write_text(head + sep + body)

    generator = target / "modules" / "generator.py"
    text = generator.read_text()
    for old, new in (
        ("def __init__(self):", "def __init__(self, ic=256, oc=64):"),
        ("ic = 256", "ic = ic"),
        ("oc = 64", "oc = oc"),
        ("label_nc = 256", "label_nc = ic"),
        ("self.decoder = SPADEDecoder()", "self.decoder = SPADEDecoder(block_expansion * (2 ** num_down_blocks), block_expansion)"),
    ):  # fmt: skip
        assert old in text, old
        text = text.replace(old, new, 1)
    generator.write_text(text)

    util = target / "modules" / "util.py"
    text = util.read_text()
    assert "nhidden = 128" in text
    util.write_text(text.replace("nhidden = 128", "nhidden = SPADE_NHIDDEN") + "\nSPADE_NHIDDEN = 128\n")
    return target


def _randomize_batchnorm(net, generator) -> None:
    """Non-trivial BatchNorm affine parameters and running statistics (eval mode then uses them)."""
    import torch
    from torch import nn

    for module in net.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                shape = module.running_mean.shape
                module.weight.copy_(1 + 0.1 * torch.randn(shape, generator=generator))
                module.bias.copy_(0.1 * torch.randn(shape, generator=generator))
                module.running_mean.copy_(0.1 * torch.randn(shape, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(shape, generator=generator))
                module.num_batches_tracked.fill_(7)


def _converge_spectral_norm(net) -> None:
    """Power-iterate the spectral norms' ``u``, ``v`` (as training would) so the normalised weights are sane."""
    import torch
    from torch.nn.utils.spectral_norm import SpectralNorm

    for module in net.modules():
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, SpectralNorm):
                with torch.no_grad():
                    for _ in range(30):
                        hook.compute_weight(module, do_power_iteration=True)


def write_tiny(checkout: Path) -> None:
    """``tiny_reference.pt`` and ``tiny_config.json`` from a size-parametrised copy of the public modules."""
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        public = _import_public(_patched_copy(checkout, Path(tmp)))
        public["util"].SPADE_NHIDDEN = TINY_SPADE_HIDDEN
        torch.manual_seed(SEED)
        nets = _build(public, TINY)
    generator = torch.Generator().manual_seed(SEED)
    for net in nets.values():
        _randomize_batchnorm(net, generator)
        _converge_spectral_norm(net)
        net.eval()

    size = TINY_IMAGE_SIZE
    # Images as uint8 (stored so: 4x smaller), fed as uint8 / 255.
    images = torch.randint(0, 256, (2, TINY_BATCH, 3, size, size), generator=generator, dtype=torch.uint8)
    source, driving = (images.float() / 255).unbind(0)
    transformation = public["model"].keypoint_transformation
    with torch.no_grad():
        kp_canonical = nets["kp_detector"](source)
        he_source = nets["he_estimator"](source)
        he_driving = nets["he_estimator"](driving)
        # keypoint_transformation unsqueezes he["t"] in place: store copies taken before.
        he_source_saved = {key: value.clone() for key, value in he_source.items()}
        he_driving_saved = {key: value.clone() for key, value in he_driving.items()}
        kp_source = transformation(kp_canonical, he_source, False)
        kp_driving = transformation(kp_canonical, he_driving, False)
        outputs = {}
        for name in ("generator_original", "generator_spade"):
            out = nets[name](source, kp_driving=kp_driving, kp_source=kp_source)
            outputs[name] = {key: out[key] for key in ("mask", "occlusion_map", "prediction")}
        disc = nets["discriminator"]({"prediction_1": driving})
    reference = {
        "state_dicts": {name: dict(net.state_dict()) for name, net in nets.items()},
        "inputs_uint8": {"source": images[0], "driving": images[1]},
        "kp_canonical": kp_canonical["value"],
        "he_source": he_source_saved,
        "he_driving": he_driving_saved,
        "kp_source": kp_source["value"],
        "kp_driving": kp_driving["value"],
        "generator_original": outputs["generator_original"],
        "generator_spade": outputs["generator_spade"],
        "discriminator": {"feature_maps_1": disc["feature_maps_1"], "prediction_map_1": disc["prediction_map_1"]},
    }
    torch.save(reference, HERE / "tiny_reference.pt")
    config = {
        "model_params": TINY,
        "spade_hidden": TINY_SPADE_HIDDEN,
        "image_size": size,
        "batch": TINY_BATCH,
        "seed": SEED,
        "note": "tiny face-vid2vid networks of tiny_reference.pt (public config layout); made by make_reference.py",
    }
    (HERE / "tiny_config.json").write_text(json.dumps(config, indent=1) + "\n")
    for name, out in outputs.items():
        pred = out["prediction"]
        print(f"{name}: prediction mean {pred.mean():.3f} std {pred.std():.3f}")
    print(f"tiny_reference.pt: {(HERE / 'tiny_reference.pt').stat().st_size / 1e6:.2f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=Path, help="checkout of the public face-vid2vid repository")
    parser.add_argument("--step", choices=("manifest", "tiny"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    checkout = args.checkout.resolve()
    if args.step == "manifest":
        write_manifest(checkout)
    elif args.step == "tiny":
        write_tiny(checkout)
    else:
        # Each step imports its own copy of the public ``modules`` package: separate processes.
        for step in ("manifest", "tiny"):
            subprocess.run([sys.executable, __file__, str(checkout), "--step", step], check=True)


if __name__ == "__main__":
    main()
