"""Training the SyncNet lip-sync expert on MEAD windows (multi-way matching, or contrastive pairs)."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor

from emoface.lightning_modules._hparams import save_hyperparameters_except_objects
from emoface.metrics import functional as MF
from emoface.networks.syncnet import SyncNet

OBJECTIVES = ("multiway", "contrastive")


class SyncNetTrainer(L.LightningModule):
    """Trains :class:`SyncNet` on audio / lip windows of the same clip.

    Batches come from :class:`emoface.datamodules.MEADDataModule` with
    ``fields: [frames, waveform]``: ``frames (B, T, 3, H, W)`` uint8 RGB crops and
    ``waveform (B, 640 T)`` at 16 kHz. Every 5-frame video window ``i`` of a clip (frames
    ``i..i+4``, exactly as :func:`emoface.metrics.functional.syncnet_embeddings` cuts them) is
    compared with every audio window ``j`` of the same clip (MFCC columns ``[4j, 4j + 20)``, as
    :func:`emoface.metrics.functional.syncnet_mfcc` computes them) by the Euclidean distance
    ``d_ij`` of their embeddings. Objectives:

    * ``"multiway"`` (default; SyncNet v2, Chung et al. 2019 "Perfect match"): softmax
      cross-entropy over the negative distances to the audio windows at offsets ``-K..K``
      (``K = max_offset``, clipped to the clip) with the in-sync window as the target,
      ``-log softmax_j(-d_ij)[j = i]``. This is the offset search of the metric (argmin of the
      distance over offsets) made differentiable, and unlike a margin loss it cannot settle on
      "every distance equal".
    * ``"contrastive"`` (SyncNet v1, Chung & Zisserman 2016): pairs ``i == j`` are positives and
      ``|i - j| >= min_shift`` negatives, loss ``y d^2 + (1 - y) max(margin - d, 0)^2``, positives
      and negatives weighted equally.

    Args:
        net: the network (e.g. a narrow ``SyncNet(image_size=64)`` for mini-MEAD).
        lr: Adam learning rate.
        objective: ``"multiway"`` or ``"contrastive"``.
        max_offset: multi-way: largest offset ``K`` (frames) among the candidates (``None``: all
            windows of the clip).
        margin: contrastive margin.
        min_shift: contrastive: smallest audio shift (frames) counted as a negative.
    """

    def __init__(
        self,
        net: SyncNet,
        lr: float = 1e-3,
        objective: str = "multiway",
        max_offset: int | None = 15,
        margin: float = 1.0,
        min_shift: int = 2,
    ) -> None:
        super().__init__()
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        save_hyperparameters_except_objects(self)
        self.net = net

    def _windows(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, int]:
        frames, wave = batch["frames"], batch["waveform"]
        b, t = frames.shape[:2]
        n = MF.num_sync_windows(t, wave.shape[-1])
        if n < 2:
            raise ValueError(f"SyncNetTrainer needs windows of >= 7 frames, got {t}")
        video = MF.syncnet_video_input(frames.flatten(0, 1), self.net.image_size).view(
            b, t, 3, *([self.net.image_size] * 2)
        )
        idx = torch.arange(n, device=video.device)[:, None] + torch.arange(MF.SYNCNET_WINDOW, device=video.device)
        lips = video[:, idx].permute(0, 1, 3, 2, 4, 5).flatten(0, 1)  # (B n, 3, 5, S, S)
        mfcc = torch.stack([MF.syncnet_mfcc(w) for w in wave.cpu()]).to(video.device)  # (B, 13, M)
        aud = mfcc.unfold(2, MF.SYNCNET_MFCC_WINDOW, 4)[:, :, :n].permute(0, 2, 1, 3).flatten(0, 1)
        return lips, aud.unsqueeze(1), n

    def distances(self, batch: dict[str, Tensor]) -> Tensor:
        """``(B, n, n)`` distances between video window ``i`` and audio window ``j`` of each clip."""
        lips, aud, n = self._windows(batch)
        b = batch["frames"].shape[0]
        v_emb, a_emb = self.net(lips, aud)
        return torch.cdist(v_emb.view(b, n, -1), a_emb.view(b, n, -1))

    def loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """The objective's loss and the share of windows whose nearest audio window is the in-sync one."""
        d = self.distances(batch)
        n = d.shape[-1]
        steps = torch.arange(n, device=d.device)
        shift = (steps[:, None] - steps).abs()  # (n, n)
        if self.hparams.objective == "multiway":
            k = self.hparams.max_offset
            logits = -d if k is None else (-d).masked_fill(shift > k, float("-inf"))
            loss = F.cross_entropy(logits.flatten(0, 1), steps.repeat(d.shape[0]))
        else:
            pos, neg = shift == 0, shift >= self.hparams.min_shift
            loss = d[:, pos].pow(2).mean() + F.relu(self.hparams.margin - d[:, neg]).pow(2).mean()
        accuracy = (d.argmin(-1) == steps).float().mean()
        return loss, accuracy

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss, acc = self.loss(batch)
        self.log_dict({"train/loss": loss, "train/sync_acc": acc}, prog_bar=True, batch_size=batch["frames"].shape[0])
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        loss, acc = self.loss(batch)
        self.log_dict({"val/loss": loss, "val/sync_acc": acc}, sync_dist=True, batch_size=batch["frames"].shape[0])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.net.parameters(), lr=self.hparams.lr)
