"""LivePortrait networks: the public files' names and shapes, strict loading, the motion
conventions against hand-computed values, and equality with the public implementation.

Fixtures (tests/data/live_portrait/, made by make_reference.py from the public code):
    * public_state_keys.json: the public networks' state-dict keys and shapes per file;
    * tiny_reference.pt: tiny public networks' inputs and outputs, weights from :func:`seeded_state`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import pytest
import torch

from emoface.io.weights import MissingWeightsError
from emoface.networks.live_portrait import (
    FILES,
    AppearanceFeatureExtractor,
    LivePortraitMismatchError,
    MotionExtractor,
    SPADEDecoder,
    StitchingRetargeting,
    WarpingNetwork,
    build_networks,
    headpose_degrees,
    keypoints_from_motion,
    load_live_portrait,
    relative_motion,
    rotation_matrix,
    save_live_portrait,
    transform_keypoints,
)

DATA = Path(__file__).parent / "data" / "live_portrait"

# file -> (key count, parameters in millions) at the public sizes (REFERENCES.md: F 0.84M, M 28.1M,
# W 45.5M, G 55.4M).
PUBLIC_SIZES = {
    "appearance_feature_extractor.pth": (107, 0.84),
    "motion_extractor.pth": (212, 28.1),
    "warping_module.pth": (97, 45.5),
    "spade_generator.pth": (182, 55.4),
}


def seeded_state(state: Mapping[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Deterministic stand-in weights for a state dict's names and shapes (drawn in sorted key
    order, so the public networks and ours get the same values): fan-in scaled normals for
    weights, small biases, unit-ish norm scales, positive running variances, unit spectral-norm
    vectors, zero batch counters."""
    generator = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for key in sorted(state):
        shape = state[key].shape
        randn = torch.randn(shape, generator=generator)
        if key.endswith("num_batches_tracked"):
            out[key] = torch.zeros((), dtype=torch.int64)
        elif key.endswith("running_var"):
            out[key] = 0.5 + torch.rand(shape, generator=generator)
        elif key.endswith("running_mean"):
            out[key] = 0.1 * randn
        elif key.endswith(("weight_u", "weight_v")):
            out[key] = randn / randn.norm()
        elif len(shape) >= 2:
            out[key] = randn / math.sqrt(shape[1:].numel())
        elif key.endswith("weight") and "norm" in key:
            out[key] = 1 + 0.1 * randn
        else:
            out[key] = 0.1 * randn
    return out


def cheap_state(shapes: Mapping[str, list[int]]) -> dict[str, torch.Tensor]:
    """Public names and shapes at almost no disk cost (each value a broadcast view of one number)."""
    return {
        key: torch.zeros((), dtype=torch.int64) if key.endswith("num_batches_tracked") else torch.full((1,), 0.25).expand(shape)
        for key, shape in shapes.items()
    }


def shapes_of(state: Mapping[str, torch.Tensor]) -> dict[str, list[int]]:
    return {key: list(value.shape) for key, value in state.items()}


# ----------------------------------------------------------------------------------------------
# The public files
def test_public_names_and_shapes_equal_ours() -> None:
    public = json.loads((DATA / "public_state_keys.json").read_text())
    assert set(public) == set(FILES.values())
    nets = build_networks()
    for name, file_name in FILES.items():
        net = getattr(nets, name)
        if isinstance(net, StitchingRetargeting):
            assert net.file_state().keys() == public[file_name].keys()
            for entry, state in net.file_state().items():
                assert shapes_of(state) == public[file_name][entry], entry
            continue
        assert shapes_of(net.state_dict()) == public[file_name], file_name
        count, millions = PUBLIC_SIZES[file_name]
        assert len(public[file_name]) == count
        assert abs(sum(p.numel() for p in net.parameters()) / 1e6 - millions) < 0.05
    spade = public["spade_generator.pth"]
    # Hook-style spectral norm, and the pixel-shuffle output conv (upscale 2: 12 = 3 * 2 * 2 channels).
    assert "G_middle_0.conv_0.weight_orig" in spade and "G_middle_0.conv_0.weight" not in spade
    assert spade["conv_img.0.weight"] == [12, 64, 3, 3]
    motion = public["motion_extractor.pth"]
    assert motion["detector.fc_kp.weight"] == [63, 768] and motion["detector.fc_exp.weight"] == [63, 768]
    assert all(motion[f"detector.fc_{a}.weight"] == [66, 768] for a in ("pitch", "yaw", "roll"))
    assert motion["detector.fc_scale.weight"] == [1, 768] and motion["detector.fc_t.weight"] == [3, 768]
    stitch = public["stitching_retargeting_module.pth"]
    assert stitch["retarget_shoulder"]["module.mlp.0.weight"] == [128, 126]
    assert stitch["retarget_shoulder"]["module.mlp.6.weight"] == [65, 64]


@pytest.mark.parametrize("subfolders", [True, False])
def test_every_public_file_loads_strictly(tmp_path: Path, subfolders: bool) -> None:
    """Stand-in files with the public names, shapes and layout (raw state dicts; the stitching file
    a dict of three with ``module.`` keys) load strictly into networks at the public sizes."""
    public = json.loads((DATA / "public_state_keys.json").read_text())
    root = tmp_path / "pretrained_weights"
    for name, file_name in FILES.items():
        sub = ("retargeting_models" if name == "stitching_retargeting_module" else "base_models") if subfolders else ""
        target = root / "liveportrait" / sub / file_name if subfolders else root / file_name
        target.parent.mkdir(parents=True, exist_ok=True)
        shapes = public[file_name]
        if name == "stitching_retargeting_module":
            torch.save({entry: cheap_state(entry_shapes) for entry, entry_shapes in shapes.items()}, target)
        else:
            torch.save(cheap_state(shapes), target)
    nets = load_live_portrait(root)
    for name, net in nets.items():
        assert all(float(value.flatten()[0]) == 0.25 for key, value in net.state_dict().items()
                   if value.is_floating_point()), name  # fmt: skip
    assert nets.stitching_retargeting_module is not None


def test_missing_and_mismatched_files_are_clear(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError, match="appearance_feature_extractor.pth") as info:
        load_live_portrait(tmp_path)
    assert "huggingface.co/KwaiVGI/LivePortrait" in str(info.value)

    tiny = json.loads(json.dumps(torch.load(DATA / "tiny_reference.pt", weights_only=True)["tiny"]))
    nets = build_networks(tiny)
    folder = save_live_portrait(tmp_path / "tiny", nets)
    assert type(load_live_portrait(folder).motion_extractor) is MotionExtractor  # sizes from models.json
    (folder / "models.json").unlink()  # public sizes now: every file mismatches, one error lists them
    with pytest.raises(LivePortraitMismatchError) as info:
        load_live_portrait(folder)
    message = str(info.value)
    assert all(f"* {file_name}" in message for file_name in FILES.values() if "stitching" not in file_name)
    assert "mis-shaped keys" in message and "models.json" in message


# ----------------------------------------------------------------------------------------------
# Motion conventions
def test_degrees_from_bins_by_hand() -> None:
    logits = torch.full((3, 66), -1e4)
    logits[0, 0] = 0.0  # all mass on bin 0
    logits[1, 40] = 0.0  # on bin 40
    logits[2] = 0.0  # uniform: mean index 32.5
    torch.testing.assert_close(headpose_degrees(logits), torch.tensor([-97.5, 40 * 3 - 97.5, 32.5 * 3 - 97.5]))
    two = torch.full((1, 66), -1e4)
    two[0, 10] = two[0, 11] = 0.0  # half on bins 10 and 11: index 10.5
    torch.testing.assert_close(headpose_degrees(two), torch.tensor([10.5 * 3 - 97.5]))


def test_rotation_convention_by_hand() -> None:
    zero, ninety = torch.tensor([0.0]), torch.tensor([90.0])
    e1, e2 = torch.tensor([[[1.0, 0.0, 0.0]]]), torch.tensor([[[0.0, 1.0, 0.0]]])
    close = dict(atol=1e-6, rtol=0)
    # Row vectors: p @ R = (Rz Ry Rx p^T)^T. Pitch about x takes y to z; yaw about y takes x to -z;
    # roll about z takes x to y.
    torch.testing.assert_close(e2 @ rotation_matrix(ninety, zero, zero), torch.tensor([[[0.0, 0.0, 1.0]]]), **close)
    torch.testing.assert_close(e1 @ rotation_matrix(zero, ninety, zero), torch.tensor([[[0.0, 0.0, -1.0]]]), **close)
    torch.testing.assert_close(e1 @ rotation_matrix(zero, zero, ninety), torch.tensor([[[0.0, 1.0, 0.0]]]), **close)
    # Order: pitch first, then yaw: y -> z -> x.
    torch.testing.assert_close(e2 @ rotation_matrix(ninety, ninety, zero), torch.tensor([[[1.0, 0.0, 0.0]]]), **close)
    # A 30-degree yaw in the public form: R = Ry(30)^T.
    c, s = math.cos(math.pi / 6), math.sin(math.pi / 6)
    expected = torch.tensor([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])
    torch.testing.assert_close(rotation_matrix(zero, torch.tensor([30.0]), zero)[0], expected, **close)


def test_keypoint_transform_by_hand() -> None:
    kp = torch.tensor([[[1.0, 2.0, 3.0], [0.0, -1.0, 0.5]]])
    exp = torch.tensor([[0.5, 0.0, 0.0, 0.0, 0.0, -0.5]])
    scale, t = torch.tensor([[2.0]]), torch.tensor([[0.1, 0.2, 5.0]])  # t's z is not applied
    out = transform_keypoints(kp, torch.eye(3)[None], exp, scale, t)
    torch.testing.assert_close(out, torch.tensor([[[3.1, 4.2, 6.0], [0.1, -1.8, 0.0]]]))
    # With a 90-degree roll: (1, 2, 3) -> (-2, 1, 3), then + exp, * scale, + t.
    motion = {"pitch": torch.tensor([0.0]), "yaw": torch.tensor([0.0]), "roll": torch.tensor([90.0]),
              "exp": exp, "scale": scale, "t": t}  # fmt: skip
    torch.testing.assert_close(
        keypoints_from_motion(kp, motion), torch.tensor([[[-2.9, 2.2, 6.0], [2.1, 0.2, 0.0]]]), atol=1e-5, rtol=0
    )


def test_relative_motion_of_the_first_frame_is_the_source() -> None:
    gen = torch.Generator().manual_seed(0)

    def motion(n: int) -> dict[str, torch.Tensor]:
        return {"pitch": torch.rand(n, generator=gen) * 40 - 20, "yaw": torch.rand(n, generator=gen) * 40 - 20,
                "roll": torch.rand(n, generator=gen) * 40 - 20, "exp": torch.randn(n, 63, generator=gen),
                "scale": 1 + torch.rand(n, 1, generator=gen), "t": torch.randn(n, 3, generator=gen)}  # fmt: skip

    source, first = motion(1), motion(1)
    out = relative_motion(source, first, first)
    torch.testing.assert_close(out["rotation"], rotation_matrix(source["pitch"], source["yaw"], source["roll"]))
    torch.testing.assert_close(out["exp"], source["exp"])
    torch.testing.assert_close(out["scale"], source["scale"])
    torch.testing.assert_close(out["t"], torch.cat([source["t"][:, :2], torch.zeros(1, 1)], 1))


# ----------------------------------------------------------------------------------------------
# Equality with the public implementation (tiny sizes, fixture from the public code)
def test_tiny_networks_reproduce_the_public_outputs() -> None:
    ref = torch.load(DATA / "tiny_reference.pt", weights_only=True)
    tiny = ref["tiny"]
    f = AppearanceFeatureExtractor(**tiny["appearance_feature_extractor"])
    m = MotionExtractor(**tiny["motion_extractor"])
    w = WarpingNetwork(**tiny["warping_module"])
    g = SPADEDecoder(**tiny["spade_generator"])
    s = StitchingRetargeting()
    # The fixture's seeds, in the public networks' order (f, m, w, g, stitching MLP).
    for seed, net in enumerate((f, m, w, g, s.stitching)):
        net.load_state_dict(seeded_state(net.state_dict(), seed), strict=True)
        net.eval()
    close = dict(atol=2e-5, rtol=1e-4)
    with torch.no_grad():
        feature = f(ref["source"])
        torch.testing.assert_close(feature, ref["feature"], **close)
        raw = m(ref["driving"])
        for key, value in ref["raw_driving"].items():
            torch.testing.assert_close(raw[key], value, **close)
        motion_d = m.motion(ref["driving"])
        for angle, degrees in ref["degrees_driving"].items():
            torch.testing.assert_close(motion_d[angle], degrees, **close)
        motion_s = m.motion(ref["source"])
        kp_s = keypoints_from_motion(motion_s["kp"], motion_s)
        kp_d = keypoints_from_motion(motion_d["kp"], motion_d)
        torch.testing.assert_close(kp_s, ref["kp_source"], **close)
        torch.testing.assert_close(kp_d, ref["kp_driving"], **close)
        # Batched path: the batch-1 source encoded once, broadcast to both frames.
        out = w.warp(w.encode_source(feature), kp_s, kp_d)
        for key in ("deformation", "occlusion_map", "out"):
            torch.testing.assert_close(out[key], ref[key], **close)
        frames = g(out["out"])
        assert frames.shape == (2, 3, 64, 64)  # 2x the 32 px input, as 256 -> 512 in the public sizes
        # The decoder's stack of float32 convolutions turns the rounding upstream (within the 2e-5
        # above) into up to 1.3e-4 on 0.2 % of the pixels (torch 2.14, 2-core AMD EPYC; the fixture
        # was made on another machine), 4e-5 even from the fixture's own input. A wrong layer or
        # order would move the mean difference (here 5e-7) by orders of magnitude.
        torch.testing.assert_close(frames, ref["frames"], atol=5e-4, rtol=0)
        assert (frames - ref["frames"]).abs().mean() < 1e-5
        torch.testing.assert_close(s.stitch(kp_s, kp_d), ref["stitched"], **close)
