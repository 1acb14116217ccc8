"""The renderer as users meet it: `emoface fit` with the renderer configs, the MEADDataModule's
source frames, the batched inference path, export / fine-tune round trips and the VGG19 weights."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from emoface.cli import main
from emoface.datamodules import MEADDataModule
from emoface.io.weights import MissingWeightsError
from emoface.lightning_modules import FaceRenderer
from emoface.networks.face_vid2vid import (
    CanonicalKeypointDetector,
    HeadExpressionEstimator,
    OcclusionAwareGenerator,
    OcclusionAwareSPADEGenerator,
    load_face_vid2vid_state,
)
from emoface.networks.perceptual import VGG19Features
from emoface.rendering import FaceVid2VidRenderer

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "configs/tests/tiny_renderer.yaml")

# Tiny networks (the sizes of configs/tests/tiny_renderer.yaml) for direct construction.
TINY_KP = dict(block_expansion=8, feature_channel=4, max_features=32, reshape_channel=128, reshape_depth=4, num_blocks=2)
TINY_HE = dict(block_expansion=8, feature_channel=4, max_features=64)
TINY_GEN = dict(block_expansion=8, feature_channel=4, max_features=16, reshape_channel=4, reshape_depth=4, num_resblocks=1,
                dense_motion_params=dict(block_expansion=8, max_features=16, num_blocks=2, reshape_depth=4, compress=2))


def tiny_renderer(generator_class: type = OcclusionAwareGenerator, **kwargs: object) -> FaceRenderer:
    torch.manual_seed(0)
    kwargs = {"perceptual_backbone": None, "scales": [1, 0.5], **kwargs}
    return FaceRenderer(
        CanonicalKeypointDetector(**TINY_KP), HeadExpressionEstimator(**TINY_HE), generator_class(**TINY_GEN), **kwargs
    )


@pytest.fixture()
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in a temporary directory: the configs' relative ``runs/...`` paths land there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("config", ["renderer.yaml", "renderer_small.yaml"])
def test_fit_fast_dev_run(config: str, in_tmp: Path) -> None:
    assert main(["fit", "--config", str(REPO / "configs" / config), "--config", TINY, "--trainer.fast_dev_run", "true"]) == 0


def test_step_based_fit_leaves_the_final_weights_in_last_ckpt(in_tmp: Path) -> None:
    """renderer_small validates (and checkpoints) every N steps; a run ending between two
    validations still leaves its final step in last.ckpt (emoface.callbacks.FinalCheckpoint)."""
    args = ["--trainer.max_epochs", "-1", "--trainer.max_steps", "6", "--trainer.val_check_interval", "4",
            "--trainer.check_val_every_n_epoch", "null", "--trainer.limit_train_batches", "null"]  # fmt: skip
    assert main(["fit", "--config", str(REPO / "configs/renderer_small.yaml"), "--config", TINY, *args]) == 0
    checkpoint = torch.load(in_tmp / "runs/renderer_small/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == 6  # not 4, the last validation's


def test_fit_logs_losses_metrics_and_image_grid_and_exports(in_tmp: Path) -> None:
    # configs/renderer.yaml with the tiny overlay: the vox-256 recipe including the discriminator.
    assert main(["fit", "--config", str(REPO / "configs/renderer.yaml"), "--config", TINY]) == 0
    root = in_tmp / "runs/renderer"
    with open(next(root.rglob("metrics.csv")), newline="") as handle:
        rows = list(csv.DictReader(handle))
    logged = {k for row in rows for k, v in row.items() if v}
    for key in ("train/loss", "train/perceptual", "train/equivariance", "train/keypoint_prior", "train/head_pose",
                "train/head_pose_bins", "train/expression", "train/gan", "train/feature_matching", "train/discriminator", "val/psnr",
                "val/ssim", "val/psnr_source", "val/ssim_source", "val/psnr_held", "val/background_weight",
                "val/yaw_error", "val/pitch_error"):  # fmt: skip
        assert key in logged, key
    psnr = [float(r["val/psnr"]) for r in rows if r.get("val/psnr")]
    background = [float(r["val/background_weight"]) for r in rows if r.get("val/background_weight")]
    assert background and all(0 < value < 1 for value in background)  # a softmax weight
    assert all(0 < value < 100 for value in psnr)  # finite: the source frame itself is not scored
    grids = sorted(root.rglob("figures/val_source_driving_prediction_epoch*.png"))
    # One grid per validation (2 epochs of 2 batches; with a discriminator each batch steps both
    # optimizers, so the global step advances by 2; the file names carry epoch and step).
    assert [g.name for g in grids] == ["val_source_driving_prediction_epoch000_step000004.png",
                                       "val_source_driving_prediction_epoch001_step000008.png"]  # fmt: skip
    import matplotlib.image

    grid = matplotlib.image.imread(grids[-1])
    assert grid.shape[1] == 3 * 64  # source | driving | prediction, 64 px each

    # The checkpoint holds the renderer, not the frozen VGG19 of its loss.
    ckpt = torch.load(root / "checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert not [key for key in ckpt["state_dict"] if "vgg" in key]
    # Exported networks load strictly in the public layout and start a fine-tuning run.
    system = FaceRenderer.load_from_checkpoint(root / "checkpoints/last.ckpt", map_location="cpu")
    exported = in_tmp / "renderer.pth.tar"
    system.export(exported)
    saved = torch.load(exported, map_location="cpu", weights_only=True)
    assert {"generator", "kp_detector", "he_estimator", "discriminator"} <= set(saved)
    nets = (CanonicalKeypointDetector(**TINY_KP), HeadExpressionEstimator(**TINY_HE), OcclusionAwareGenerator(**TINY_GEN))
    load_face_vid2vid_state(exported, *nets)
    for ours, theirs in zip(nets, (system.kp_detector, system.he_estimator, system.generator)):
        for name, tensor in theirs.state_dict().items():
            assert torch.equal(ours.state_dict()[name], tensor), name
    # Fine-tuning from the exported file starts from its weights ...
    start = tiny_renderer(init_checkpoint=str(exported))
    start.load_init_checkpoint()
    assert torch.equal(start.generator.state_dict()["final.weight"], saved["generator"]["final.weight"])
    tuned = in_tmp / "tuned"
    assert main(["fit", "--config", str(REPO / "configs/renderer.yaml"), "--config", TINY,
                 "--model.init_args.init_checkpoint", str(exported), "--trainer.default_root_dir", str(tuned),
                 "--trainer.callbacks.init_args.dirpath", str(tuned / "checkpoints"),
                 "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1"]) == 0  # fmt: skip
    # ... through the CLI too, and its checkpoint loads without the file it started from.
    exported.unlink()
    tuned_system = FaceRenderer.load_from_checkpoint(tuned / "checkpoints/last.ckpt", map_location="cpu")
    assert tuned_system.hparams.init_checkpoint == str(exported)


def test_init_checkpoint_of_other_sizes_is_a_clear_error(tmp_path: Path) -> None:
    wide = dict(TINY_KP, block_expansion=16, max_features=64, reshape_channel=256)
    torch.save({"kp_detector": CanonicalKeypointDetector(**wide).state_dict()}, tmp_path / "wide.pth")
    with pytest.raises(ValueError, match="block_expansion"):
        tiny_renderer(init_checkpoint=str(tmp_path / "wide.pth")).load_init_checkpoint()
    with pytest.raises(MissingWeightsError, match="00000189-checkpoint.pth.tar"):
        tiny_renderer(init_checkpoint=str(tmp_path)).load_init_checkpoint()  # a folder without the known file


def test_source_frame_field(mead_cache_128: Path) -> None:
    dm = MEADDataModule(cache_dir=str(mead_cache_128), fields=["frames", "pose", "source_frame"], window=4, batch_size=2)
    dm.setup("fit")
    train = dm.datasets["train"]
    drawn = set()
    for draw in range(6):
        item = train[(0, draw * 7919)]
        clip = train._files.get(train.entries[train.items[0][0]].path)
        k = item["source_index"]
        drawn.add(k)
        assert torch.equal(item["source_frame"], torch.from_numpy(clip.frames(k, k + 1)[0]).permute(2, 0, 1))
        assert torch.equal(item["source_euler"], torch.from_numpy(clip["euler"][k].copy()))
        assert "source_landmarks" not in item  # only with the landmarks field
        # Its relocated cues pose the normalized landmarks back onto the frame's landmarks.
        landmarks = torch.from_numpy(clip["landmarks"][k].copy())
        assert item["source_relocated"].shape == (70, 3)
        torch.testing.assert_close(item["source_relocated"][:68], landmarks, atol=1e-2, rtol=0)
    assert len(drawn) > 1  # training sources are random frames of the clip
    for name in ("val", "test", "predict"):
        item = dm.datasets[name][len(dm.datasets[name]) - 1]
        assert item["source_index"] == 0  # evaluation: the clip's first frame
        assert item["source_frame"].shape == (3, 128, 128) and item["source_frame"].dtype == torch.uint8
    whole = dm.datasets["predict"][0]
    assert torch.equal(whole["source_frame"], whole["frames"][0])
    dm = MEADDataModule(cache_dir=str(mead_cache_128), fields=["source_frame", "landmarks"], window=4, batch_size=2)
    dm.setup("fit")
    item = dm.datasets["train"][(0, 7919)]
    clip = dm.datasets["train"]._files.get(dm.datasets["train"].entries[dm.datasets["train"].items[0][0]].path)
    assert torch.equal(item["source_landmarks"], torch.from_numpy(clip["landmarks"][item["source_index"]].copy()))


@pytest.mark.parametrize("generator_class", [OcclusionAwareGenerator, OcclusionAwareSPADEGenerator])
def test_batched_rendering_equals_frame_by_frame(generator_class: type) -> None:
    system = tiny_renderer(generator_class).eval()
    source = torch.rand(1, 3, 64, 64)
    driving = torch.rand(7, 3, 64, 64)
    renderer = FaceVid2VidRenderer(system.kp_detector, system.he_estimator, system.generator, batch_size=3)
    batched = renderer.reconstruct(source, driving)  # batches of 3, 3 and 1 frames
    with torch.no_grad():
        single = torch.cat([system.reconstruct(source, driving[k : k + 1])["prediction"] for k in range(7)])
    assert batched.shape == (7, 3, 64, 64)
    # Equal up to float noise (batch-size dependent conv algorithms; the random spectral norms of
    # the untrained SPADE decoder amplify it): 1e-4 is 1/40 of one 8-bit level.
    assert torch.allclose(batched, single.clamp(0, 1), atol=1e-4)
    # uint8 input gives the same frames as its float version
    as_uint8 = (driving * 255).round().to(torch.uint8)
    assert torch.allclose(renderer.reconstruct(source, as_uint8), renderer.reconstruct(source, as_uint8.float() / 255))


def test_renderer_from_checkpoint_renders_given_keypoints(tmp_path: Path) -> None:
    system = tiny_renderer()
    system.export(tmp_path / "tiny.pth.tar")
    nets = dict(kp_detector=CanonicalKeypointDetector(**TINY_KP), he_estimator=HeadExpressionEstimator(**TINY_HE),
                generator=OcclusionAwareGenerator(**TINY_GEN))  # fmt: skip
    renderer = FaceVid2VidRenderer.from_checkpoint(tmp_path / "tiny.pth.tar", **nets, batch_size=4)
    source = renderer.prepare_source(torch.rand(3, 64, 64))
    zeros = torch.zeros(5)
    kp = renderer.driving_keypoints(source, zeros, zeros, zeros, torch.zeros(5, 3), torch.zeros(5, 45))
    assert torch.allclose(kp, source.kp_canonical.expand(5, -1, -1))
    frames = renderer.render(source, kp)
    assert frames.shape == (5, 3, 64, 64) and frames.min() >= 0 and frames.max() <= 1
    with pytest.raises(ValueError, match="batch_size"):
        FaceVid2VidRenderer(*nets.values(), batch_size=0)


def test_vgg19_weights_resolve_like_other_weight_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    with pytest.raises(MissingWeightsError, match="vgg19-dcbb9e9d.pth"):
        VGG19Features("imagenet")
    # The system asks for the file when training starts, not when it is built or reloaded.
    system = tiny_renderer(perceptual_backbone="imagenet")
    with pytest.raises(MissingWeightsError, match="vgg19-dcbb9e9d.pth"):
        system.perceptual_network()
    # A stand-in file with torchvision's names and shapes (features only) loads, and is used.
    from torchvision.models import vgg19

    state = {f"features.{k}": v for k, v in vgg19(weights=None).features.state_dict().items()}
    path = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save(state, path)
    features = VGG19Features(str(path))
    assert torch.equal(features.slices[0][0].weight, state["features.0.weight"])
    assert torch.equal(features.slices[4][-2].weight, state["features.28.weight"])
    outputs = features(torch.rand(1, 3, 32, 32))
    assert [o.shape[1] for o in outputs] == [64, 128, 256, 512, 512]
    assert not any(p.requires_grad for p in features.parameters())
    features.train()
    assert not features.training  # a frozen loss network stays in eval mode


def test_head_pose_loss_targets_preprocessing_pose() -> None:
    system = tiny_renderer(equivariance_weight=0, keypoint_prior_weight=0, expression_weight=0, l1_weight=0,
                           perceptual_weights=[0, 0, 0, 0, 0], head_pose_weight=1.0, head_pose_bin_weight=0)  # fmt: skip
    images = torch.rand(2, 3, 64, 64)
    estimate = system.estimate(images)
    euler = torch.stack([estimate[f"{n}_deg"] for n in ("yaw", "pitch", "roll")], -1).detach()
    # The target is the preprocessing pose in true degrees, scaled to the estimator's 3.14-degrees.
    losses, _ = system.generator_losses(images, images, euler * 3.14 / torch.pi)
    assert set(losses) == {"head_pose"}
    assert losses["head_pose"].item() < 1e-4
    losses, _ = system.generator_losses(images, images, (euler + 2.0) * 3.14 / torch.pi)
    assert losses["head_pose"].item() == pytest.approx(6.0, abs=1e-3)


def test_bf16_autocast_renders_close_to_float32() -> None:
    system = tiny_renderer().eval()
    source, driving = torch.rand(1, 3, 64, 64), torch.rand(4, 3, 64, 64)
    nets = (system.kp_detector, system.he_estimator, system.generator)
    full = FaceVid2VidRenderer(*nets, batch_size=4).reconstruct(source, driving)
    half = FaceVid2VidRenderer(*nets, batch_size=4, autocast_dtype=torch.bfloat16).reconstruct(source, driving)
    assert half.dtype == torch.float32  # frames come back in float32 whatever the compute precision
    assert (half - full).abs().mean() < 0.01


def test_head_pose_bin_loss_is_the_cross_entropy_of_the_target_bins() -> None:
    system = tiny_renderer(equivariance_weight=0, keypoint_prior_weight=0, expression_weight=0, l1_weight=0,
                           perceptual_weights=[0, 0, 0, 0, 0], head_pose_weight=0, head_pose_bin_weight=1.0)  # fmt: skip
    images = torch.rand(2, 3, 64, 64)
    # True degrees, the estimator unit times 3.14 / pi (the system scales them back).
    euler = torch.tensor([[0.5, -10.0, 30.5], [-40.0, 2.0, 4.0]]) * 3.14 / torch.pi
    losses, out = system.generator_losses(images, images, euler)
    bins = torch.tensor([[33, 29, 43], [19, 33, 34]])  # floor((deg + 99) / 3) in the estimator's unit
    expected = sum(torch.nn.functional.cross_entropy(out["he_driving"][n], bins[:, k])
                   for k, n in enumerate(("yaw", "pitch", "roll")))  # fmt: skip
    assert set(losses) == {"head_pose_bins"}
    assert losses["head_pose_bins"].item() == pytest.approx(expected.item(), rel=1e-5)


def _random_pairs_loader() -> torch.utils.data.DataLoader:
    """8 random (source, driving, euler) items in batches of 2."""
    g = torch.Generator().manual_seed(0)
    items = [{"frames": torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8, generator=g),
              "source_frame": torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8, generator=g),
              "euler": torch.randn(1, 3, generator=g) * 10} for _ in range(8)]  # fmt: skip
    return torch.utils.data.DataLoader(items, batch_size=2)


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The trained tensors of ``module`` (not the batch-norm statistics), copied."""
    state = module.state_dict()
    return {k: v.detach().clone() for k, v in state.items() if "running" not in k and "num_batches" not in k}


def _changed(before: dict[str, torch.Tensor], module: torch.nn.Module) -> bool:
    after = _snapshot(module)
    return any(not torch.equal(before[k], after[k]) for k in before)


def _fit_steps(system: FaceRenderer, steps: int, callbacks: list | None = None, max_epochs: int | None = None,
               loader: torch.utils.data.DataLoader | None = None) -> None:
    """Train ``steps`` steps on ``loader`` (default :func:`_random_pairs_loader`)."""
    import lightning as L

    L.Trainer(max_steps=steps, max_epochs=max_epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
              enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
              callbacks=callbacks).fit(system, loader if loader is not None else _random_pairs_loader())  # fmt: skip


def test_pose_warmup_trains_the_estimator_alone_and_zero_motion_heads_start_at_zero() -> None:
    """``pose_warmup_steps``: the first steps train only the head estimator, on the pose losses (the
    warp cannot collapse onto "no motion" before the keypoints carry the pose); then the recipe.
    ``zero_motion_heads``: the translation and expression heads start at zero."""
    system = tiny_renderer(pose_warmup_steps=3, zero_motion_heads=True, lr=1e-3)
    for head in (system.he_estimator.fc_t, system.he_estimator.fc_exp):
        assert not head.weight.any() and not head.bias.any()

    def snapshot() -> dict[str, dict[str, torch.Tensor]]:
        return {name: _snapshot(getattr(system, name)) for name in ("kp_detector", "he_estimator", "generator")}

    def changed(before: dict, after: dict, name: str) -> bool:
        return any(not torch.equal(before[name][k], after[name][k]) for k in before[name])

    start = snapshot()
    _fit_steps(system, 3)
    warmed = snapshot()
    assert changed(start, warmed, "he_estimator")
    assert not changed(start, warmed, "generator") and not changed(start, warmed, "kp_detector")
    # Translation and expression get no gradient from the pose losses: still zero after the warm-up.
    assert not system.he_estimator.fc_t.weight.any() and not system.he_estimator.fc_exp.weight.any()
    _fit_steps(system, 5)  # steps 3 and 4: the whole recipe
    assert changed(warmed, snapshot(), "generator") and changed(warmed, snapshot(), "kp_detector")


def test_warmup_autoencode_trains_the_generator_through_the_identity_warp() -> None:
    """``warmup_autoencode``: during the pose warm-up the generator learns to redraw frames through
    the identity warp (source keypoints = driving keypoints); the dense motion's softmax, which that
    warp gives nothing to learn, and the keypoint detector stay as they are."""
    system = tiny_renderer(pose_warmup_steps=3, zero_motion_heads=True, warmup_autoencode=True, l1_weight=10.0,
                           perceptual_weights=[0.0] * 5, lr=1e-3)  # fmt: skip
    images = torch.rand(2, 3, 64, 64)
    losses = system.autoencode_losses(images)
    assert set(losses) == {"autoencode_l1"}
    sum(losses.values()).backward()
    mask = system.generator.dense_motion_network.mask.weight.grad
    decoder = system.generator.final.weight.grad
    # Every candidate warp is the identity: the softmax's gradient is rounding error only.
    assert mask.abs().max() < 1e-6 * decoder.abs().max()
    assert all(p.grad is None for p in system.kp_detector.parameters())
    system.zero_grad(set_to_none=True)

    kept = {"mask": _snapshot(system.generator.dense_motion_network.mask), "kp": _snapshot(system.kp_detector)}
    generator = _snapshot(system.generator)
    _fit_steps(system, 3)
    assert _changed(generator, system.generator)
    assert not _changed(kept["mask"], system.generator.dense_motion_network.mask)
    assert not _changed(kept["kp"], system.kp_detector)


def test_pose_warmup_steps_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="pose_warmup_steps"):
        tiny_renderer(pose_warmup_steps=-1)
    with pytest.raises(ValueError, match="warmup_autoencode .* pose_warmup_steps > 0"):
        tiny_renderer(warmup_autoencode=True)


def test_warp_loss_scores_the_warped_source_and_needs_the_image_skip() -> None:
    """``warp_weight``: an L1 of the source image warped by the dense motion alone against the driving
    frame; its gradient reaches the dense motion and the keypoints, not the decoder."""
    with pytest.raises(ValueError, match="image_skip"):
        tiny_renderer(warp_weight=1.0)
    torch.manual_seed(0)
    system = FaceRenderer(CanonicalKeypointDetector(**TINY_KP), HeadExpressionEstimator(**TINY_HE),
                          OcclusionAwareGenerator(**TINY_GEN, image_skip=True), perceptual_backbone=None,
                          perceptual_weights=[0.0] * 5, l1_weight=0.0, scales=[1], equivariance_weight=0,
                          keypoint_prior_weight=0, head_pose_weight=0, head_pose_bin_weight=0, expression_weight=0,
                          warp_weight=2.0)  # fmt: skip
    source, driving = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    losses, out = system.generator_losses(source, driving, torch.zeros(2, 3))
    assert set(losses) == {"warp"}
    torch.testing.assert_close(losses["warp"], 2.0 * (out["warped_source"] - driving).abs().mean())
    losses["warp"].backward()
    assert system.generator.dense_motion_network.mask.weight.grad.abs().max() > 0
    assert any(p.grad is not None and p.grad.abs().max() > 0 for p in system.kp_detector.parameters())
    assert system.generator.final.weight.grad is None  # the decoder draws nothing of the warped source


def test_lr_decay_at_divides_the_learning_rate_at_that_fraction_of_the_run() -> None:
    """``lr_decay_at``: the learning rate / 10 from that fraction of ``max_steps`` on, whatever the
    run's length (an epoch milestone falls at a step that depends on the data's size)."""
    import lightning as L

    class RecordLearningRate(L.Callback):
        def __init__(self) -> None:
            self.rates: list[float] = []

        def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
            self.rates.append(trainer.optimizers[0].param_groups[0]["lr"])

    for steps, expected in ((4, [1e-3] * 3 + [1e-4]), (8, [1e-3] * 6 + [1e-4] * 2)):
        system, record = tiny_renderer(lr=1e-3, lr_decay_at=0.75), RecordLearningRate()
        _fit_steps(system, steps, callbacks=[record])
        assert record.rates == pytest.approx(expected)
        assert system.lr_decay_step() == steps * 3 // 4


def test_lr_decay_at_needs_a_run_with_an_end_and_no_epoch_milestones() -> None:
    with pytest.raises(ValueError, match="lr_decay_at"):
        tiny_renderer(lr_decay_at=1.5)
    with pytest.raises(ValueError, match="not both"):
        tiny_renderer(lr_decay_at=0.75, lr_milestones=[1])
    with pytest.raises(ValueError, match="set trainer.max_steps or trainer.max_epochs"):
        _fit_steps(tiny_renderer(lr_decay_at=0.75), steps=-1, max_epochs=-1)


@pytest.mark.parametrize("detached", [False, True])
def test_angles_from_pose_losses_keeps_the_other_losses_off_the_estimator_angles(detached: bool) -> None:
    """``angles_from_pose_losses``: the image, warp and equivariance losses reach the estimator's
    translation and expression heads but not its angle heads (the public recipe: all of them)."""
    system = tiny_renderer(angles_from_pose_losses=detached, head_pose_weight=0, head_pose_bin_weight=0,
                           l1_weight=10.0, perceptual_weights=[0.0] * 5)  # fmt: skip
    torch.manual_seed(1)
    source, driving = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    losses, _ = system.generator_losses(source, driving, torch.zeros(2, 3))
    sum(losses.values()).backward()
    estimator = system.he_estimator
    assert estimator.fc_t.weight.grad.abs().sum() > 0
    for head in (estimator.fc_yaw, estimator.fc_pitch, estimator.fc_roll):
        reached = head.weight.grad is not None and head.weight.grad.abs().sum() > 0
        assert reached is not detached


def test_mirror_pairs_mirrors_the_frames_and_the_head_pose() -> None:
    """``horizontal_flip``: a mirrored pair shows the head rotation ``F R F`` (``F`` mirrors x), which
    is the rotation of the pose with yaw and roll negated; unmirrored pairs are left as they are."""
    from emoface.geometry.rotations import euler_to_matrix

    torch.manual_seed(0)
    source, driving = torch.rand(3, 3, 8, 8), torch.rand(3, 3, 8, 8)
    euler = torch.tensor([[20.0, -12.0, 7.0], [-25.0, 15.0, -9.0], [5.0, 3.0, 1.0]])
    mirrored = torch.tensor([True, True, False])
    new_source, new_driving, new_euler = FaceRenderer.mirror_pairs(source, driving, euler, mirrored)
    flip_x = torch.diag(torch.tensor([-1.0, 1.0, 1.0]))
    torch.testing.assert_close(euler_to_matrix(new_euler[:2]), flip_x @ euler_to_matrix(euler[:2]) @ flip_x)
    torch.testing.assert_close(new_source[:2], source[:2].flip(-1))
    torch.testing.assert_close(new_driving[:2], driving[:2].flip(-1))
    assert torch.equal(new_source[2], source[2]) and torch.equal(new_driving[2], driving[2])
    assert torch.equal(new_euler[2], euler[2])


def test_horizontal_flip_trains_on_mirrored_pairs_with_their_mirrored_pose() -> None:
    """The estimator sees each training frame as it is or mirrored (about half of them), and the
    pose loss's target is mirrored with it."""
    system = tiny_renderer(horizontal_flip=True, pose_warmup_steps=4)
    images_seen, targets_seen = [], []
    estimate, pose_losses = system.estimate, system.pose_losses
    # During the warm-up each step estimates the driving frames once and scores them once.
    system.estimate = lambda images: images_seen.append(images.detach().clone()) or estimate(images)
    system.pose_losses = lambda he, euler: targets_seen.append(euler.detach().clone()) or pose_losses(he, euler)
    torch.manual_seed(3)
    _fit_steps(system, 4)
    batches = list(_random_pairs_loader())
    mirrored_count = 0
    for images, euler, batch in zip(images_seen, targets_seen, batches, strict=True):
        frames = batch["frames"].flatten(0, 1).float() / 255
        for image, target, frame, pose in zip(images, euler, frames, batch["euler"].flatten(0, 1)):
            if torch.allclose(image, frame.flip(-1)) and not torch.allclose(image, frame):
                mirrored_count += 1
                torch.testing.assert_close(target, pose * torch.tensor([-1.0, 1.0, -1.0]))
            else:
                torch.testing.assert_close(image, frame)
                torch.testing.assert_close(target, pose)
    assert 0 < mirrored_count < 8


def test_mouth_loss_scores_the_driving_mouth_box_mirrored_with_its_pair() -> None:
    """``mouth_weight``: an L1 of prediction against driving frame inside the driving frame's mouth
    box (mean over the box), its box mirrored with a mirrored pair; without landmarks in the batch,
    a clear error."""
    from emoface.geometry.landmarks import MOUTH, region_box_masks

    system = tiny_renderer(mouth_weight=3.0, horizontal_flip=True, l1_weight=0.0, perceptual_weights=[0.0] * 5)
    source, driving = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    masks = torch.zeros(2, 1, 64, 64)
    masks[:, :, 40:50, 20:40] = 1
    losses, out = system.generator_losses(source, driving, torch.zeros(2, 3), masks)
    error = (out["prediction"] - driving)[:, :, 40:50, 20:40].abs().mean()
    torch.testing.assert_close(losses["mouth"], 3.0 * error)

    g = torch.Generator().manual_seed(0)
    items = []
    for item in _random_pairs_loader().dataset:
        landmarks = torch.rand(1, 68, 3, generator=g) * 20
        landmarks[:, list(MOUTH), :2] += torch.tensor([4.0, 30.0])  # the mouth in the left half
        items.append({**item, "landmarks": landmarks})
    seen = []
    generator_losses = system.generator_losses
    system.generator_losses = lambda s, d, e, m, o, *rest: seen.append((d.detach().clone(), m.clone())) or generator_losses(s, d, e, m, o, *rest)
    torch.manual_seed(3)
    _fit_steps(system, 4, loader=torch.utils.data.DataLoader(items, batch_size=2))
    mirrored_count = 0
    for (driving_seen, masks_seen), start in zip(seen, range(0, 8, 2), strict=True):
        batch = items[start:start + 2]
        frames = torch.cat([item["frames"] for item in batch]).float() / 255
        boxes = region_box_masks(torch.cat([item["landmarks"] for item in batch]), MOUTH, 64, 64, margin=0.25)
        for image, mask, frame, box in zip(driving_seen, masks_seen, frames, boxes):
            mirrored = not torch.allclose(image, frame)
            mirrored_count += mirrored
            assert torch.equal(mask, box.flip(-1) if mirrored else box)
    assert 0 < mirrored_count < 8

    with pytest.raises(KeyError, match="landmarks"):
        _fit_steps(tiny_renderer(mouth_weight=1.0), 1)
    with pytest.raises(ValueError, match="mouth_weight"):
        tiny_renderer(mouth_weight=-1.0)


def test_mouth_expression_loss_ties_keypoint_0_to_the_inner_lip_opening() -> None:
    """``mouth_expression_weight``: keypoint 0's expression delta along y is scored (squared error in
    pixels) against the driving frame's inner-lip opening (landmarks 62 to 66), which is given in
    the keypoints' units, 2 / width per pixel; only the estimator's expression head is moved by it."""
    system = tiny_renderer(mouth_expression_weight=4.0, l1_weight=0.0, perceptual_weights=[0.0] * 5,
                           equivariance_weight=0, keypoint_prior_weight=0, head_pose_weight=0,
                           head_pose_bin_weight=0, expression_weight=0)  # fmt: skip
    landmarks = torch.zeros(1, 2, 68, 3)  # (B, T, 68, 3)
    landmarks[0, :, 62, :2] = torch.tensor([[30.0, 40.0], [30.0, 40.0]])
    landmarks[0, :, 66, :2] = torch.tensor([[30.0, 44.0], [33.0, 44.0]])  # open 4 px, then 5 px
    opening = FaceRenderer.mouth_opening({"landmarks": landmarks}, width=64)
    torch.testing.assert_close(opening, torch.tensor([4.0, 5.0]) * 2 / 64)

    source, driving = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    losses, out = system.generator_losses(source, driving, torch.zeros(2, 3), None, opening)
    assert set(losses) == {"mouth_expression"}
    jaw = out["he_driving"]["exp"].view(2, -1, 3)[:, 0, 1]
    torch.testing.assert_close(losses["mouth_expression"], 4.0 * ((jaw - opening) * 32).pow(2).mean())  # pixels
    losses["mouth_expression"].backward()
    assert system.he_estimator.fc_exp.weight.grad.abs().sum() > 0
    assert system.he_estimator.fc_t.weight.grad is None and system.generator.final.weight.grad is None
    with pytest.raises(KeyError, match="landmarks"):
        FaceRenderer.mouth_opening({}, width=64)

    # It trains with the head pose during the pose warm-up: the expression head, which starts at
    # zero and gets no gradient from the pose losses, moves.
    system = tiny_renderer(mouth_expression_weight=4.0, pose_warmup_steps=2, zero_motion_heads=True)
    items = [{**item, "landmarks": torch.rand(1, 68, 3) * 60} for item in _random_pairs_loader().dataset]
    _fit_steps(system, 2, loader=torch.utils.data.DataLoader(items, batch_size=2))
    assert system.he_estimator.fc_exp.weight.any() and not system.he_estimator.fc_t.weight.any()


def test_landmark_guide_loss_places_the_first_keypoints_on_their_landmarks() -> None:
    """``landmark_guide_weight`` (LivePortrait's landmark guidance): the first keypoints of source
    and driving frame, x and y, against the chosen landmarks of those frames, a mean squared
    distance in pixels; mirrored pairs take their mirrored landmarks; the keypoint prior leaves
    pairs of guided keypoints alone; the keypoint detector and estimator learn it in the warm-up."""
    from emoface.geometry.landmarks import mirror_landmarks, pixels_to_grid

    points = [48, 51, 54, 57]
    system = tiny_renderer(landmark_guide_weight=2.0, landmark_guide_points=points, l1_weight=0.0,
                           perceptual_weights=[0.0] * 5, equivariance_weight=0, head_pose_weight=0,
                           head_pose_bin_weight=0, expression_weight=0, keypoint_prior_weight=0)  # fmt: skip
    g = torch.Generator().manual_seed(0)
    batch = {"landmarks": torch.rand(2, 3, 68, 3, generator=g) * 63, "source_landmarks": torch.rand(2, 68, 3, generator=g) * 63}
    targets = system.guide_targets(batch, (64, 64))  # (B*T, 2, P, 2)
    assert targets.shape == (6, 2, 4, 2)
    torch.testing.assert_close(targets[4, 1], batch["landmarks"][1, 1, points, :2] * 2 / 63 - 1)
    torch.testing.assert_close(targets[4, 0], batch["source_landmarks"][1, points, :2] * 2 / 63 - 1)
    mirrored = torch.tensor([False, True, False, False, True, False])
    flipped = system.guide_targets(batch, (64, 64), mirrored)
    torch.testing.assert_close(flipped[~mirrored], targets[~mirrored])
    expected = pixels_to_grid(mirror_landmarks(batch["landmarks"][1, 1], 64)[points, :2], 64, 64)
    torch.testing.assert_close(flipped[4, 1], expected)
    # The mouth corners swap places and the mirrored x lands at -x in grid units.
    torch.testing.assert_close(flipped[4, 1, 0], targets[4, 1, 2] * torch.tensor([-1.0, 1.0]))

    source, driving = torch.rand(6, 3, 64, 64), torch.rand(6, 3, 64, 64)
    losses, out = system.generator_losses(source, driving, torch.zeros(6, 3), guide_targets=targets)
    assert set(losses) == {"landmark_guide"}
    predicted = torch.stack([out["kp_source"][:, :4, :2], out["kp_driving"][:, :4, :2]], 1)
    expected = 2.0 * ((predicted - targets) * 31.5).pow(2).sum(-1).mean()  # squared pixels
    torch.testing.assert_close(losses["landmark_guide"], expected)

    # The prior's spread: a pair of guided keypoints may sit closer than keypoint_min_distance.
    prior = tiny_renderer(landmark_guide_weight=1.0, keypoint_prior_weight=1.0, keypoint_depth=0.0)
    kp = torch.zeros(1, 15, 3)
    kp[0, :, 0] = torch.arange(15.0)  # every pair far apart ...
    kp[0, 1, 0] = 0.1  # ... but guided keypoints 0 and 1 (0.01 < 0.1 apart, squared)
    prior.reconstruct = lambda s, d: {**system.reconstruct(s, d), "kp_driving": kp}
    guided, _ = prior.generator_losses(source[:1], driving[:1], torch.zeros(1, 3), guide_targets=targets[:1, :, :2])
    unguided, _ = prior.generator_losses(source[:1], driving[:1], torch.zeros(1, 3))
    assert guided["keypoint_prior"] == 0
    torch.testing.assert_close(unguided["keypoint_prior"], torch.tensor(2 * (0.1 - 0.01)))

    # In the pose warm-up the keypoint detector learns it with the estimator; the generator waits.
    system = tiny_renderer(landmark_guide_weight=2.0, pose_warmup_steps=2, zero_motion_heads=True, horizontal_flip=True)
    items = [{**item, "landmarks": torch.rand(1, 68, 3) * 63, "source_landmarks": torch.rand(68, 3) * 63}
             for item in _random_pairs_loader().dataset]  # fmt: skip
    before = {name: _snapshot(getattr(system, name)) for name in ("kp_detector", "generator")}
    _fit_steps(system, 2, loader=torch.utils.data.DataLoader(items, batch_size=2))
    assert _changed(before["kp_detector"], system.kp_detector) and not _changed(before["generator"], system.generator)
    assert system.he_estimator.fc_exp.weight.any()

    with pytest.raises(KeyError, match="landmark_guide_weight"):
        _fit_steps(tiny_renderer(landmark_guide_weight=1.0), 1)
    for bad in ([48, 48], [68], list(range(16))):
        with pytest.raises(ValueError, match="landmark_guide_points"):
            tiny_renderer(landmark_guide_points=bad)


def test_landmark_guide_shape_loss_scores_the_guided_points_shape_not_their_place() -> None:
    """``landmark_guide_shape_weight``: the guide's squared distance with each frame's mean error
    over the guided points taken out, so one offset of every guided keypoint (a pose or translation
    error) costs nothing and a mouth opened wrong does."""
    system = tiny_renderer(landmark_guide_weight=2.0, landmark_guide_shape_weight=3.0)
    g = torch.Generator().manual_seed(0)
    targets = torch.rand(5, 2, 4, 2, generator=g) * 1.6 - 0.8  # (N, source / driving, P, x y) grid units
    kp_source, kp_driving = torch.rand(5, 15, 3, generator=g), torch.rand(5, 15, 3, generator=g)
    losses = system.landmark_guide_losses(kp_source, kp_driving, targets, (64, 64))
    error = (torch.stack([kp_source[:, :4, :2], kp_driving[:, :4, :2]], 1) - targets) * 31.5  # pixels
    torch.testing.assert_close(losses["landmark_guide"], 2.0 * error.pow(2).sum(-1).mean())
    shape = error - error.mean(2, keepdim=True)
    torch.testing.assert_close(losses["landmark_guide_shape"], 3.0 * shape.pow(2).sum(-1).mean())
    # The guided points in their places, all shifted by one offset: only the position term pays.
    shifted = targets[:, 1].clone() + torch.tensor([0.1, -0.2])
    on_places = torch.cat([shifted, torch.zeros(5, 11, 2)], 1)
    kp = torch.cat([on_places, torch.zeros(5, 15, 1)], -1)
    source = torch.cat([torch.cat([targets[:, 0], torch.zeros(5, 11, 2)], 1), torch.zeros(5, 15, 1)], -1)
    losses = system.landmark_guide_losses(source, kp, targets, (64, 64))
    assert losses["landmark_guide_shape"] < 1e-8 < losses["landmark_guide"]
    assert set(tiny_renderer(landmark_guide_weight=2.0).landmark_guide_losses(source, kp, targets, (64, 64))) == {
        "landmark_guide"}
    for weights in ((1.0, -1.0), (0.0, 1.0)):
        with pytest.raises(ValueError, match="landmark_guide_shape_weight"):
            tiny_renderer(landmark_guide_weight=weights[0], landmark_guide_shape_weight=weights[1])
