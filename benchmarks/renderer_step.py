"""Training-step time of the CPU renderer (``configs/renderer_small.yaml``, batch 8, 64 px).

    python benchmarks/renderer_step.py --cache-dir CACHE            # 2 threads, 60 timed steps
    python benchmarks/renderer_step.py --cache-dir CACHE --profile  # plus torch.profiler's top ops

Trains the config as ``emoface fit`` builds it (LightningCLI, the config's model and data on
``--cache-dir``) for ``--warmup-steps`` pose warm-up steps (the estimator alone, see
``FaceRenderer.pose_warmup_steps``) and then ``--steps`` full steps (keypoint detector, estimator
and generator with every loss of the config), and prints the median wall time of each kind of step
(the first ``--skip`` of each kind are left out: allocator and thread-pool warm-up). Data loading
is inside the timed step, as in training. Issue 25's target: a full step at most about 0.35 s on
two CPU cores.

With ``--profile``, the last ``--profile-steps`` full steps run under ``torch.profiler`` and the
operators with the most CPU time (self time, summed over calls) are printed.

This machine's speed varies from day to day (2x between sessions, other CPU models), so compare step
times measured on one machine the same day. Issue 25 quotes "about 0.35 s per step on 2 quiet
cores" for the renderer of its probe (commit 30382d2: the public 7x7x7 mask conv, default-layout
convolutions, no pose warm-up). To time that renderer beside today's on the same machine, run the
old code and config with ``--warmup-steps -1`` (the old system has no warm-up option)::

    git worktree add /tmp/probe 30382d2
    PYTHONPATH=/tmp/probe python benchmarks/renderer_step.py --cache-dir CACHE \
        --config /tmp/probe/configs/renderer_small.yaml --warmup-steps -1

Measured: see benchmarks/renderer_learning.py (its docstring quotes this script's figures).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "renderer_small.yaml"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", required=True, help="a preprocessed 64 px mini-MEAD cache (renderer_learning.py builds one)")
    parser.add_argument("--config", default=str(CONFIG))
    parser.add_argument("--out", default="runs/renderer_step", help="working directory (logs)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--warmup-steps",
        type=int,
        default=20,
        help="pose warm-up steps (estimator only); -1: the config as it is, for an older system without the "
        "option such as the probe's above (every step is then timed as a full one)",
    )
    parser.add_argument("--steps", type=int, default=60, help="full steps after the warm-up")
    parser.add_argument("--skip", type=int, default=5, help="first steps of each kind left out of the median")
    parser.add_argument("--profile", action="store_true", help="profile the last --profile-steps full steps")
    parser.add_argument("--profile-steps", type=int, default=10)
    return parser.parse_args(argv)


class StepTimer(Callback):
    """Records each training batch's wall time (data loading included) with
    the step it started at."""

    def __init__(self, profile_from: int | None = None) -> None:
        self.times: list[tuple[int, float]] = []
        self.profile_from = profile_from
        self.profiler: torch.profiler.profile | None = None
        self._last = time.perf_counter()

    def on_train_batch_start(self, trainer: Any, *args: Any) -> None:
        if self.profile_from is not None and trainer.global_step == self.profile_from and self.profiler is None:
            self.profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            self.profiler.__enter__()

    def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
        now = time.perf_counter()
        # Measured end to end (previous step's end to this one's): the data loading between them is
        # part of the step a user waits for.
        self.times.append((trainer.global_step - 1, now - self._last))
        self._last = now

    def on_train_end(self, trainer: Any, *args: Any) -> None:
        if self.profiler is not None:
            self.profiler.__exit__(None, None, None)


def cpu_model() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``), or ``platform.processor()`` elsewhere."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    from lightning.pytorch.cli import LightningCLI

    import emoface.datamodules.mead  # noqa: F401  (registers the class_path shorthands)
    import emoface.lightning_modules  # noqa: F401

    warmup_steps = max(args.warmup_steps, 0)
    total = warmup_steps + args.steps
    warmup_override = [] if args.warmup_steps < 0 else ["--model.init_args.pose_warmup_steps", str(warmup_steps)]
    cli = LightningCLI(
        args=[
            "--config", args.config,
            "--data.init_args.cache_dir", args.cache_dir,
            *warmup_override,
            "--trainer.max_steps", str(total),
            "--trainer.val_check_interval", str(total + 1),  # no validation inside the timed steps
            "--trainer.limit_val_batches", "0",
            "--trainer.default_root_dir", args.out,
            "--trainer.logger", "false",
            "--trainer.callbacks", "[]",
            "--trainer.enable_checkpointing", "false",
            "--trainer.enable_progress_bar", "false",
        ],
        run=False, save_config_callback=None, parser_kwargs={"parser_mode": "omegaconf"},
    )  # fmt: skip
    timer = StepTimer(profile_from=total - args.profile_steps if args.profile else None)
    cli.trainer.callbacks.append(timer)
    cli.trainer.fit(cli.model, cli.datamodule)

    warmup = [t for step, t in timer.times if step < warmup_steps][args.skip :]
    full = [t for step, t in timer.times if step >= warmup_steps][args.skip :]
    batch = cli.datamodule.hparams.get("batch_size", "?")
    print(f"config {args.config}, batch {batch}, {args.threads} threads, torch {torch.__version__}, CPU {cpu_model()}")
    for name, times in (("pose warm-up step (estimator only)", warmup), ("full step (all networks, all losses)", full)):
        if times:
            print(f"{name}: median {statistics.median(times):.3f} s over {len(times)} steps "
                  f"(min {min(times):.3f}, max {max(times):.3f})")  # fmt: skip
    if timer.profiler is not None:
        print(timer.profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    return 0


if __name__ == "__main__":
    sys.exit(main())
