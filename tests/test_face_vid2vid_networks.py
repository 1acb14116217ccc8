"""face-vid2vid renderer networks: public checkpoint layout, loading errors, batched inference, and
equality with the public implementation.

Fixtures (tests/data/face_vid2vid/, made by make_reference.py from the public code):
    * vox256_state_keys.json: the public networks' state-dict keys and shapes at vox-256 sizes;
    * tiny_reference.pt / tiny_config.json: tiny public networks' weights, inputs and outputs.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.utils.spectral_norm import SpectralNorm

from emoface.geometry.keypoints import bins_to_degrees, keypoints_from_estimate, transform_keypoints
from emoface.io.weights import KNOWN_WEIGHTS, MissingWeightsError
from emoface.networks.face_vid2vid import (
    CanonicalKeypointDetector,
    CheckpointMismatchError,
    DenseMotionNetwork,
    HeadExpressionEstimator,
    MultiScaleDiscriminator,
    OcclusionAwareGenerator,
    OcclusionAwareSPADEGenerator,
    load_face_vid2vid_state,
)
from emoface.networks.face_vid2vid.generator import warp_image

DATA = Path(__file__).parent / "data" / "face_vid2vid"
TINY_CONFIG = json.loads((DATA / "tiny_config.json").read_text())

# name -> (our class, key count, parameters in millions) at the vox-256 defaults (REFERENCES.md).
VOX256 = {
    "kp_detector": (CanonicalKeypointDetector, 75, 41.9),
    "he_estimator": (HeadExpressionEstimator, 402, 30.3),
    "generator_original": (OcclusionAwareGenerator, 304, 53.1),
    "generator_spade": (OcclusionAwareSPADEGenerator, 386, 101.0),
}


def tiny_networks(config: dict = TINY_CONFIG) -> dict[str, nn.Module]:
    """Our networks at the fixture's tiny sizes (the public config layout)."""
    params = config["model_params"]
    common = params["common_params"]
    return {
        "kp_detector": CanonicalKeypointDetector(**params["kp_detector_params"], **common),
        "he_estimator": HeadExpressionEstimator(**params["he_estimator_params"], **common),
        "generator_original": OcclusionAwareGenerator(**params["generator_params"], **common),
        "generator_spade": OcclusionAwareSPADEGenerator(
            **params["generator_params"], **common, spade_hidden=config["spade_hidden"]
        ),
        "discriminator": MultiScaleDiscriminator(**params["discriminator_params"]),
    }


def random_state(shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    """A state dict with the given names and shapes (random floats, int64 batch counters)."""
    return {
        key: torch.tensor(3, dtype=torch.int64) if key.endswith("num_batches_tracked") else torch.rand(shape)
        for key, shape in shapes.items()
    }


# ----------------------------------------------------------------------------------------------
# Public checkpoint layout
@pytest.mark.parametrize("name", list(VOX256))
def test_vox256_state_dict_loads_public_names_and_shapes(name: str) -> None:
    cls, key_count, millions = VOX256[name]
    public = json.loads((DATA / "vox256_state_keys.json").read_text())[name]
    net = cls()  # the defaults are the vox-256 sizes
    ours = {key: list(value.shape) for key, value in net.state_dict().items()}
    assert ours == public
    net.load_state_dict(random_state(public), strict=True)
    assert len(public) == key_count
    assert round(sum(p.numel() for p in net.parameters()) / 1e6, 1) == millions
    if name == "kp_detector":
        # The 13x13 anti-alias blur for the 0.25 input scale is a saved buffer.
        assert public["down.weight"] == [3, 1, 13, 13]
    if name == "generator_spade":
        # Hook-style spectral norm in the decoder: weight_orig / weight_u / weight_v, no weight.
        assert "decoder.G_middle_0.conv_0.weight_orig" in public and "decoder.G_middle_0.conv_0.weight_v" in public
        assert "decoder.G_middle_0.conv_0.weight" not in public
        assert public["first.conv.weight"] == [64, 3, 3, 3]  # 3x3 first conv (7x7 in the plain one)


def test_discriminator_matches_public_layout() -> None:
    public = json.loads((DATA / "vox256_state_keys.json").read_text())["discriminator"]
    net = MultiScaleDiscriminator(scales=[1], block_expansion=32, max_features=512, num_blocks=4, sn=True)
    assert {key: list(value.shape) for key, value in net.state_dict().items()} == public


def test_defaults_are_public_vox256_config() -> None:
    assert CanonicalKeypointDetector().config == {
        "block_expansion": 32, "feature_channel": 32, "num_kp": 15, "image_channel": 3, "max_features": 1024,
        "reshape_channel": 16384, "reshape_depth": 16, "num_blocks": 5, "temperature": 0.1,
        "estimate_jacobian": False, "scale_factor": 0.25, "single_jacobian_map": False,
    }  # fmt: skip
    generator_config = OcclusionAwareGenerator().config
    assert generator_config["dense_motion_params"] == {
        "block_expansion": 32, "max_features": 1024, "num_blocks": 5, "reshape_depth": 16, "compress": 4,
    }  # fmt: skip
    assert {k: generator_config[k] for k in ("block_expansion", "max_features", "num_down_blocks")} == {
        "block_expansion": 64, "max_features": 512, "num_down_blocks": 2,
    }  # fmt: skip


def test_inconsistent_sizes_are_rejected() -> None:
    with pytest.raises(ValueError, match="reshape_channel"):
        CanonicalKeypointDetector(block_expansion=4, max_features=16, num_blocks=3, reshape_channel=60, reshape_depth=4)
    with pytest.raises(ValueError, match="max_features"):
        OcclusionAwareGenerator(block_expansion=4, max_features=16, reshape_channel=8, reshape_depth=4)
    with pytest.raises(ValueError, match="num_down_blocks"):
        OcclusionAwareSPADEGenerator(num_down_blocks=3)


# ----------------------------------------------------------------------------------------------
# Loading
def test_weights_entry_is_registered() -> None:
    assert KNOWN_WEIGHTS["face_vid2vid"].file_name == "00000189-checkpoint.pth.tar"


def test_missing_file_is_a_missing_weights_error(tmp_path: Path) -> None:
    net = tiny_networks()["kp_detector"]
    with pytest.raises(MissingWeightsError, match="00000189-checkpoint.pth.tar"):
        load_face_vid2vid_state(None, kp_detector=net)  # the (empty) hub cache of the test session
    with pytest.raises(MissingWeightsError, match="nope.pth.tar"):
        load_face_vid2vid_state(tmp_path / "nope.pth.tar", kp_detector=net)


def test_checkpoint_with_entries_loads_with_weights_only(tmp_path: Path) -> None:
    torch.manual_seed(0)
    trained = tiny_networks()
    optimizer = torch.optim.Adam(trained["generator_spade"].parameters(), lr=2e-4, betas=(0.5, 0.999))
    trained["generator_spade"](
        torch.rand(1, 3, 64, 64), {"value": torch.rand(1, 4, 3) - 0.5}, {"value": torch.rand(1, 4, 3) - 0.5}
    )["prediction"].mean().backward()
    optimizer.step()
    path = tmp_path / "00000189-checkpoint.pth.tar"
    # The public training checkpoint layout: three networks plus discriminator, optimizers, epoch.
    torch.save(
        {
            "generator": trained["generator_spade"].state_dict(),
            "kp_detector": trained["kp_detector"].state_dict(),
            "he_estimator": trained["he_estimator"].state_dict(),
            "discriminator": trained["discriminator"].state_dict(),
            "optimizer_generator": optimizer.state_dict(),
            "epoch": 189,
        },
        path,
    )
    fresh = tiny_networks()
    loaded = load_face_vid2vid_state(
        tmp_path,  # a folder holding the known file name works too
        kp_detector=fresh["kp_detector"],
        he_estimator=fresh["he_estimator"],
        generator=fresh["generator_spade"],
    )
    assert loaded == ["kp_detector", "he_estimator", "generator"]
    for name in ("kp_detector", "he_estimator", "generator_spade"):
        expected, actual = trained[name].state_dict(), fresh[name].state_dict()
        assert all(torch.equal(expected[key], actual[key]) for key in expected)


def test_bare_and_dataparallel_state_dicts(tmp_path: Path) -> None:
    source = tiny_networks()["generator_original"]
    path = tmp_path / "generator.pth"
    torch.save({f"module.{key}": value for key, value in source.state_dict().items()}, path)
    target = tiny_networks()
    assert load_face_vid2vid_state(path, generator=target["generator_original"]) == ["generator"]
    assert torch.equal(target["generator_original"].final.weight, source.final.weight)
    with pytest.raises(CheckpointMismatchError, match="bare generator state dict"):
        load_face_vid2vid_state(path, kp_detector=target["kp_detector"])


def test_mismatch_lists_missing_unexpected_and_mis_shaped_keys(tmp_path: Path) -> None:
    nets = tiny_networks()
    kp_state = dict(nets["kp_detector"].state_dict())
    del kp_state["kp.bias"]  # missing
    kp_state["extra.weight"] = torch.zeros(2)  # unexpected
    kp_state["kp.weight"] = torch.zeros(4, 8, 3, 3, 3)  # mis-shaped (the network has (4, 4, 3, 3, 3))
    path = tmp_path / "bad.pth.tar"
    torch.save({"kp_detector": kp_state, "generator": nets["generator_spade"].state_dict(), "he_estimator": {}}, path)
    target = tiny_networks()
    before = target["kp_detector"].kp.weight.clone()
    with pytest.raises(CheckpointMismatchError) as info:
        load_face_vid2vid_state(
            path, kp_detector=target["kp_detector"], generator=target["generator_original"], he_estimator=None
        )
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert "missing keys (1): kp.bias" in message
    assert "unexpected keys (1): extra.weight" in message
    assert "kp.weight checkpoint (4, 8, 3, 3, 3) vs network (4, 4, 3, 3, 3)" in message
    # The sizes the network was built with, and the generator variant hint.
    assert "CanonicalKeypointDetector(block_expansion=4, " in message and "num_kp=4" in message
    assert "build OcclusionAwareSPADEGenerator" in message
    assert set(info.value.problems) == {"kp_detector", "generator"}
    assert torch.equal(target["kp_detector"].kp.weight, before)  # nothing loaded
    # strict=False tolerates missing / unexpected keys, never shape mismatches.
    with pytest.raises(CheckpointMismatchError, match="mis-shaped"):
        load_face_vid2vid_state(path, kp_detector=target["kp_detector"], strict=False)
    # An entry the checkpoint lacks.
    torch.save({"kp_detector": nets["kp_detector"].state_dict()}, path)
    with pytest.raises(CheckpointMismatchError, match="no 'he_estimator' entry"):
        load_face_vid2vid_state(path, kp_detector=target["kp_detector"], he_estimator=target["he_estimator"])


# ----------------------------------------------------------------------------------------------
# Batched inference
def _as_if_trained(net: nn.Module, seed: int = 0) -> None:
    """Non-trivial BatchNorm statistics and converged spectral norms (random u, v amplify noise)."""
    generator = torch.Generator().manual_seed(seed)
    for module in net.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            shape = module.running_mean.shape
            module.running_mean.copy_(0.1 * torch.randn(shape, generator=generator))
            module.running_var.copy_(0.5 + torch.rand(shape, generator=generator))
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, SpectralNorm):
                for _ in range(30):
                    hook.compute_weight(module, do_power_iteration=True)


@pytest.mark.parametrize("name", ["generator_original", "generator_spade"])
@pytest.mark.filterwarnings("ignore:TF32 acceleration")
@torch.no_grad()
def test_animate_batch_equals_per_frame_forward(name: str) -> None:
    torch.manual_seed(0)
    generator = tiny_networks()[name]
    _as_if_trained(generator)
    generator.eval()
    source_image = torch.rand(1, 3, 64, 64)
    kp_source = {"value": torch.rand(1, 4, 3) * 1.6 - 0.8}
    kp_driving = {"value": kp_source["value"] + 0.2 * torch.randn(5, 4, 3)}

    def per_frame() -> list[dict[str, torch.Tensor]]:
        return [generator(source_image, {"value": kp_driving["value"][i : i + 1]}, kp_source) for i in range(5)]

    encoded = generator.encode_source(source_image)
    assert set(encoded) == {"feature_3d", "compressed"}
    batched = generator.animate(encoded, kp_source, kp_driving)  # batch-1 source, 5 frames
    assert set(batched) == {"mask", "occlusion_map", "prediction"}
    assert batched["prediction"].shape == (5, 3, 64, 64)
    assert batched["mask"].shape == (5, 5, 4, 16, 16) and batched["occlusion_map"].shape == (5, 1, 16, 16)
    for i, single in enumerate(per_frame()):
        for key, value in single.items():
            # oneDNN picks batch-size dependent conv algorithms; the random tiny SPADE decoder
            # amplifies their float noise to a few 1e-6.
            torch.testing.assert_close(batched[key][i : i + 1], value, atol=2e-5, rtol=0)
    # A per-frame source (batch N) broadcasts the same way.
    repeated = {key: value.expand(5, *value.shape[1:]) for key, value in encoded.items()}
    again = generator.animate(repeated, kp_source, kp_driving)
    torch.testing.assert_close(again["prediction"], batched["prediction"], atol=2e-5, rtol=0)

    # Without oneDNN the batched path is the per-frame one up to the GEMM's float summation order,
    # which still depends on the batch on some CPUs (2.5e-6 on a 2-core Intel Xeon, none on the AMD
    # EPYC it was written on).
    with torch.backends.mkldnn.flags(enabled=False):
        batched = generator.animate(generator.encode_source(source_image), kp_source, kp_driving)
        for i, single in enumerate(per_frame()):
            for key, value in single.items():
                torch.testing.assert_close(batched[key][i : i + 1], value, atol=1e-5, rtol=0)


@torch.no_grad()
def test_warp_image_moves_pixels_by_the_fields_xy() -> None:
    torch.manual_seed(0)
    image = torch.rand(2, 3, 64, 64)
    identity = torch.eye(3, 4).expand(2, 3, 4)
    field = nn.functional.affine_grid(identity, [2, 1, 4, 16, 16], align_corners=True)  # the dense motion's identity
    torch.testing.assert_close(warp_image(image, field), image, atol=1e-5, rtol=0)  # exact up to the borders
    shift = identity.clone()
    shift[:, 0, 3] = -16 / 63  # sample 8 px to the left (pixel centres 2 / 63 apart): the image moves 8 px right
    moved = warp_image(image[:1], nn.functional.affine_grid(shift, [2, 1, 4, 16, 16], align_corners=True))
    assert moved.shape == (2, 3, 64, 64)  # a batch-1 image broadcasts to the field's batch
    torch.testing.assert_close(moved[..., 8:], image[:1, ..., :-8].expand(2, -1, -1, -1), atol=1e-5, rtol=0)
    torch.testing.assert_close(moved[..., :8], image[:1, ..., :1].expand(2, -1, -1, 8), atol=1e-5, rtol=0)


@torch.no_grad()
def test_image_skip_blends_the_warped_source_with_the_drawn_image() -> None:
    torch.manual_seed(0)
    params = TINY_CONFIG["model_params"]
    generator = OcclusionAwareGenerator(**params["generator_params"], **params["common_params"], image_skip=True)
    _as_if_trained(generator)
    generator.eval()
    assert generator.final.out_channels == 4  # RGB and the blending logit
    source_image = torch.rand(1, 3, 64, 64)
    kp_source = {"value": torch.rand(1, 4, 3) * 1.6 - 0.8}
    kp_driving = {"value": kp_source["value"] + 0.2 * torch.randn(3, 4, 3)}
    encoded = generator.encode_source(source_image)
    assert set(encoded) == {"feature_3d", "compressed", "image"}
    out = generator.animate(encoded, kp_source, kp_driving)
    assert set(out) == {"mask", "occlusion_map", "prediction", "blend", "warped_source"}
    assert out["blend"].shape == (3, 1, 64, 64) and 0 < out["blend"].min() and out["blend"].max() < 1
    torch.testing.assert_close(generator(source_image.expand(3, -1, -1, -1), kp_driving, kp_source)["prediction"],
                               out["prediction"], atol=2e-5, rtol=0)  # fmt: skip
    warped = generator.warp(encoded, kp_source, kp_driving)
    source_warped = warp_image(source_image, warped["deformation"])
    torch.testing.assert_close(out["warped_source"], source_warped)
    assert (source_warped - source_image).abs().mean() > 0.01  # the driving keypoints move the source
    # Blending weight 1: the prediction is the source warped, and held still it is the source itself.
    generator.final.bias.data[3] = 100.0
    torch.testing.assert_close(generator.animate(encoded, kp_source, kp_driving)["prediction"],
                               source_warped, atol=1e-5, rtol=0)  # fmt: skip
    held = generator.animate(encoded, kp_source, {"value": kp_source["value"].expand(3, -1, -1)})["prediction"]
    torch.testing.assert_close(held, source_image.expand(3, -1, -1, -1), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="image_skip"):
        generator.animate({key: encoded[key] for key in ("feature_3d", "compressed")}, kp_source, kp_driving)
    with pytest.raises(RuntimeError, match="animate"):
        generator.decode(warped["features"])


@torch.no_grad()
def test_dense_motion_jacobians_broadcast() -> None:
    torch.manual_seed(0)
    net = DenseMotionNetwork(block_expansion=4, num_blocks=2, max_features=16, num_kp=3, feature_channel=4,
                             reshape_depth=4, compress=2).eval()  # fmt: skip
    compressed = net.compress_feature(torch.rand(1, 4, 4, 8, 8))
    kp_source = {"value": torch.rand(1, 3, 3) - 0.5, "jacobian": torch.eye(3) + 0.1 * torch.randn(1, 3, 3, 3)}
    kp_driving = {"value": torch.rand(4, 3, 3) - 0.5, "jacobian": torch.eye(3) + 0.1 * torch.randn(4, 3, 3, 3)}
    batched = net.forward_compressed(compressed, kp_driving, kp_source)
    assert batched["deformation"].shape == (4, 4, 8, 8, 3)
    for i in range(4):
        single = net.forward_compressed(compressed, {k: v[i : i + 1] for k, v in kp_driving.items()}, kp_source)
        torch.testing.assert_close(batched["deformation"][i : i + 1], single["deformation"], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="broadcast"):
        net.forward_compressed(compressed.expand(2, -1, -1, -1, -1), kp_driving, kp_source)


def test_dense_motion_mask_depth_kernel() -> None:
    """The public 7x7x7 mask conv by default; a shallower kernel (the CPU config's) keeps every
    output's shape, and an even or empty depth is refused with its value."""
    sizes = {"block_expansion": 4, "num_blocks": 2, "max_features": 16, "num_kp": 3, "feature_channel": 4,
             "reshape_depth": 4, "compress": 2}  # fmt: skip
    assert DenseMotionNetwork(**sizes).mask.kernel_size == (7, 7, 7)
    public, shallow = DenseMotionNetwork(**sizes).eval(), DenseMotionNetwork(**sizes, mask_depth_kernel=3).eval()
    assert shallow.mask.kernel_size == (3, 7, 7) and shallow.config["mask_depth_kernel"] == 3
    compressed = torch.rand(2, 2, 4, 8, 8)
    kp_source, kp_driving = {"value": torch.rand(2, 3, 3) - 0.5}, {"value": torch.rand(2, 3, 3) - 0.5}
    with torch.no_grad():
        expected, got = (net.forward_compressed(compressed, kp_driving, kp_source) for net in (public, shallow))
    assert {k: v.shape for k, v in got.items()} == {k: v.shape for k, v in expected.items()}
    for bad in (0, 4):
        with pytest.raises(ValueError, match=f"mask_depth_kernel.*{bad}"):
            DenseMotionNetwork(**sizes, mask_depth_kernel=bad)


def test_keypoint_detector_jacobian_output() -> None:
    params = {**TINY_CONFIG["model_params"]["kp_detector_params"], "num_kp": 4}
    detector = CanonicalKeypointDetector(**params, estimate_jacobian=True).eval()
    out = detector(torch.rand(2, 3, 64, 64))
    assert out["value"].shape == (2, 4, 3) and out["jacobian"].shape == (2, 4, 3, 3)
    # Initialised to identity Jacobians.
    torch.testing.assert_close(out["jacobian"], torch.eye(3).expand(2, 4, 3, 3))
    assert set(CanonicalKeypointDetector(**params).eval()(torch.rand(1, 3, 64, 64))) == {"value"}


# ----------------------------------------------------------------------------------------------
# Equality with the public implementation (tiny sizes)
@torch.no_grad()
def test_tiny_outputs_equal_public_implementation() -> None:
    reference = torch.load(DATA / "tiny_reference.pt", map_location="cpu", weights_only=True)
    nets = tiny_networks()
    # Our freshly built blur kernel equals the public one.
    assert torch.equal(nets["kp_detector"].down.weight, reference["state_dicts"]["kp_detector"]["down.weight"])
    for name, net in nets.items():
        net.load_state_dict(reference["state_dicts"][name], strict=True)
        net.eval()
    source = reference["inputs_uint8"]["source"].float() / 255
    driving = reference["inputs_uint8"]["driving"].float() / 255

    def close(actual: torch.Tensor, expected: torch.Tensor) -> None:
        torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)

    kp_canonical = nets["kp_detector"](source)
    assert set(kp_canonical) == {"value"}
    close(kp_canonical["value"], reference["kp_canonical"])
    for key, image in (("he_source", source), ("he_driving", driving)):
        estimate = nets["he_estimator"](image)
        assert set(estimate) == {"yaw", "pitch", "roll", "t", "exp"}
        for field, value in estimate.items():
            close(value, reference[key][field])

    kp_source = {"value": reference["kp_source"]}
    kp_driving = {"value": reference["kp_driving"]}
    for name in ("generator_original", "generator_spade"):
        out = nets[name](source, kp_driving, kp_source)
        assert set(out) == {"mask", "occlusion_map", "prediction"}
        for key in ("mask", "occlusion_map", "prediction"):
            close(out[key], reference[name][key])

    maps = nets["discriminator"]({"prediction_1": driving})
    close(maps["prediction_map_1"], reference["discriminator"]["prediction_map_1"])
    for actual, expected in zip(maps["feature_maps_1"], reference["discriminator"]["feature_maps_1"], strict=True):
        close(actual, expected)

    # The geometry module reproduces the public keypoint_transformation.
    close(keypoints_from_estimate(reference["kp_canonical"], reference["he_source"]), reference["kp_source"])
    he = reference["he_driving"]
    angles = [bins_to_degrees(he[k]) for k in ("yaw", "pitch", "roll")]
    close(transform_keypoints(reference["kp_canonical"], *angles, he["t"], he["exp"]), reference["kp_driving"])


@pytest.mark.parametrize("name", ["kp_detector", "he_estimator", "generator_original", "generator_spade"])
def test_cpu_convolutions_run_channels_last_with_the_same_results(name: str) -> None:
    """On a CPU every convolution gets its input channels-last (oneDNN's fast kernels); outputs and
    gradients equal the default layout's to float rounding, and the state dict keeps its layout."""
    torch.manual_seed(0)
    network = tiny_networks()[name].eval()  # eval: batch norm's statistics do not amplify float noise
    plain = copy.deepcopy(network)
    convolutions = [m for m in plain.modules() if isinstance(m, nn.Conv2d | nn.Conv3d)]
    assert convolutions
    removed = 0
    for module in convolutions:  # the default layout: without the layout hook (spectral norm's stays)
        hooks = module._forward_pre_hooks
        for key in [key for key, hook in hooks.items() if getattr(hook, "__name__", "") == "_channels_last_on_cpu"]:
            del hooks[key]
            removed += 1
    assert removed == len(convolutions)
    layouts: list[bool] = []  # per convolution call: did its input arrive channels-last?

    def record_layout(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        layout = torch.channels_last if args[0].dim() == 4 else torch.channels_last_3d
        layouts.append(args[0].is_contiguous(memory_format=layout))

    for module in network.modules():
        if isinstance(module, nn.Conv2d | nn.Conv3d):
            module.register_forward_hook(record_layout)
    image = torch.rand(2, 3, 64, 64)
    if name.startswith("generator"):
        kp_source = {"value": torch.rand(2, 4, 3) * 1.6 - 0.8}
        kp_driving = {"value": kp_source["value"] + 0.1 * torch.randn(2, 4, 3)}
        outputs = [net(image, kp_driving, kp_source) for net in (network, plain)]
    else:
        outputs = [net(image) for net in (network, plain)]
    assert layouts and all(layouts)
    for hooked, default in zip(*(list(out.values()) for out in outputs), strict=True):
        torch.testing.assert_close(hooked, default, atol=2e-5, rtol=1e-4)
    for out in outputs:
        sum(value.float().pow(2).mean() for value in out.values()).backward()
    for (key, hooked), default in zip(network.named_parameters(), plain.parameters(), strict=True):
        if hooked.grad is not None:
            torch.testing.assert_close(hooked.grad, default.grad, atol=1e-5, rtol=1e-3, msg=key)
    assert all(value.is_contiguous() for value in network.state_dict().values())
