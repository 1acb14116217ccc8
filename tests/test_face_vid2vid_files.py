"""face-vid2vid files as users download them: the generator class read from the file, the
training ``.pth.tar`` dict, SadTalker's flat safetensors file, bare state dicts, and the error for
anything else. Stand-in weights are written by the tests (random values, public names and shapes).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from emoface.lightning_modules.face_renderer import FaceRenderer
from emoface.lightning_modules.landmarks_to_keypoints import LandmarksToKeypoints
from emoface.networks import KeypointMapper
from emoface.networks.face_vid2vid import (
    LAYOUTS,
    CanonicalKeypointDetector,
    CheckpointMismatchError,
    HeadExpressionEstimator,
    OcclusionAwareGenerator,
    OcclusionAwareSPADEGenerator,
    UnknownCheckpointLayoutError,
    generator_variant,
    load_face_vid2vid_networks,
    load_face_vid2vid_state,
    read_face_vid2vid_checkpoint,
)
from emoface.rendering import FaceVid2VidRenderer

DATA = Path(__file__).parent / "data" / "face_vid2vid"
TINY = json.loads((DATA / "tiny_config.json").read_text())
PARAMS = TINY["model_params"]
KP_PARAMS = {**PARAMS["kp_detector_params"], **PARAMS["common_params"]}
HE_PARAMS = {**PARAMS["he_estimator_params"], **PARAMS["common_params"]}
GEN_PARAMS = {**PARAMS["generator_params"], **PARAMS["common_params"]}
SPADE_PARAMS = {**GEN_PARAMS, "spade_hidden": TINY["spade_hidden"]}


def tiny(variant: str) -> dict[str, nn.Module]:
    generator = OcclusionAwareSPADEGenerator(**SPADE_PARAMS) if variant == "spade" else OcclusionAwareGenerator(**GEN_PARAMS)
    return {
        "kp_detector": CanonicalKeypointDetector(**KP_PARAMS),
        "he_estimator": HeadExpressionEstimator(**HE_PARAMS),
        "generator": generator,
    }


def randomised(nets: dict[str, nn.Module], seed: int) -> dict[str, dict[str, torch.Tensor]]:
    """Random stand-in weights in the networks' own names and shapes."""
    generator = torch.Generator().manual_seed(seed)
    return {
        name: {
            key: value if value.dtype == torch.int64 else torch.rand(value.shape, generator=generator)
            for key, value in net.state_dict().items()
        }
        for name, net in nets.items()
    }


def cheap_vox256_state(shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    """vox-256 names and shapes at almost no disk cost: each value a broadcast view of one number."""
    return {
        key: torch.tensor(1, dtype=torch.int64) if key.endswith("num_batches_tracked") else torch.full((1,), 0.5).expand(shape)
        for key, shape in shapes.items()
    }


# ----------------------------------------------------------------------------------------------
def test_public_vox256_spade_file_loads_with_no_argument_everywhere(tmp_path: Path) -> None:
    """The released 00000189-checkpoint.pth.tar holds the SPADE generator: every loader builds it."""
    public = json.loads((DATA / "vox256_state_keys.json").read_text())
    path = tmp_path / "00000189-checkpoint.pth.tar"
    torch.save(
        {
            "generator": cheap_vox256_state(public["generator_spade"]),
            "kp_detector": cheap_vox256_state(public["kp_detector"]),
            "he_estimator": cheap_vox256_state(public["he_estimator"]),
            "epoch": 189,
        },
        path,
    )
    assert read_face_vid2vid_checkpoint(path, keys_only=True).generator_variant == "spade"

    renderer = FaceVid2VidRenderer.from_checkpoint(path)
    assert type(renderer.generator) is OcclusionAwareSPADEGenerator
    assert float(renderer.generator.decoder.fc.weight.detach()[0, 0, 0, 0]) == 0.5
    del renderer

    system = LandmarksToKeypoints(renderer_checkpoint=str(path))
    system.load_renderer()
    assert type(system.renderer()[2]) is OcclusionAwareSPADEGenerator
    del system

    renderer_system = FaceRenderer(init_checkpoint=str(path), perceptual_backbone=None)
    assert type(renderer_system.generator) is OcclusionAwareSPADEGenerator
    renderer_system.load_init_checkpoint()
    assert float(renderer_system.kp_detector.kp.weight.detach().flatten()[0]) == 0.5

    # Rebuilt from its own checkpoint after the init file went away: the saved weights decide.
    saved = {"state_dict": renderer_system.state_dict()}
    del renderer_system
    path.unlink()
    rebuilt = FaceRenderer(init_checkpoint=str(path), perceptual_backbone=None)
    assert type(rebuilt.generator) is OcclusionAwareGenerator  # the file is gone: the plain default
    rebuilt.on_load_checkpoint(saved)
    assert type(rebuilt.generator) is OcclusionAwareSPADEGenerator
    rebuilt.load_state_dict(saved["state_dict"], strict=True)


def test_plain_and_spade_files_pick_their_generator(tmp_path: Path) -> None:
    for seed, variant, cls in ((0, "plain", OcclusionAwareGenerator), (1, "spade", OcclusionAwareSPADEGenerator)):
        states = randomised(tiny(variant), seed)
        path = tmp_path / f"{variant}.pth.tar"
        torch.save({**states, "optimizer_generator": {"state": {}, "param_groups": []}}, path)
        assert generator_variant(states["generator"]) == variant
        renderer = FaceVid2VidRenderer.from_checkpoint(
            path, kp_detector_params=KP_PARAMS, he_estimator_params=HE_PARAMS,
            generator_params=SPADE_PARAMS if variant == "spade" else GEN_PARAMS, batch_size=2,
        )  # fmt: skip
        assert type(renderer.generator) is cls
        for name in ("kp_detector", "he_estimator", "generator"):
            loaded = getattr(renderer, name).state_dict()
            assert all(torch.equal(loaded[key], value) for key, value in states[name].items()), name


def test_sadtalker_safetensors_selects_entries_by_prefix(tmp_path: Path) -> None:
    """SadTalker_V0.0.2_256.safetensors: flat generator. / kp_extractor. / he_estimator. keys beside
    other networks' entries, which are ignored."""
    states = randomised(tiny("spade"), 2)
    file_prefix = {"generator": "generator.", "kp_detector": "kp_extractor.", "he_estimator": "he_estimator."}
    flat = {f"{file_prefix[name]}{key}": value for name, state in states.items() for key, value in state.items()}
    flat["mapping.fc.weight"] = torch.rand(4, 3)  # another network of the same file
    flat["audio2exp.netG.encoder.0.weight"] = torch.rand(2, 2)
    path = tmp_path / "SadTalker_V0.0.2_256.safetensors"
    save_file({key: value.contiguous() for key, value in flat.items()}, path)

    checkpoint = read_face_vid2vid_checkpoint(path)
    assert checkpoint.layout == "sadtalker_safetensors"
    assert set(checkpoint.entries) == {"generator", "kp_detector", "he_estimator"}
    nets = load_face_vid2vid_networks(
        path, kp_detector_params=KP_PARAMS, he_estimator_params=HE_PARAMS, generator_params=SPADE_PARAMS
    )
    assert type(nets["generator"]) is OcclusionAwareSPADEGenerator
    for name, net in nets.items():
        assert all(torch.equal(net.state_dict()[key], value) for key, value in states[name].items()), name
    # The same file through the networks-given API, and as stage 2's renderer_checkpoint.
    given = tiny("spade")
    assert load_face_vid2vid_state(path, **given) == ["kp_detector", "he_estimator", "generator"]
    mapper = KeypointMapper(num_kp=PARAMS["common_params"]["num_kp"], hidden=16, num_blocks=1)
    system = LandmarksToKeypoints(mapper, renderer_checkpoint=str(path), **tiny("spade"))
    system.load_renderer()
    assert torch.equal(system.renderer()[2].state_dict()["first.conv.weight"], states["generator"]["first.conv.weight"])


def test_wrong_generator_class_names_the_right_one(tmp_path: Path) -> None:
    states = randomised(tiny("spade"), 3)
    path = tmp_path / "spade.pth.tar"
    torch.save(states, path)
    nets = tiny("plain")
    with pytest.raises(CheckpointMismatchError, match="holds a SPADE generator"):
        load_face_vid2vid_state(path, generator=nets["generator"])


def test_unknown_layout_is_one_error_listing_the_layouts(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.rand(2, 2), "head.bias": torch.rand(2)}, path)
    with pytest.raises(UnknownCheckpointLayoutError) as info:
        load_face_vid2vid_networks(path)
    message = str(info.value)
    assert str(path) in message and "encoder.weight" in message
    assert all(description in message for description in LAYOUTS.values())

    tensor_file = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), tensor_file)
    with pytest.raises(UnknownCheckpointLayoutError, match="holds a Tensor") as info:
        read_face_vid2vid_checkpoint(tensor_file)
    assert LAYOUTS["sadtalker_safetensors"] in str(info.value)

    no_face = tmp_path / "other.safetensors"
    save_file({"mapping.fc.weight": torch.rand(2, 2)}, no_face)
    with pytest.raises(UnknownCheckpointLayoutError, match="mapping.fc.weight"):
        read_face_vid2vid_checkpoint(no_face)


def test_bare_generator_state_dict_is_read_with_its_variant(tmp_path: Path) -> None:
    states = randomised(tiny("plain"), 4)
    path = tmp_path / "generator.pth"
    torch.save({f"module.{key}": value for key, value in states["generator"].items()}, path)
    checkpoint = read_face_vid2vid_checkpoint(path)
    assert (checkpoint.layout, list(checkpoint.entries), checkpoint.generator_variant) == ("bare", ["generator"], "plain")
