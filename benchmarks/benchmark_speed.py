"""Clips/s of the whole MEAD benchmark on mini-MEAD: one pass feeding every metric against one pass per metric.

The fused run is emoface's ``Benchmark``: each method video is decoded once and feeds every
metric, and the ground-truth side (crops, landmarks, pose, gaze, FID features) comes from its
on-disk cache after the first run. Against it, in the same process on the same data: what
per-metric scripts do, one full pass over the videos per metric group (PSNR, SSIM, LPIPS, FID,
LSE, emotion, LMD, pose, gaze), each decoding every video and recomputing the ground truth's
side (no cache). Evaluators are the reference-sized networks with random weights (pytorch-fid
InceptionV3, LPIPS AlexNet, SyncNet at 224 px, Emotion-FAN ResNet-18 at 224 px): speed does not
depend on the weight values and nothing is downloaded. Landmarks come from ``--landmarks``
(default ``auto``: face_alignment when its weights are cached, else dlib).

    python benchmarks/benchmark_speed.py [--speakers 3] [--seconds 1] [--size 128] [--methods 1] [--clips 8]
                                         [--device cpu] [--work DIR]

Figures: seconds and clips/s (test clips per second, every row of the table scored) of the fused
run with the ground-truth cache cold and warm, of each per-metric pass and of their sum.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metrics_speed import _random_fid_inception  # noqa: E402

from emoface.datamodules.method_videos import BenchmarkDataModule  # noqa: E402
from emoface.lightning_modules.benchmark import METRIC_GROUPS, Benchmark  # noqa: E402


def build_data(
    work: Path, speakers: int, seconds: float, size: int, methods: int, clips: int
) -> tuple[Path, list[dict], Path]:
    """mini-MEAD preprocessed (groundtruth backend), a list of the first ``clips`` of its mead100 set and
    ``methods`` folders of mp4 copies of them (an existing ``work`` folder is reused as it is)."""
    from emoface.datamodules.mini_mead import make_mini_mead
    from emoface.io import write_video
    from emoface.preprocessing.pipeline import PreprocessOptions, preprocess
    from emoface.preprocessing.store import WAVEFORM_SCALE, ClipFileCache

    cache = work / "cache"
    if not (cache / "manifest.csv").is_file():
        raw = make_mini_mead(work / "raw", speakers=speakers, clips=1, seconds=seconds, size=size, seed=0)
        preprocess(raw, cache, PreprocessOptions(backend="groundtruth", size=size), progress=False)
    dm = BenchmarkDataModule(clip_list="mead100", cache_dir=str(cache))
    dm.setup("test")
    entries = dm.test_entries[:clips]
    clip_list = work / f"clips-{clips}.txt"
    clip_list.write_text("".join(f"{e.clip_id}\n" for e in entries))
    specs = []
    for k in range(methods):
        folder = work / f"method{k}"
        for entry in entries:
            clip = ClipFileCache().get(entry.path)
            actor, emotion, level, n = entry.clip_id.split("/")
            wave = np.asarray(clip["waveform"], np.float32) / WAVEFORM_SCALE
            name = f"{actor}_{emotion[:3]}_{level.removeprefix('level_')}_{n}.mp4"
            if not (folder / name).is_file():
                write_video(folder / name, clip.frames(0, entry.num_frames), 25, audio=wave)
        specs.append({"name": f"copy{k}", "folder": str(folder), "pattern": "mead"})
    return cache, specs, clip_list


def run_once(cache: Path, specs: list[dict], clip_list: Path, metrics: list[str], args: argparse.Namespace,
             out: Path, gt_cache: bool, nets: dict[str, torch.nn.Module]) -> tuple[float, int, Benchmark]:  # fmt: skip
    """One benchmark run; returns its seconds, its test-clip count and the system."""
    dm = BenchmarkDataModule(methods=specs, clip_list=str(clip_list), cache_dir=str(cache), num_workers=0)
    system = Benchmark(metrics=metrics, out_dir=str(out), image_size=args.image_size, sync_size=224, fid_frames=5,
                       lpips_random_backbone=True, landmarks=args.landmarks, gt_cache=gt_cache,
                       gt_cache_dir=str(out.parent / "gt-cache"), **nets)  # fmt: skip
    trainer = L.Trainer(accelerator=args.device, devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=out)  # fmt: skip
    start = time.perf_counter()
    trainer.test(system, datamodule=dm, verbose=False)
    if args.device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, len(dm.test_entries), system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speakers", type=int, default=3, help="mini-MEAD actors (the speaker split tests one)")
    parser.add_argument("--seconds", type=float, default=1.0, help="clip length")
    parser.add_argument("--size", type=int, default=128, help="mini-MEAD frame and cache crop side (256 on a GPU)")
    parser.add_argument("--image-size", type=int, default=128, help="aligned crop for image metrics and LMD")
    parser.add_argument("--methods", type=int, default=1, help="method folders (mp4 copies of the ground truth)")
    parser.add_argument("--clips", type=int, default=8, help="the first clips of the mead100 set (8 on 3 actors)")
    parser.add_argument("--landmarks", default="auto", help="cache, dlib, face_alignment or auto")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--work", default=None, help="working folder (default: a temporary one)")
    args = parser.parse_args()
    from emoface.networks.emotion_fan import EmotionFAN
    from emoface.networks.syncnet import SyncNet

    torch.manual_seed(0)
    nets = {"fid_inception": _random_fid_inception(), "syncnet": SyncNet().eval(), "emotion_net": EmotionFAN().eval()}
    work = Path(args.work or tempfile.mkdtemp(prefix="benchmark-speed-"))
    start = time.perf_counter()
    cache, specs, clip_list = build_data(work, args.speakers, args.seconds, args.size, args.methods, args.clips)
    print(f"data: mini-MEAD {args.speakers} actors, {args.seconds:g} s clips at {args.size} px, "
          f"{args.methods} method folder(s) of mp4 copies ({time.perf_counter() - start:.0f} s to build)")  # fmt: skip
    print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} CPU threads")
    all_metrics = list(METRIC_GROUPS)
    gt_dir = work / "gt-cache"
    if gt_dir.is_dir():  # a reused work folder: start cold
        import shutil

        shutil.rmtree(gt_dir)
    figures: list[tuple[str, float]] = []

    def report(title: str, seconds: float) -> None:  # printed as measured, so a cut-short run keeps its figures
        figures.append((title, seconds))
        print(f"[figure] {title}: {seconds:.1f} s, {clips / seconds:.4f} clips/s", flush=True)

    cold, clips, system = run_once(cache, specs, clip_list, all_metrics, args, work / "fused-cold", True, nets)
    rows = len(system.row_names)
    print(f"{clips} test clips (mead100 on this cache), {rows} rows each ({', '.join(system.row_names)}); "
          f"landmarks: {system.landmarks_mode}; n/a: {system.unavailable or 'none'}", flush=True)  # fmt: skip
    report("fused, ground-truth cache cold", cold)
    warm, _, warm_system = run_once(cache, specs, clip_list, all_metrics, args, work / "fused-warm", True, nets)
    assert warm_system.gt_counts["decoded"] == 0, warm_system.gt_counts
    report("fused, ground-truth cache warm", warm)
    total = 0.0
    for group in all_metrics:
        seconds, _, _ = run_once(cache, specs, clip_list, [group], args, work / f"only-{group}", False, nets)
        report(f"  only {group}", seconds)
        total += seconds
    report("one pass per metric (sum)", total)
    print("\n| run | seconds | clips/s | method-clips/s |\n|---|---|---|---|")
    for title, seconds in figures:
        print(f"| {title} | {seconds:.1f} | {clips / seconds:.4f} | {clips * args.methods / seconds:.4f} |")
    print(f"\nfused (warm cache) vs one pass per metric: {total / warm:.2f}x faster; "
          f"cold: {total / cold:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
