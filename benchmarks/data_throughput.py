"""Data throughput: preprocessing frames/s per backend, MEADDataModule windows/s with 0 and 2 workers.

    python benchmarks/data_throughput.py                       # on a fresh small mini-MEAD
    python benchmarks/data_throughput.py --root RAW --cache C  # on your own tree / cache
    python benchmarks/data_throughput.py --face-alignment stand-in   # FAN cost without real weights

The face_alignment backend runs with the weights in the torch hub cache (``--face-alignment real``),
with random stand-ins of the same networks (``stand-in``: same compute, meaningless landmarks), or
not at all (``skip``, the default).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def _preprocess_rate(raw: Path, cache: Path, backend: str, size: int, emotions: list[str] | None) -> tuple[float, int]:
    from emoface.preprocessing.pipeline import PreprocessOptions, preprocess

    start = time.perf_counter()
    summary = preprocess(raw, cache, PreprocessOptions(backend=backend, size=size), emotions=emotions, progress=False)
    seconds = time.perf_counter() - start
    return summary.frames / seconds, summary.frames


def _loader_rate(cache: Path, fields: list[str], workers: int, window: int, batch_size: int, max_batches: int) -> float:
    from emoface.datamodules import MEADDataModule

    data = MEADDataModule(cache_dir=str(cache), window=window, batch_size=batch_size, fields=fields, num_workers=workers)
    data.setup("fit")
    loader = data.train_dataloader()
    iterator = iter(loader)
    next(iterator)  # workers started, first batch (not timed)
    windows, start = 0, time.perf_counter()
    for k, batch in enumerate(iterator):
        windows += len(batch["clip"])
        if k + 1 >= max_batches:
            break
    return windows / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", help="MEAD tree (default: a new mini-MEAD)")
    parser.add_argument("--cache", help="existing cache for the loader benchmark (default: preprocess --root)")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-batches", type=int, default=30)
    parser.add_argument("--face-alignment", choices=("skip", "real", "stand-in"), default="skip")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="emoface-bench-"))
    raw = Path(args.root) if args.root else None
    if raw is None:
        from emoface.datamodules.mini_mead import make_mini_mead

        raw = make_mini_mead(work / "raw", speakers=3, clips=2, seconds=2.0, size=args.size)
    cache = Path(args.cache) if args.cache else work / "cache"
    print(f"data: {raw}  cache: {cache}  cpus: {os.cpu_count()}")

    if not args.cache:
        rate, frames = _preprocess_rate(raw, cache, "groundtruth", args.size, None)
        print(f"preprocess groundtruth      {rate:8.1f} frames/s  ({frames} frames)")
    if args.face_alignment != "skip":
        if args.face_alignment == "stand-in":
            from emoface.preprocessing.backends import make_stand_in_weights

            os.environ["TORCH_HOME"] = str(work / "torch-home")
            make_stand_in_weights(work / "torch-home" / "hub" / "checkpoints")
        rate, frames = _preprocess_rate(raw, work / "cache-fa", "face_alignment", args.size, ["neutral"])
        print(f"preprocess face_alignment   {rate:8.1f} frames/s  ({frames} frames, {args.face_alignment} weights)")

    landmark_fields = ["audio", "landmarks", "normalized_landmarks", "pose", "gaze", "reference"]
    for label, fields in (("landmark fields", landmark_fields), ("+ frames", [*landmark_fields, "frames"])):
        for workers in (0, 2):
            rate = _loader_rate(cache, fields, workers, args.window, args.batch_size, args.max_batches)
            frames_per_s = rate * args.window
            print(f"loader {label:<16} workers={workers}  {rate:8.1f} windows/s  ({frames_per_s:.0f} frames/s)")


if __name__ == "__main__":
    main()
