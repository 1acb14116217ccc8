"""Training the SyncNet lip-sync expert on MEAD windows (contrastive in-sync vs shifted pairs)."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor

from emoface.metrics import functional as MF
from emoface.networks.syncnet import SyncNet


class SyncNetTrainer(L.LightningModule):
    """Trains :class:`SyncNet` as Chung & Zisserman did: contrastive loss on audio / lip pairs.

    Batches come from :class:`emoface.datamodules.MEADDataModule` with
    ``fields: [frames, waveform]``: ``frames (B, T, 3, H, W)`` uint8 RGB crops and
    ``waveform (B, 640 T)`` at 16 kHz. For every 5-frame window ``i`` and every audio window ``j``
    of the same clip (MFCC exactly as :func:`emoface.metrics.functional.syncnet_mfcc`), the pair
    is positive when ``i == j`` and negative when ``|i - j| >= min_shift``; the loss is
    ``y d^2 + (1 - y) max(margin - d, 0)^2`` on the Euclidean embedding distance ``d``, positives
    and negatives weighted equally.

    Args:
        net: the network (e.g. a narrow ``SyncNet(image_size=64)`` for mini-MEAD).
        lr: Adam learning rate.
        margin: contrastive margin.
        min_shift: smallest audio shift (frames) counted as a negative.
    """

    def __init__(self, net: SyncNet, lr: float = 1e-3, margin: float = 1.0, min_shift: int = 2) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net"])
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
        idx = torch.arange(n, device=video.device)[:, None] + torch.arange(
            MF.SYNCNET_WINDOW, device=video.device
        )
        lips = video[:, idx].permute(0, 1, 3, 2, 4, 5).flatten(0, 1)  # (B n, 3, 5, S, S)
        mfcc = torch.stack([MF.syncnet_mfcc(w) for w in wave.cpu()]).to(video.device)  # (B, 13, M)
        aud = mfcc.unfold(2, MF.SYNCNET_MFCC_WINDOW, 4)[:, :, :n].permute(0, 2, 1, 3).flatten(0, 1)
        return lips, aud.unsqueeze(1), n

    def loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Contrastive loss and the share of frames whose nearest audio window is the in-sync one."""
        lips, aud, n = self._windows(batch)
        b = batch["frames"].shape[0]
        v_emb, a_emb = self.net(lips, aud)
        d = torch.cdist(v_emb.view(b, n, -1), a_emb.view(b, n, -1))  # (B, n, n)
        shift = (torch.arange(n, device=d.device)[:, None] - torch.arange(n, device=d.device)).abs()
        pos, neg = shift == 0, shift >= self.hparams.min_shift
        loss = d[:, pos].pow(2).mean() + F.relu(self.hparams.margin - d[:, neg]).pow(2).mean()
        accuracy = (d.argmin(-1) == torch.arange(n, device=d.device)).float().mean()
        return loss, accuracy

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss, acc = self.loss(batch)
        self.log_dict(
            {"train/loss": loss, "train/sync_acc": acc}, prog_bar=True, batch_size=batch["frames"].shape[0]
        )
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        loss, acc = self.loss(batch)
        self.log_dict(
            {"val/loss": loss, "val/sync_acc": acc}, sync_dist=True, batch_size=batch["frames"].shape[0]
        )

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.net.parameters(), lr=self.hparams.lr)
