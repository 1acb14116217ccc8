"""Stage 2 (LandmarksToKeypoints) as users meet it: `emoface fit --config configs/l2k.yaml` on a
renderer trained by `emoface fit --config configs/renderer_small.yaml`, a public-layout renderer
checkpoint, self-supervised targets from the frozen estimator, and the missing-renderer error."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from test_renderer_system import tiny_renderer

from emoface.datamodules import MEADDataModule
from emoface.io.weights import MissingWeightsError
from emoface.lightning_modules import LandmarksToKeypoints
from emoface.lightning_modules.landmarks_to_keypoints import BATCH_FIELDS
from emoface.networks import KeypointMapper
from emoface.networks.face_vid2vid import CanonicalKeypointDetector, HeadExpressionEstimator, OcclusionAwareGenerator

REPO = Path(__file__).resolve().parents[1]


def test_fit_on_a_renderer_trained_by_the_cli(tiny_pipeline: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    # The fixture ran, as a user would, `emoface fit` of configs/renderer_small.yaml and then of
    # configs/l2k.yaml, which finds the renderer's last.ckpt at its default relative path.
    renderer_ckpt = tiny_pipeline["renderer"]
    assert renderer_ckpt.is_file()
    root = tiny_pipeline["root"] / "runs/l2k"
    monkeypatch.chdir(tiny_pipeline["root"])
    with open(next(root.rglob("metrics.csv")), newline="") as handle:
        rows = list(csv.DictReader(handle))
    logged = {key for row in rows for key, value in row.items() if value}
    for key in ("train/angle_bins", "train/angles", "train/translation", "train/expression", "train/keypoints",
                "train/smoothness", "train/image", "val/keypoint_error", "val/keypoint_error_still", "val/psnr",
                "val/psnr_reconstruction", "val/psnr_source", "val/ssim", "val/ssim_source"):  # fmt: skip
        assert key in logged, key
    assert list(root.rglob("val_source_driving_rendered_*.png"))

    # The checkpoint holds the mapper only; the renderer comes back from its own file, frozen.
    checkpoint = torch.load(root / "checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert all(key.startswith("mapper.") for key in checkpoint["state_dict"] if "metric" not in key), list(
        checkpoint["state_dict"]
    )[:5]
    system = LandmarksToKeypoints.load_from_checkpoint(root / "checkpoints/last.ckpt", map_location="cpu")
    kp_detector, he_estimator, generator = system.renderer()
    renderer_state = torch.load(renderer_ckpt, map_location="cpu", weights_only=True)["state_dict"]
    for name, value in he_estimator.state_dict().items():
        torch.testing.assert_close(value, renderer_state[f"he_estimator.{name}"])  # unchanged by L2K training
    assert not any(p.requires_grad for net in (kp_detector, he_estimator, generator) for p in net.parameters())


def _public_layout_system(tmp_path: Path, **kwargs: object) -> LandmarksToKeypoints:
    from test_renderer_system import TINY_GEN, TINY_HE, TINY_KP

    path = tmp_path / "face_vid2vid_tiny.pth.tar"
    tiny_renderer().export(path)
    torch.manual_seed(0)
    return LandmarksToKeypoints(
        KeypointMapper(hidden=32, num_blocks=2, kernel_size=3), renderer_checkpoint=str(path),
        kp_detector=CanonicalKeypointDetector(**TINY_KP), he_estimator=HeadExpressionEstimator(**TINY_HE),
        generator=OcclusionAwareGenerator(**TINY_GEN), **kwargs,
    )  # fmt: skip


def test_targets_are_the_frozen_estimator_and_a_batch_is_learned(mead_cache_128: Path, tmp_path: Path) -> None:
    system = _public_layout_system(tmp_path)
    dm = MEADDataModule(cache_dir=str(mead_cache_128), fields=list(BATCH_FIELDS), window=6, batch_size=2)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    out = system(batch)
    _, he_estimator, _ = system.renderer()
    frames = batch["frames"].flatten(0, 1).float() / 255
    expected = he_estimator(frames)
    torch.testing.assert_close(out["target"]["exp"], expected["exp"])
    assert out["pred"]["yaw"].shape == (2, 6, 66) and out["kp_pred"].shape == (2, 6, 15, 3)
    # The mapper starts at "the source held still" for translation and expression.
    torch.testing.assert_close(out["pred"]["t"][:, 0], out["pred"]["t"][:, -1])

    # Overfitting one batch: the self-supervised objective is learnable through the mapper alone.
    optimizer = torch.optim.Adam(system.mapper.parameters(), lr=3e-3)
    totals = []
    for _ in range(60):
        loss = sum(system.losses(batch, system(batch)).values())
        totals.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert totals[-1] < 0.5 * totals[0], totals[::10]


def test_memoized_targets_equal_the_estimator_and_read_each_frame_once(mead_cache_128: Path, tmp_path: Path) -> None:
    memoized = _public_layout_system(tmp_path)
    computed = _public_layout_system(tmp_path, memoize_targets=False)
    dm = MEADDataModule(cache_dir=str(mead_cache_128), fields=list(BATCH_FIELDS), window=4, batch_size=2)
    dm.setup("fit")
    batches = list(dm.train_dataloader())[:2]
    kp_detector, he_estimator, _ = memoized.renderer()
    images_read = []
    hooks = [net.register_forward_hook(lambda _, inputs, __: images_read.append(inputs[0].shape[0]))
             for net in (he_estimator, kp_detector)]  # fmt: skip
    try:
        first = memoized(batches[0])
        read_first = sum(images_read)
        again = memoized(batches[0])
        assert sum(images_read) == read_first  # nothing read twice
        second = memoized(batches[1])
    finally:
        for hook in hooks:
            hook.remove()
    t = batches[0]["frames"].shape[1]

    def frames(batch: dict) -> set:
        return {(clip, int(start) + i) for clip, start in zip(batch["clip"], batch["start"]) for i in range(t)}

    sources = {(clip, int(index)) for clip, index in zip(batches[0]["clip"], batches[0]["source_index"])}
    # Each distinct driving frame once; each distinct source by the detector and the estimator.
    assert read_first == len(frames(batches[0])) + 2 * len(sources)
    for out, batch in ((first, batches[0]), (again, batches[0]), (second, batches[1])):
        expected = computed(batch)
        for name in ("kp_canonical", "kp_source", "kp_target"):
            torch.testing.assert_close(out[name], expected[name], atol=1e-5, rtol=1e-5)
        for name, value in expected["target"].items():
            torch.testing.assert_close(out["target"][name], value, atol=1e-5, rtol=1e-5)
    assert len(memoized._targets) == len(frames(batches[0]) | frames(batches[1]))
    assert len(computed._targets) == 0  # memoize_targets=False keeps nothing

    # A new renderer clears what the old one computed.
    memoized._set_renderer(memoized.frozen_renderer())
    assert len(memoized._targets) == len(memoized._sources) == 0


def test_frozen_renderer_follows_the_system_device_and_is_moved_only_when_elsewhere(tmp_path: Path) -> None:
    system = _public_layout_system(tmp_path)
    renderer = system.frozen_renderer()
    moves = []
    move = renderer.to
    renderer.to = lambda *args, **kwargs: moves.append(args) or move(*args, **kwargs)  # type: ignore[method-assign]
    assert system.frozen_renderer() is renderer and system.frozen_renderer() is renderer
    assert moves == []  # already on the system's device: Module.to's walk over every tensor is skipped
    system.to("meta")  # another device (the meta device stands in for a GPU on a CPU-only machine)
    assert next(system.frozen_renderer().parameters()).device.type == "meta" and len(moves) == 1
    system.frozen_renderer()
    assert len(moves) == 1


def test_missing_renderer_is_a_clear_error(tmp_path: Path) -> None:
    system = LandmarksToKeypoints(KeypointMapper(hidden=16, num_blocks=1), renderer_checkpoint=str(tmp_path / "nope.ckpt"))
    with pytest.raises(MissingWeightsError, match="nope.ckpt"):
        system.load_renderer()
    with pytest.raises(MissingWeightsError, match="renderer_checkpoint"):
        LandmarksToKeypoints(KeypointMapper(hidden=16, num_blocks=1)).load_renderer()
