"""LandmarksToKeypoints: stage 2 of the method, relocated landmarks -> the frozen renderer's keypoints.

A :class:`~emoface.networks.landmarks_to_keypoints.KeypointMapper` maps a window of relocated
landmarks (68 posed points + 2 pupils per frame, the form stage 1 writes) and the source frame's
to the driving frames' keypoint parameters of a frozen renderer of either family
(:mod:`emoface.rendering`): face-vid2vid (yaw/pitch/roll bins, translation, 15x3 expression
deltas) or LivePortrait (pitch/yaw/roll bins, translation, 21x3 expression deltas and a scale). Training is **self-supervised**: the targets are the frozen
head estimator's outputs on the real driving frames, and the inputs are the real frames' cues
relocated exactly as stage 1's are (:func:`emoface.geometry.relocation.relocate`), so a stage-1
file feeds the trained mapper unchanged.

Losses (each weight configurable):

* ``angle_bins``: KL divergence of the predicted angle bins from the estimator's bin
  distribution (soft targets in the bin form the estimator itself uses);
* ``angles``: L1 of the expected angles in degrees;
* ``translation``, ``expression`` (and ``scale`` for LivePortrait): L1 against the estimator's;
* ``keypoints``: L1 of the posed keypoints ``R kp_canonical + t + exp`` against the estimator's;
* ``smoothness``: L1 of the predicted keypoints' second temporal differences (acceleration);
* ``image`` (optional, off by default): L1 of the frames the frozen generator renders from the
  predicted keypoints against the real frames (gradients flow into the mapper only).

The renderer (``renderer_checkpoint``) is a ``FaceRenderer`` checkpoint written by ``emoface fit
--config configs/renderer*.yaml``, a public face-vid2vid file (networks sized by ``kp_detector`` /
``he_estimator`` / ``generator``, default vox-256, the generator class the file holds) or a
LivePortrait weights folder (then the mapper needs ``num_kp: 21`` and ``scale: true``; its
frames come out at twice the input size and are resized to the data's for the image losses). It is frozen and kept out of this
system's checkpoints (they hold the mapper; the renderer file is named in the hyperparameters).

The renderer is frozen and the data's frames are not augmented, so its outputs on a frame (the
targets) are the same in every epoch: with ``memoize_targets`` (the default) each frame and source
frame is read once per run and its outputs kept in memory (:class:`FrozenOutputs`), which takes
the estimator's forward passes, most of a training step's compute, out of every epoch but the first.

Validation logs the keypoint error (mean Euclidean distance in the renderer's normalised volume)
of the mapper and of "source keypoints held still", and PSNR/SSIM of frames rendered from the
predicted keypoints, from the estimator's own keypoints of the real frames (the renderer's
reconstruction, the ceiling of this stage) and of "source frame repeated", plus a grid of
source | driving | rendered-from-landmarks images.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import Tensor, nn
from torchmetrics import MeanMetric

from emoface.geometry.keypoints import bins_to_degrees
from emoface.geometry.relocation import relocate
from emoface.io.weights import MissingWeightsError
from emoface.lightning_modules._figures import log_image_grid
from emoface.lightning_modules._frozen import on_device
from emoface.lightning_modules._hparams import save_hyperparameters_except_objects
from emoface.lightning_modules.face_renderer import to_unit
from emoface.metrics import PSNR, SSIM
from emoface.networks.face_vid2vid import (
    CanonicalKeypointDetector,
    HeadExpressionEstimator,
    OcclusionAwareGenerator,
    OcclusionAwareSPADEGenerator,
)
from emoface.networks.face_vid2vid.checkpoint import is_safetensors_file, load_face_vid2vid_networks
from emoface.networks.landmarks_to_keypoints import KeypointMapper
from emoface.networks.live_portrait import is_live_portrait_folder
from emoface.rendering import FaceVid2VidRenderer, LivePortraitRenderer, Renderer

BATCH_FIELDS = ("frames", "source_frame", "pose", "gaze", "normalized_landmarks")
"""MEADDataModule ``fields`` this module reads (docs/data_format.md)."""
ANGLES = ("yaw", "pitch", "roll")


def normalise_points(points: Tensor, size: int) -> Tensor:
    """Crop pixels -> about [-1, 1] (x, y and the depth z, which is in pixel units too)."""
    return points / (size / 2.0) - torch.tensor([1.0, 1.0, 0.0], device=points.device, dtype=points.dtype)


def _is_lightning_checkpoint(path: Path) -> bool:
    """A checkpoint written by Lightning (``state_dict`` + ``pytorch-lightning_version``), not a public one."""
    if is_safetensors_file(path):  # SadTalker's single file
        return False
    try:
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)  # reads no tensor data
        except RuntimeError:  # a legacy (pre-zip) file cannot be memory-mapped
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        return True  # public face-vid2vid checkpoints are plain tensor dicts; Lightning's may hold more
    return isinstance(checkpoint, dict) and "state_dict" in checkpoint and "pytorch-lightning_version" in checkpoint


class FrozenOutputs:
    """Per-frame outputs of a frozen network, computed once for each frame key and then reused.

    Each key names one frame's pixels (here ``(clip, frame index, side)``); the caller vouches that a
    key always comes with the same pixels and that the network does not change. Outputs are kept on
    the CPU (a few hundred floats per frame: about 1 KB, so 1 GB per million frames).
    """

    def __init__(self) -> None:
        self._rows: dict[Hashable, dict[str, Tensor]] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def clear(self) -> None:
        self._rows.clear()

    def __call__(
        self, keys: Sequence[Hashable], images: Tensor, compute: Callable[[Tensor], dict[str, Tensor]]
    ) -> dict[str, Tensor]:
        """``compute``'s outputs ``{name: (N, ...)}`` for ``images (N, ...)`` whose frames are ``keys``
        (N of them); ``compute`` runs once, on the frames not seen before (each once), if any."""
        if len(keys) != images.shape[0]:
            raise ValueError(f"{len(keys)} frame keys for {images.shape[0]} images")
        missing = list(dict.fromkeys(key for key in keys if key not in self._rows))
        if missing:
            first = {key: index for index, key in reversed(list(enumerate(keys)))}
            computed = compute(images[[first[key] for key in missing]])
            for row, key in enumerate(missing):
                self._rows[key] = {name: value[row].detach().cpu() for name, value in computed.items()}
        names = self._rows[keys[0]].keys()
        return {name: torch.stack([self._rows[key][name] for key in keys]).to(images.device) for name in names}


class LandmarksToKeypoints(LightningModule):
    """Stage 2: relocated landmarks -> a frozen face-vid2vid renderer's keypoints (see the module docstring).

    Args:
        mapper: the mapping network (default sizes when ``None``).
        renderer_checkpoint: ``FaceRenderer`` checkpoint (``.ckpt``), public face-vid2vid file, or
            LivePortrait weights folder.
        kp_detector, he_estimator, generator: the renderer's networks for a public checkpoint
            (default: vox-256 sizes, the generator class the file holds, plain or SPADE); ignored
            for a ``FaceRenderer`` checkpoint, which names its own.
        angle_bin_weight, angle_weight, translation_weight, expression_weight, keypoint_weight,
            smoothness_weight, image_weight, scale_weight: loss weights (``image_weight`` 0 skips
            rendering in training; ``scale_weight`` only for a renderer with a scale term).
        lr, weight_decay: AdamW.
        val_render: render validation frames (PSNR/SSIM and the image grid); off: keypoint metrics only.
        image_log_count: rows of the validation image grid (0: none).
        stage1_dir: ``predict`` renders the stage-1 files ``<stage1_dir>/<clip>.npz`` (written by
            ``emoface predict`` of SpeechToLandmarks); ``None`` renders each clip from its real
            relocated cues (the reconstruction this stage can reach).
        output_dir: where ``predict`` writes ``<clip>.mp4`` (default
            ``<trainer.default_root_dir>/l2k_predictions``).
        render_batch_size: frames per generator call in ``predict``.
        memoize_targets: keep the frozen renderer's outputs on each real frame and source frame
            (keyed by clip, frame index and side) for the rest of the run instead of computing them
            at every step (:class:`FrozenOutputs`); the same values, as the renderer is frozen and
            the MEADDataModule's frames are not augmented. Turn it off for a datamodule that
            changes a frame's pixels from one epoch to the next.
    """

    def __init__(
        self,
        mapper: KeypointMapper | None = None,
        renderer_checkpoint: str | None = None,
        kp_detector: CanonicalKeypointDetector | None = None,
        he_estimator: HeadExpressionEstimator | None = None,
        generator: OcclusionAwareGenerator | OcclusionAwareSPADEGenerator | None = None,
        angle_bin_weight: float = 1.0,
        angle_weight: float = 0.1,
        translation_weight: float = 10.0,
        expression_weight: float = 10.0,
        keypoint_weight: float = 10.0,
        smoothness_weight: float = 1.0,
        image_weight: float = 0.0,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        val_render: bool = True,
        image_log_count: int = 4,
        stage1_dir: str | None = None,
        output_dir: str | None = None,
        render_batch_size: int = 8,
        scale_weight: float = 10.0,
        memoize_targets: bool = True,
    ) -> None:
        super().__init__()
        save_hyperparameters_except_objects(self)
        self.mapper = mapper if mapper is not None else KeypointMapper()
        # The frozen renderer lives outside the module tree: checkpoints hold the mapper only, and
        # the renderer's parameters never reach the optimizer or DDP.
        self._renderer: dict[str, nn.Module] = {}
        self._renderer_networks = (kp_detector, he_estimator, generator)
        self.keypoint_error = MeanMetric()
        self.keypoint_error_still = MeanMetric()
        self.metrics = nn.ModuleDict({
            f"{what}{suffix}": cls() for what, cls in (("psnr", PSNR), ("ssim", SSIM))
            for suffix in ("", "_reconstruction", "_source")
        })  # fmt: skip
        self._grid_rows: list[np.ndarray] = []
        self._targets, self._sources = FrozenOutputs(), FrozenOutputs()

    # ------------------------------------------------------------------------------------------
    # The frozen renderer
    def load_renderer(self) -> None:
        """Load ``renderer_checkpoint`` (once) and freeze it.

        Raises:
            MissingWeightsError: no checkpoint configured, or the file does not exist.
            CheckpointMismatchError: a public checkpoint that does not fit the configured networks.
        """
        if self._renderer:
            return
        path = self.hparams.renderer_checkpoint
        if path is None:
            raise MissingWeightsError(
                Path("<renderer_checkpoint>"), "renderer checkpoint",
                "a FaceRenderer checkpoint (`emoface fit --config configs/renderer_small.yaml` writes "
                "runs/renderer_small/checkpoints/last.ckpt), a public face-vid2vid file or a LivePortrait weights "
                "folder; set "
                "model.init_args.renderer_checkpoint",
                "the frozen renderer of LandmarksToKeypoints",
            )  # fmt: skip
        if Path(path).is_dir() and is_live_portrait_folder(path):
            self._set_renderer(LivePortraitRenderer.from_folder(path))
            return
        if Path(path).is_file() and _is_lightning_checkpoint(Path(path)):
            from emoface.lightning_modules.face_renderer import FaceRenderer

            system = FaceRenderer.load_from_checkpoint(path, map_location="cpu", perceptual_backbone=None)
            networks = (system.kp_detector, system.he_estimator, system.generator)
        else:
            # Networks not configured get vox-256 sizes; the generator is the class the file holds.
            loaded = load_face_vid2vid_networks(path, *self._renderer_networks)
            networks = (loaded["kp_detector"], loaded["he_estimator"], loaded["generator"])
        self._set_renderer(FaceVid2VidRenderer(*networks))

    def _set_renderer(self, renderer: Renderer) -> None:
        """Freeze ``renderer`` and check the mapper predicts its parameters."""
        mapper = self.mapper
        if mapper.num_kp != renderer.num_kp or getattr(mapper, "scale", False) != renderer.has_scale:
            raise ValueError(
                f"the mapper predicts {mapper.num_kp} keypoints{' and a scale' if getattr(mapper, 'scale', False) else ''}, "
                f"but the {renderer.family} renderer {self.hparams.renderer_checkpoint} has {renderer.num_kp} keypoints"
                f"{' and a scale' if renderer.has_scale else ' and no scale'}: set model.init_args.mapper.init_args."
                f"num_kp: {renderer.num_kp} and scale: {str(renderer.has_scale).lower()}"
            )
        renderer.eval().requires_grad_(False)
        self._renderer["renderer"] = renderer
        self._targets.clear()  # outputs of another renderer
        self._sources.clear()

    def frozen_renderer(self) -> Renderer:
        """The frozen renderer (either family) on this system's device."""
        self.load_renderer()
        return on_device(self._renderer["renderer"], self.device)  # several calls a step

    def renderer(self) -> tuple[nn.Module, ...]:
        """The frozen renderer's networks on this system's device: face-vid2vid ``(kp_detector,
        he_estimator, generator)``; LivePortrait ``(appearance, motion, warping, decoder, stitching)``."""
        renderer = self.frozen_renderer()
        if isinstance(renderer, FaceVid2VidRenderer):
            return renderer.kp_detector, renderer.he_estimator, renderer.generator
        assert isinstance(renderer, LivePortraitRenderer)
        return (renderer.appearance_feature_extractor, renderer.motion_extractor, renderer.warping_module,
                renderer.spade_generator, renderer.stitching_retargeting_module)  # fmt: skip

    def setup(self, stage: str) -> None:
        self.load_renderer()  # a missing or mismatched renderer stops the run before the first step

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The configured renderer path is often relative to where training ran (runs/...); the
        # absolute one lets the checkpoint be used from any directory.
        path = self.hparams.renderer_checkpoint
        if path is not None and Path(path).exists():
            checkpoint["renderer_checkpoint_resolved"] = str(Path(path).resolve())

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        path, resolved = self.hparams.renderer_checkpoint, checkpoint.get("renderer_checkpoint_resolved")
        if path is not None and not Path(path).exists() and resolved and Path(resolved).exists():
            self.hparams.renderer_checkpoint = resolved

    # ------------------------------------------------------------------------------------------
    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Targets from the frozen renderer and the mapper's prediction for a batch.

        Returns:
            ``pred`` (the mapper's outputs, ``(B, T, ...)``), ``target`` (the estimator's on the
            real frames, ``(B*T, ...)``), ``kp_pred`` / ``kp_target`` ``(B, T, K, 3)``,
            ``kp_source`` ``(B, K, 3)`` and ``kp_canonical`` ``(B, K, 3)``.
        """
        renderer = self.frozen_renderer()
        frames = batch["frames"]  # (B, T, 3, H, W) uint8
        b, t, size = frames.shape[0], frames.shape[1], frames.shape[-1]
        with torch.no_grad():
            he_source = self.frozen_source_outputs(batch)
            kp_canonical = he_source.pop("kp_canonical")  # (B, K, 3)
            target = self.frozen_targets(batch)
            kp_source = renderer.keypoints(kp_canonical, he_source)
        points = relocate(
            batch["normalized_landmarks"], batch["gaze"], batch["rotation"], batch["translation"], batch["scale"]
        ).points  # (B, T, 70, 3)
        pred, kp_pred = self.map_keypoints(
            normalise_points(points, size), normalise_points(batch["source_relocated"], size), kp_canonical, he_source,
            kp_source,
        )  # fmt: skip
        kp_per_frame = kp_canonical.repeat_interleave(t, dim=0)  # (B*T, K, 3)
        k = kp_canonical.shape[1]
        with torch.no_grad():
            kp_target = renderer.keypoints(kp_per_frame, target, kp_source.repeat_interleave(t, dim=0))
        return {
            "pred": pred, "target": target, "kp_canonical": kp_canonical, "kp_pred": kp_pred,
            "kp_target": kp_target.view(b, t, k, 3), "kp_source": kp_source,
        }  # fmt: skip

    def frozen_source_outputs(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """The frozen renderer's ``kp_canonical (B, K, 3)`` and raw estimates ``(B, ...)`` of each
        clip's source frame (memoized with ``memoize_targets``)."""
        renderer = self.frozen_renderer()

        def compute(images: Tensor) -> dict[str, Tensor]:
            source = to_unit(images)
            return {"kp_canonical": renderer.canonical_keypoints(source), **renderer.estimate(source)}

        images = batch["source_frame"]
        if not self._memoize(batch, "source_index"):
            return compute(images)
        side = images.shape[-1]
        keys = [(clip, int(index), side) for clip, index in zip(batch["clip"], batch["source_index"])]
        return self._sources(keys, images, compute)

    def frozen_targets(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """The frozen estimator's raw outputs ``(B*T, ...)`` on the real driving frames (memoized
        with ``memoize_targets``)."""
        estimate = self.frozen_renderer().estimate
        frames = batch["frames"].flatten(0, 1)  # (B*T, 3, H, W) uint8

        def compute(images: Tensor) -> dict[str, Tensor]:
            return estimate(to_unit(images))

        if not self._memoize(batch, "start"):
            return compute(frames)
        t, side = batch["frames"].shape[1], frames.shape[-1]
        keys = [(clip, int(start) + i, side) for clip, start in zip(batch["clip"], batch["start"]) for i in range(t)]
        return self._targets(keys, frames, compute)

    def _memoize(self, batch: dict[str, Any], index_field: str) -> bool:
        """``memoize_targets`` and a batch that names its frames (``clip`` and ``index_field``)."""
        return bool(self.hparams.get("memoize_targets", True)) and "clip" in batch and index_field in batch

    def map_keypoints(
        self,
        points: Tensor,
        source_points: Tensor,
        kp_canonical: Tensor,
        he_source: dict[str, Tensor],
        kp_source: Tensor | None = None,
    ) -> tuple[dict[str, Tensor], Tensor]:
        """The mapper's parameters and posed keypoints for relocated landmarks.

        Args:
            points: ``(B, T, 70, 3)`` driving frames' relocated points, normalised
                (:func:`normalise_points`).
            source_points: ``(B, 70, 3)`` the source frame's, normalised the same way.
            kp_canonical: ``(B, K, 3)`` the source's canonical keypoints.
            he_source: the frozen estimator's raw outputs on the source (bin logits, ``t``, ``exp``,
                and ``scale`` for LivePortrait).
            kp_source: ``(B, K, 3)`` the source's posed keypoints (LivePortrait stitches the driving
                keypoints against them; ``None``: no stitching).

        Returns:
            ``(pred, keypoints)``: the mapper's outputs ``(B, T, ...)`` and the driving keypoints
            ``(B, T, K, 3)`` they pose the canonical keypoints into.
        """
        b, t = points.shape[:2]
        renderer = self.frozen_renderer()
        source_params = {
            "angles": torch.stack([renderer.degrees(he_source[n]) for n in ANGLES], -1),
            "t": he_source["t"], "exp": he_source["exp"],
        }  # fmt: skip
        if "scale" in he_source:
            source_params["scale"] = he_source["scale"]
        pred = self.mapper(points, source_points, kp_canonical, source_params)
        flat = {name: value.flatten(0, 1) for name, value in pred.items()}
        repeated = None if kp_source is None else kp_source.repeat_interleave(t, dim=0)
        keypoints = renderer.keypoints(kp_canonical.repeat_interleave(t, dim=0), flat, repeated)
        return pred, keypoints.view(b, t, *kp_canonical.shape[1:])

    def losses(self, batch: dict[str, Any], out: dict[str, Any]) -> dict[str, Tensor]:
        """The weighted losses (see the module docstring)."""
        hp = self.hparams
        pred, target = out["pred"], out["target"]
        losses: dict[str, Tensor] = {}
        if hp.angle_bin_weight:
            # KL divergence from the estimator's bin distribution: the soft cross-entropy's gradient,
            # with 0 (not the target's entropy) as its floor, so the logged value reads as a gap.
            value = sum(
                F.kl_div(F.log_softmax(pred[n].flatten(0, 1), -1), F.log_softmax(target[n], -1), log_target=True,
                         reduction="batchmean")
                for n in ANGLES
            )  # fmt: skip
            losses["angle_bins"] = hp.angle_bin_weight * value
        if hp.angle_weight:
            value = sum((bins_to_degrees(pred[n].flatten(0, 1)) - bins_to_degrees(target[n])).abs().mean() for n in ANGLES)
            losses["angles"] = hp.angle_weight * value
        if hp.translation_weight:
            losses["translation"] = hp.translation_weight * (pred["t"].flatten(0, 1) - target["t"]).abs().mean()
        if hp.expression_weight:
            losses["expression"] = hp.expression_weight * (pred["exp"].flatten(0, 1) - target["exp"]).abs().mean()
        if hp.scale_weight and "scale" in pred:
            losses["scale"] = hp.scale_weight * (pred["scale"].flatten(0, 1) - target["scale"]).abs().mean()
        if hp.keypoint_weight:
            losses["keypoints"] = hp.keypoint_weight * (out["kp_pred"] - out["kp_target"]).abs().mean()
        if hp.smoothness_weight and out["kp_pred"].shape[1] >= 3:
            kp = out["kp_pred"]
            losses["smoothness"] = hp.smoothness_weight * (kp[:, 2:] - 2 * kp[:, 1:-1] + kp[:, :-2]).abs().mean()
        if hp.image_weight:
            rendered = self.render(batch, out["kp_pred"], out["kp_source"])
            losses["image"] = hp.image_weight * (rendered - to_unit(batch["frames"])).abs().mean()
        return losses

    def render(self, batch: dict[str, Any], kp_driving: Tensor, kp_source: Tensor) -> Tensor:
        """Frames ``(B, T, 3, H, W)`` in [0, 1] the frozen generator draws from each clip's source frame.

        Args:
            kp_driving: ``(B, T, K, 3)``; kp_source: ``(B, K, 3)``.
        """
        renderer = self.frozen_renderer()
        b, t = kp_driving.shape[:2]
        source = to_unit(batch["source_frame"])  # (B, 3, H, W)
        # Each clip's source is encoded once, not once per driving frame (the split the batched
        # inference path uses); its encoding is shared by the clip's T frames.
        encoded = {name: value.repeat_interleave(t, dim=0) for name, value in renderer.encode(source).items()}
        frames = renderer.animate(encoded, kp_source.repeat_interleave(t, dim=0), kp_driving.flatten(0, 1))
        if frames.shape[-2:] != source.shape[-2:]:  # LivePortrait draws at twice its input size
            frames = F.interpolate(frames, size=source.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
        return frames.view(b, t, *source.shape[1:])

    # ------------------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        out = self(batch)
        losses = self.losses(batch, out)
        loss = sum(losses.values())
        b = batch["frames"].shape[0]
        self.log_dict({f"train/{name}": value.detach() for name, value in losses.items()}, batch_size=b)
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=b)
        return loss

    def _evaluate(self, batch: dict[str, Any], stage: str) -> None:
        out = self(batch)
        b, t = batch["frames"].shape[:2]
        self.keypoint_error.update((out["kp_pred"] - out["kp_target"]).norm(dim=-1).mean(-1).flatten())
        still = out["kp_source"].unsqueeze(1).expand_as(out["kp_target"])
        self.keypoint_error_still.update((still - out["kp_target"]).norm(dim=-1).mean(-1).flatten())
        self.log(f"{stage}/loss", sum(self.losses(batch, out).values()), batch_size=b, sync_dist=True)
        if not self.hparams.val_render:
            return
        with torch.no_grad():
            predicted = self.render(batch, out["kp_pred"], out["kp_source"]).clamp(0, 1)
            reconstructed = self.render(batch, out["kp_target"], out["kp_source"]).clamp(0, 1)
        target = to_unit(batch["frames"])
        repeated = to_unit(batch["source_frame"]).unsqueeze(1).expand_as(target)
        # The source frame itself, when inside the window, is left out: the baseline would be perfect.
        index = batch["start"].view(b, 1) + torch.arange(t, device=target.device)
        keep = index != batch["source_index"].view(b, 1)
        videos = {"": predicted, "_reconstruction": reconstructed, "_source": repeated}
        for k in range(b):
            if keep[k].any():
                for name, metric in self.metrics.items():
                    suffix = name[name.index("_"):] if "_" in name else ""
                    metric.update(videos[suffix][k, keep[k]].unsqueeze(0), target[k, keep[k]].unsqueeze(0))
        if stage == "val" and len(self._grid_rows) < self.hparams.image_log_count:
            middle = t // 2
            for k in range(min(b, self.hparams.image_log_count - len(self._grid_rows))):
                row = torch.cat([repeated[k, middle], target[k, middle], predicted[k, middle]], dim=-1)
                self._grid_rows.append((row.permute(1, 2, 0).float().cpu().numpy() * 255).round().astype(np.uint8))

    def _log_epoch(self, stage: str) -> None:
        for name, metric in (("keypoint_error", self.keypoint_error), ("keypoint_error_still", self.keypoint_error_still)):
            if metric.update_count:
                self.log(f"{stage}/{name}", metric.compute())
            metric.reset()
        for name, metric in self.metrics.items():
            if metric.update_count:
                self.log(f"{stage}/{name}", metric.compute().float())
            metric.reset()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")
        if self._grid_rows and self.trainer.is_global_zero and not self.trainer.sanity_checking:
            grid = np.concatenate(self._grid_rows, axis=0)
            log_image_grid(self.trainer, grid, "val/source_driving_rendered", self.global_step, self.current_epoch)
        self._grid_rows.clear()

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    # ------------------------------------------------------------------------------------------
    # Inference: relocated landmarks of a whole clip -> frames
    # ------------------------------------------------------------------------------------------
    def inference_renderer(self, batch_size: int | None = None, autocast_dtype: torch.dtype | None = None) -> Renderer:
        """The frozen renderer behind the batched inference path (source encoded once per video)."""
        renderer = self.frozen_renderer()
        options = {"batch_size": batch_size or self.hparams.render_batch_size, "autocast_dtype": autocast_dtype}
        if isinstance(renderer, LivePortraitRenderer):
            return LivePortraitRenderer(*self.renderer(), input_size=renderer.input_size, **options)  # type: ignore[arg-type]
        return FaceVid2VidRenderer(*self.renderer(), **options)  # type: ignore[arg-type]

    @torch.inference_mode()
    def animate(
        self,
        source_image: Tensor,
        points: Tensor,
        source_points: Tensor,
        renderer: Renderer | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Tensor:
        """Render a clip: the source image driven by relocated landmarks.

        Args:
            source_image: ``(3, H, W)`` uint8 or float in [0, 1].
            points: ``(T, 70, 3)`` relocated points of the driving frames, normalised
                (:func:`normalise_points`).
            source_points: ``(70, 3)`` the source image's relocated points, normalised the same way.
            renderer: from :meth:`inference_renderer` (made here when ``None``).
            progress: called with the number of frames of each rendered batch.

        Returns:
            ``(T, 3, H', W')`` float frames in [0, 1] on the renderer's device (LivePortrait: twice
            the input side).
        """
        renderer = renderer if renderer is not None else self.inference_renderer()
        source = renderer.prepare_source(source_image)
        device = renderer.device
        _, keypoints = self.map_keypoints(
            points.to(device).float().unsqueeze(0), source_points.to(device).float().unsqueeze(0),
            source.kp_canonical, source.estimate, source.kp_source,
        )  # fmt: skip
        keypoints = keypoints[0]
        frames = []
        for start in range(0, keypoints.shape[0], renderer.batch_size):
            frames.append(renderer.render(source, keypoints[start : start + renderer.batch_size]))
            if progress is not None:
                progress(frames[-1].shape[0])
        return torch.cat(frames)

    def prediction_dir(self) -> Path:
        """Directory ``predict`` writes to."""
        if self.hparams.output_dir is not None:
            return Path(self.hparams.output_dir)
        return Path(self.trainer.default_root_dir) / "l2k_predictions"

    def _predicted_points(self, batch: dict[str, Any], size: int) -> Tensor:
        """``(T, 70, 3)`` normalised relocated points of a predict batch's clip: its stage-1 file
        (``stage1_dir``) or its real cues."""
        clip = batch["clip"][0]
        if self.hparams.stage1_dir is None:
            points = relocate(
                batch["normalized_landmarks"], batch["gaze"], batch["rotation"], batch["translation"], batch["scale"]
            ).points[0]
            return normalise_points(points, size)
        path = Path(self.hparams.stage1_dir) / f"{clip}.npz"
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: no stage-1 prediction for clip {clip!r}; write them with `emoface predict --config "
                f"configs/s2l.yaml --ckpt_path S2L.ckpt` (model.init_args.output_dir) on the same clips"
            )
        with np.load(path) as arrays:
            if "relocated" not in arrays:
                raise KeyError(f"{path}: not a stage-1 prediction file (no 'relocated' array)")
            relocated = torch.from_numpy(np.asarray(arrays["relocated"], dtype=np.float32))
            # Stage-1 files say the crop side their pixels are in; older ones are in this data's.
            points_size = int(arrays["size"]) if "size" in arrays else size
        return normalise_points(relocated, points_size)

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> list[str]:
        """Render each clip of the batch (whole clips, the MEADDataModule's predict loader) to
        ``<output_dir>/<clip>.mp4``, with the clip's audio when the batch has ``waveform``.

        Returns:
            the written files.
        """
        from emoface.io.media import write_video

        size = batch["source_frame"].shape[-1]
        points = self._predicted_points(batch, size)
        source_points = normalise_points(batch["source_relocated"][0], size)
        frames = self.animate(batch["source_frame"][0], points, source_points)
        video = (frames.permute(0, 2, 3, 1).float().cpu().numpy() * 255.0).round().astype(np.uint8)
        audio = batch["waveform"][0].float().cpu().numpy() if "waveform" in batch else None
        path = write_video(self.prediction_dir() / f"{batch['clip'][0]}.mp4", video, fps=25, audio=audio)
        return [str(path)]

    def configure_optimizers(self) -> Any:
        return torch.optim.AdamW(self.mapper.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
