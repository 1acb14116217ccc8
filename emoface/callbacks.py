"""Trainer callbacks shared by every emoface system."""

from __future__ import annotations

import random
import zlib

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer


class SeedEveryStep(Callback):
    """Reseed every random generator from ``(seed, global_step, rank)`` before each training batch.

    Dropout masks, scheduled sampling, augmentation draws ... then depend only on the step, not on
    how many random numbers were drawn before it. This is what makes a run resumed from a
    checkpoint follow the uninterrupted loss curve exactly: Lightning restores weights, optimizer,
    scheduler and loop counters, but not the global RNG streams, and validation or a new
    DataLoader iterator consume random numbers at points that differ between the two runs.
    Ranks get different streams (``rank`` is part of the seed), so DDP replicas still draw
    different dropout masks.

    Args:
        seed: base seed (the config's ``seed_everything`` is a good choice).
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)

    def step_seed(self, global_step: int, rank: int) -> int:
        """The 32-bit seed of a (step, rank) pair."""
        return zlib.crc32(f"{self.seed}/{global_step}/{rank}".encode())

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: object, batch_idx: int) -> None:
        seed = self.step_seed(trainer.global_step, trainer.global_rank)
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)  # seeds CUDA devices too
