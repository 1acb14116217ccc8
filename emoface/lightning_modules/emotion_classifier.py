"""Training the Emotion-FAN video emotion classifier on cropped MEAD frames."""

from __future__ import annotations

import os
from collections.abc import Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor

from emoface.emotions import EMOTIONS, NUM_EMOTIONS
from emoface.lightning_modules._hparams import save_hyperparameters_except_objects
from emoface.metrics import EmotionLogitsAccuracy
from emoface.metrics import functional as MF
from emoface.networks.emotion_fan import EmotionFAN


class EmotionClassifier(L.LightningModule):
    """Cross-entropy training of :class:`EmotionFAN` on video windows.

    Batches come from :class:`emoface.datamodules.MEADDataModule` with ``fields: [frames]``:
    ``frames (B, T, 3, H, W)`` uint8 RGB crops and ``emotion (B,)`` indices in
    :data:`emoface.emotions.EMOTIONS`. The network's outputs are matched to those indices through
    its ``labels`` (so a classifier in another label order, e.g. EAT's, trains consistently).
    Validation / test report the accuracy of the windows with
    :class:`emoface.metrics.EmotionLogitsAccuracy` (``val/acc``, ``test/acc``).

    Args:
        net: the classifier.
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        class_weights: cross-entropy weight per class (in :data:`EMOTIONS` order), e.g.
            inverse class frequencies: MEAD has one neutral level against three of every other
            emotion. ``None``: unweighted.
        flip: augment training windows with random horizontal flips (per window, every frame
            alike): facial expressions are mirror-symmetric, and flips double the identities seen.
        translate: augment training windows with a random shift of up to this fraction of the side
            (per window, whole pixels, edges repeated).
        cosine: anneal the learning rate to 0 over the run (cosine, per step) instead of a constant
            rate; the held-out accuracy of a constant-rate run swings from epoch to epoch.
    """

    def __init__(
        self,
        net: EmotionFAN,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        class_weights: Sequence[float] | None = None,
        flip: bool = False,
        translate: float = 0.0,
        cosine: bool = False,
    ) -> None:
        super().__init__()
        save_hyperparameters_except_objects(self)
        self.net = net
        if class_weights is not None and len(class_weights) != len(net.labels):
            raise ValueError(f"{len(class_weights)} class weights for {len(net.labels)} classes")
        weights = None if class_weights is None else torch.tensor(list(class_weights), dtype=torch.float32)
        self.register_buffer("class_weights", weights, persistent=False)
        self.val_accuracy = EmotionLogitsAccuracy()
        self.test_accuracy = EmotionLogitsAccuracy()

    def forward(self, frames: Tensor) -> Tensor:
        """``(B, T, 3, H, W)`` -> ``(B, 8)`` logits in :data:`emoface.emotions.EMOTIONS` order."""
        return MF.reorder_logits(self.net(frames), self.net.labels)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        frames = batch["frames"]
        if self.hparams.flip:
            mirrored = torch.rand(frames.shape[0], device=frames.device) < 0.5
            frames = torch.where(mirrored.view(-1, 1, 1, 1, 1), frames.flip(-1), frames)
        if self.hparams.translate > 0:
            frames = self._translate(frames)
        logits = self(frames)
        loss = F.cross_entropy(logits, batch["emotion"], weight=self.class_weights)
        acc = (logits.argmax(-1) == batch["emotion"]).float().mean()
        self.log_dict({"train/loss": loss, "train/acc": acc}, prog_bar=True, batch_size=logits.shape[0])
        return loss

    def _translate(self, frames: Tensor) -> Tensor:
        """Shift every window of ``(B, T, C, H, W)`` by its own random whole-pixel offset (edges repeated)."""
        b, _, _, h, w = frames.shape
        pad = max(1, round(self.hparams.translate * max(h, w)))
        padded = F.pad(frames.flatten(1, 2).float(), (pad, pad, pad, pad), mode="replicate").to(frames.dtype)
        starts = torch.randint(0, 2 * pad + 1, (b, 2), device=frames.device).tolist()
        out = torch.stack([padded[i, :, y : y + h, x : x + w] for i, (y, x) in enumerate(starts)])
        return out.view_as(frames)

    def _evaluate(self, batch: dict[str, Tensor], metric: EmotionLogitsAccuracy, stage: str) -> None:
        logits = self(batch["frames"])
        metric.update(logits, batch["emotion"])
        self.log(
            f"{stage}/loss",
            F.cross_entropy(logits, batch["emotion"]),
            sync_dist=True,
            batch_size=logits.shape[0],
        )

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.val_accuracy, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.test_accuracy, "test")

    def _log_accuracy(self, metric: EmotionLogitsAccuracy, stage: str) -> None:
        out = metric.compute()
        self.log(f"{stage}/acc", out["accuracy"].float())
        for emotion, accuracy in zip(EMOTIONS, out["per_class"].tolist()):
            if accuracy == accuracy:  # not NaN: the class was seen
                self.log(f"{stage}/acc_{emotion}", accuracy)
        metric.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_accuracy(self.val_accuracy, "val")

    def on_test_epoch_end(self) -> None:
        self._log_accuracy(self.test_accuracy, "test")

    def configure_optimizers(self) -> torch.optim.Optimizer | dict:
        opt = torch.optim.Adam(self.net.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        if not self.hparams.cosine:
            return opt
        steps = max(1, int(self.trainer.estimated_stepping_batches))
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def export(self, path: str | os.PathLike) -> None:
        """Write the classifier for :meth:`EmotionFAN.from_pretrained` / :class:`EmotionAccuracy`."""
        if len(self.net.labels) != NUM_EMOTIONS:
            raise ValueError(
                f"only {NUM_EMOTIONS}-class MEAD classifiers can be exported for EmotionAccuracy, "
                f"this one has {len(self.net.labels)} classes"
            )
        self.net.export(path)
