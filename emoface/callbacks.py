"""Trainer callbacks shared by every emoface system."""

from __future__ import annotations

import random
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelSummary
from lightning.pytorch.cli import SaveConfigCallback


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


class SaveConfigToLoggers(SaveConfigCallback):
    """LightningCLI's ``config.yaml`` beside the logs, and the resolved config in experiment trackers.

    Weights & Biases runs get the whole config (``trainer``, ``model``, ``data`` ...) as their run
    config, so a run can be filtered by the same dotted keys a sweep sets
    (``model.init_args.use_gaze``), and the YAML file itself among the run's files
    (``lightning_config.yaml``, usable as ``--config``). CSV and TensorBoard logs keep the file only.
    """

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        from lightning.pytorch.loggers import WandbLogger

        loggers = [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]
        if not loggers:
            return
        text = self.parser.dump(self.config, skip_unset=False)
        config = yaml.safe_load(text)
        for logger in loggers:
            run = logger.experiment
            run.config.update(config, allow_val_change=True)
            path = Path(run.dir) / "lightning_config.yaml"
            path.write_text(text)
            run.save(str(path), base_path=run.dir, policy="now")


class ProgressLines(Callback):
    """Plain progress lines of fit / validate / test / predict when no terminal is attached.

    Under SLURM, ``nohup``, CI or Jupyter the progress bar shows nothing useful; this callback
    prints, on rank zero, a line every ``every_seconds`` (``$EMOFACE_PROGRESS_SECONDS``, default
    30) such as ``[fit] epoch 3/60, batch 40/120, step 280, 3.1 batches/s, elapsed 0:01:30,
    ETA epoch 0:00:26, ETA total 0:19:10, train/loss=0.1234``, and one when the loop ends. The
    ETAs count from the first batch done (start-up excluded) and include the validation time
    seen so far. ``emoface fit|validate|test|predict`` add it unless the config lists one; on a
    terminal it stays silent (the bar shows progress).

    Args:
        every_seconds: seconds between lines (``None``: ``$EMOFACE_PROGRESS_SECONDS`` or 30).
        always: print even on a terminal.
    """

    def __init__(self, every_seconds: float | None = None, always: bool = False) -> None:
        from emoface.progress import progress_seconds

        self.every_seconds = progress_seconds() if every_seconds is None else float(every_seconds)
        self.always = always
        self._start: dict[str, float] = {}
        self._last = 0.0
        self._batches = 0
        self._rate: Any = None

    def _active(self, trainer: Trainer) -> bool:
        from emoface.progress import is_terminal

        return trainer.is_global_zero and (self.always or not is_terminal())

    def _begin(self, trainer: Trainer, stage: str) -> None:
        import time

        from emoface.progress import RateEstimate

        if self._active(trainer):
            self._start[stage] = self._last = time.perf_counter()
            self._batches = 0
            self._rate = RateEstimate(None)

    def _tick(self, trainer: Trainer, stage: str, batch_idx: int, total: object, final: bool = False) -> None:
        import math
        import time

        from emoface.progress import format_seconds

        if stage not in self._start:
            return
        now = time.perf_counter()
        self._batches += 0 if final else 1
        if not final:
            self._rate.update(self._batches, now)
        if not final and now - self._last < self.every_seconds:
            return
        self._last = now
        elapsed = now - self._start[stage]
        parts = []
        if stage == "fit":
            max_epochs = trainer.max_epochs if trainer.max_epochs not in (None, -1) else "?"
            parts.append(f"epoch {trainer.current_epoch + (0 if final else 1)}/{max_epochs}")
        if not final:
            known = isinstance(total, (int, float)) and math.isfinite(total)
            parts.append(f"batch {batch_idx + 1}/{int(total) if known else '?'}")
        if stage == "fit":
            max_steps = f"/{trainer.max_steps}" if trainer.max_steps and trainer.max_steps > 0 else ""
            parts.append(f"step {trainer.global_step}{max_steps}")
        parts.append(f"{self._batches / elapsed:.2f} batches/s" if elapsed > 0 else "-- batches/s")
        parts.append(f"elapsed {format_seconds(elapsed)}")
        if not final:
            parts += self._etas(trainer, stage, batch_idx, total, now)
        metrics = {k: v for k, v in trainer.progress_bar_metrics.items() if isinstance(v, (int, float))}
        parts += [f"{k}={v:.4g}" for k, v in sorted(metrics.items())]
        text = ", ".join(parts)
        print(f"[{stage}] {text}{' (finished)' if final else ''}", file=sys.stderr, flush=True)
        if final:
            del self._start[stage]

    def _etas(self, trainer: Trainer, stage: str, batch_idx: int, total: object, now: float) -> list[str]:
        """``ETA epoch h:mm:ss`` (or ``ETA`` outside fit) and, in fit, ``ETA total h:mm:ss``."""
        import math

        from emoface.progress import format_seconds

        def eta(batches_left: float) -> float:
            return self._rate.remaining_seconds(self._batches, now, total=self._batches + batches_left)

        known = isinstance(total, (int, float)) and math.isfinite(total)
        left_in_loop = float(total) - (batch_idx + 1) if known else math.nan  # type: ignore[arg-type]
        parts = []
        if math.isfinite(eta(left_in_loop)):
            parts.append(f"ETA {'epoch ' if stage == 'fit' else ''}{format_seconds(eta(left_in_loop))}")
        if stage == "fit":
            bounds = []
            if known and trainer.max_epochs not in (None, -1):
                bounds.append(left_in_loop + (trainer.max_epochs - trainer.current_epoch - 1) * float(total))  # type: ignore[arg-type]
            if trainer.max_steps and trainer.max_steps > 0:
                bounds.append((trainer.max_steps - trainer.global_step) * trainer.accumulate_grad_batches)
            if bounds and math.isfinite(eta(min(bounds))):
                parts.append(f"ETA total {format_seconds(eta(min(bounds)))}")
        return parts

    # fit (the validation inside fit shows in the fit lines' metrics)
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._begin(trainer, "fit")

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: object, batch: object, batch_idx: int
    ) -> None:
        self._tick(trainer, "fit", batch_idx, trainer.num_training_batches)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._tick(trainer, "fit", 0, None, final=True)

    # validate / test / predict as their own verbs
    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.training and not trainer.sanity_checking and trainer.state.fn == "validate":
            self._begin(trainer, "validate")

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: object,
        batch: object,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._tick(trainer, "validate", batch_idx, _nth(trainer.num_val_batches, dataloader_idx))

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._tick(trainer, "validate", 0, None, final=True)

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._begin(trainer, "test")

    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: object,
        batch: object,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._tick(trainer, "test", batch_idx, _nth(trainer.num_test_batches, dataloader_idx))

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._tick(trainer, "test", 0, None, final=True)

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._begin(trainer, "predict")

    def on_predict_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: object,
        batch: object,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._tick(trainer, "predict", batch_idx, _nth(trainer.num_predict_batches, dataloader_idx))

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._tick(trainer, "predict", 0, None, final=True)


def _nth(values: object, index: int) -> object:
    """``values[index]`` of a per-dataloader list, else ``None``."""
    return values[index] if isinstance(values, list) and index < len(values) else None


class FinalCheckpoint(Callback):
    """Write ``<dirpath>/<filename>.ckpt`` when training ends, at whatever step it ends.

    Step-based runs (``max_steps``, validation every ``val_check_interval`` steps) save their
    ``ModelCheckpoint`` after each validation only, so a run that stops between two validations
    (``--trainer.max_steps 600`` with validation every 500) would leave the step-500 weights in
    ``last.ckpt``, and a run shorter than one interval none at all. This callback saves the final
    weights over it, so ``last.ckpt`` is always the end of training.

    Args:
        dirpath: the checkpoint folder (the ``ModelCheckpoint``'s).
        filename: file name without ``.ckpt``.
    """

    def __init__(self, dirpath: str, filename: str = "last") -> None:
        self.path = Path(dirpath) / f"{filename}.ckpt"

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.fast_dev_run:  # as ModelCheckpoint: a smoke run writes no checkpoint
            return
        trainer.save_checkpoint(str(self.path))  # every rank calls it; rank 0 writes


class CheckpointOnSigterm(Callback):
    """On SIGTERM during ``fit``, save a resumable checkpoint where ``--ckpt_path last`` finds it.

    SLURM sends SIGTERM before a job's time limit (and on preemption); Lightning then stops at the
    end of the current batch by raising ``SIGTERMException``, a ``SystemExit`` with status 0 that
    saves nothing. This callback saves the full training state (weights, optimizer, loops
    mid-epoch) as ``last.ckpt`` in the first :class:`~lightning.pytorch.callbacks.ModelCheckpoint`'s
    folder (``<default_root_dir>/checkpoints`` without one), and ``emoface fit`` then exits with
    status 143, so a requeued job resumes with ``emoface fit ... --ckpt_path last``.
    ``emoface fit|validate|test|predict`` add it unless the config lists one.

    Attributes:
        last_saved: the file the latest SIGTERM saved (class-wide, read by the CLI), or ``None``.
    """

    last_saved: Path | None = None

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        from lightning.pytorch.callbacks import ModelCheckpoint
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        if not isinstance(exception, SIGTERMException) or trainer.state.fn != "fit":
            return
        folders = [callback.dirpath for callback in trainer.checkpoint_callbacks
                   if isinstance(callback, ModelCheckpoint) and callback.dirpath]  # fmt: skip
        folder = Path(folders[0]) if folders else Path(trainer.default_root_dir) / "checkpoints"
        path = folder / f"{ModelCheckpoint.CHECKPOINT_NAME_LAST}{ModelCheckpoint.FILE_EXTENSION}"
        trainer.save_checkpoint(str(path))  # every rank calls it; rank 0 writes
        CheckpointOnSigterm.last_saved = path


class Interruption(Callback):
    """Records a Ctrl-C: Lightning turns ``KeyboardInterrupt`` into ``SystemExit(1)`` after its
    graceful shutdown; ``emoface`` reads :attr:`interrupted` and exits with status 130 instead."""

    def __init__(self) -> None:
        self.interrupted = False

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self.interrupted = self.interrupted or isinstance(exception, KeyboardInterrupt)


class PlainModelSummary(ModelSummary):
    """Lightning's model summary as plain text, without ``Total FLOPs: 0``.

    Lightning counts FLOPs only for a model with an ``example_input_array``; emoface's systems have
    none (their batches are dictionaries), so the line would always read 0. Plain text (not rich's
    table) reads the same in a terminal, a log file and a notebook. ``emoface fit`` uses it in
    place of Lightning's default summary; a summary callback listed in a config stays as it is.
    """

    @staticmethod
    def summarize(
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int,
        **summarize_kwargs: object,
    ) -> None:
        import logging

        from lightning.pytorch.utilities.model_summary.model_summary import _format_summary_table

        table = _format_summary_table(
            total_parameters, trainable_parameters, model_size, total_training_modes, total_flops, *summary_data
        )
        if not total_flops:
            table = "\n".join(line for line in table.splitlines() if "total flops" not in line.lower())
        logging.getLogger("lightning.pytorch.callbacks.model_summary").info("\n" + table)
