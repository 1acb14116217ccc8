"""Renderer speed of both families behind :class:`emoface.rendering.Renderer`: batched inference
against each public code's per-frame loop, at the public sizes (random weights: speed only).

    python benchmarks/renderer_speed.py                        # CPU, both families, batch 1 / 8
    python benchmarks/renderer_speed.py --family live_portrait --batch-sizes 1 4 16
    python benchmarks/renderer_speed.py --device cuda --bf16 --compile --batch-sizes 1 8 32   # GPU

Families (``--family``, default both):

* ``face_vid2vid``: :class:`~emoface.rendering.FaceVid2VidRenderer`, vox-256 sizes, the SPADE
  generator of the released file (``--fv2v-generator plain`` for the other), 256 px in and out.
  Per-frame loop: the public ``demo.py``, which recomputes everything for every frame (source
  keypoints, head estimates, the whole generator with the source encoding), one frame per call.
* ``live_portrait``: :class:`~emoface.rendering.LivePortraitRenderer`, the public sizes (F, M, W,
  G and the stitching MLP), 256 px in, 512 px out. Per-frame loop: the public pipeline's, which
  already encodes the source once, then per frame the motion extractor on the driving frame, the
  keypoint transform, stitching, warping and decoding, one frame per call.

Two tasks per family, ``--frames`` frames from one source: **re-enact** a driving video (motion
read from each driving frame) and **render** from given keypoints (what stage 2 feeds a
renderer: warping and decoding only). Printed per row: seconds per frame, frames/s (median of
``--repeats`` timed runs after one warm-up), the speed-up over the family's per-frame loop, and
peak memory: on CUDA ``torch.cuda.max_memory_allocated``; on a CPU the peak resident memory above
the level before the run (``/proc/self/statm`` sampled every 2 ms), which includes allocator
caching.

LivePortrait reports about 12.8 ms per frame (F+M+W+G) on one RTX 4090 with ``torch.compile``,
a GPU figure; no GPU was used for the figures below.

Measured (2026-12-02, CPU only, 256 px, public sizes, ``--size 256 --frames 2 --loop-frames 1
--batch-sizes 1 2 --repeats 1 --threads 1``, on a 2-core machine shared with four other jobs,
load average 8 at the start and 1.3 at the end: single timings, **noisy**, read the order of
magnitude only; 42 minutes in all):

| family | path | task | batch | s/frame | x loop | peak GiB (RSS) |
|---|---|---|---|---|---|---|
| face_vid2vid (SPADE) | per-frame loop (public demo) | re-enact | 1 | 148.8 | 1.00x | 0.40 |
| face_vid2vid (SPADE) | batched fp32 | re-enact | 1 / 2 | 51.0 / 33.9 | 2.9x / 4.4x | 0.43 / 0.84 |
| face_vid2vid (SPADE) | batched fp32 | render | 1 / 2 | 67.1 / 18.4 | 2.2x / 8.1x | 0.46 / 0.88 |
| live_portrait | per-frame loop (public pipeline) | re-enact | 1 | 48.2 | 1.00x | 0.49 |
| live_portrait | batched fp32 | re-enact | 1 / 2 | 27.0 / 17.9 | 1.8x / 2.7x | 0.48 / 0.86 |
| live_portrait | batched fp32 | render | 1 / 2 | 16.6 / 22.3 | 2.9x / 2.2x | 0.34 / 0.94 |

A second run at 128 px (``--size 128 --frames 4 --loop-frames 2 --batch-sizes 1 4 --repeats 1
--threads 2``, load average 1.3 -> 5.5 -> 0.8 during the run, 25 minutes): face-vid2vid loop 8.9
s/frame, batched re-enact 10.7 / 5.6 s/frame at batch 1 / 4 (0.8x / 1.6x), render 6.0 / 4.8
(1.5x / 1.9x); LivePortrait loop 9.8 s/frame, batched re-enact 17.1 / 9.0 (0.6x / 1.1x), render
9.6 / 7.8 (1.0x / 1.25x); peak RSS 0.05-0.09 GiB at batch 1, 0.40-0.44 GiB at batch 4. The batch-1
rows below 1x are contention noise (one timed run each), not a property of the path.

The face-vid2vid loop recomputes the source's keypoints, estimate and encoding for every frame,
LivePortrait's already encodes the source once, so its batched gain can only come from batching
warping and decoding; on a CPU that gain is small, and the ratios above move with the machine's
load more than with the batch size. The GPU figures (bf16 + ``torch.compile``, frames/s at each
family's native size, against LivePortrait's 12.8 ms) are still to be measured.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable

import torch

from emoface.geometry.keypoints import keypoints_from_estimate
from emoface.networks.face_vid2vid import (
    CanonicalKeypointDetector,
    HeadExpressionEstimator,
    OcclusionAwareGenerator,
    OcclusionAwareSPADEGenerator,
)
from emoface.networks.live_portrait import build_networks, keypoints_from_motion
from emoface.rendering import FaceVid2VidRenderer, LivePortraitRenderer, Renderer

FAMILIES = ("face_vid2vid", "live_portrait")
LIVE_PORTRAIT_REPORTED_MS = 12.8
"""LivePortrait's reported per-frame time (F+M+W+G, RTX 4090, torch.compile)."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", choices=FAMILIES, nargs="+", default=list(FAMILIES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=256, help="input side (both families' native: 256)")
    parser.add_argument("--frames", type=int, default=8, help="frames per timed run")
    parser.add_argument("--loop-frames", type=int, default=2, help="frames per timed run of the per-frame loop")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--fv2v-generator", choices=("spade", "plain"), default="spade")
    parser.add_argument("--bf16", action="store_true", help="also time bf16 autocast")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    return parser.parse_args(argv)


class PeakMemory:
    """Peak memory of a block: CUDA's allocator peak, or on a CPU the peak resident set above the
    level at entry (sampled from ``/proc/self/statm``). ``gib`` after the block; ``None`` when not
    measurable."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.gib: float | None = None
        self._stop = threading.Event()
        self._peak = 0

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self._peak = max(self._peak, self._rss())

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        elif os.path.exists("/proc/self/statm"):
            self._base = self._peak = self._rss()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.gib = (torch.cuda.max_memory_allocated(self.device) - self._base) / 2**30
        elif hasattr(self, "_thread"):
            self._stop.set()
            self._thread.join()
            self.gib = max(0, self._peak - self._base) / 2**30


def timed(run: Callable[[], object], device: torch.device, repeats: int) -> tuple[float, float | None]:
    """Median seconds of ``repeats`` runs after one warm-up run, and the peak memory of one run."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    run()
    sync()
    with PeakMemory(device) as memory:
        run()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        sync()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), memory.gib


# ----------------------------------------------------------------------------------------------
# The public code's per-frame loops
def face_vid2vid_loop(renderer: FaceVid2VidRenderer, source: torch.Tensor, driving: torch.Tensor) -> list[torch.Tensor]:
    """The public face-vid2vid ``demo.py``: everything recomputed for each frame, one frame per call."""
    frames = []
    with torch.inference_mode():
        for k in range(driving.shape[0]):
            kp_canonical = renderer.kp_detector(source)["value"]
            kp_source = keypoints_from_estimate(kp_canonical, renderer.he_estimator(source))
            kp_driving = keypoints_from_estimate(kp_canonical, renderer.he_estimator(driving[k : k + 1]))
            out = renderer.generator(source, kp_driving={"value": kp_driving}, kp_source={"value": kp_source})
            frames.append(out["prediction"])
    return frames


def live_portrait_loop(renderer: LivePortraitRenderer, source: torch.Tensor, driving: torch.Tensor) -> list[torch.Tensor]:
    """The public LivePortrait pipeline: the source once, then motion, keypoints, stitching, warping
    and decoding for each driving frame, one frame per call."""
    frames = []
    with torch.inference_mode():
        feature = renderer.appearance_feature_extractor(source)
        motion_s = renderer.motion_extractor.motion(source)
        kp_source = keypoints_from_motion(motion_s["kp"], motion_s)
        for k in range(driving.shape[0]):
            motion_d = renderer.motion_extractor.motion(driving[k : k + 1])
            kp_driving = keypoints_from_motion(motion_s["kp"], motion_d)
            if renderer.stitching_retargeting_module is not None:
                kp_driving = renderer.stitching_retargeting_module.stitch(kp_source, kp_driving)
            warped = renderer.warping_module(feature, kp_driving, kp_source)
            frames.append(renderer.spade_generator(warped["out"]))
    return frames


def build(family: str, args: argparse.Namespace, device: torch.device, **options: object) -> Renderer:
    """A renderer of the family at the public sizes, random weights (shared across options)."""
    if family not in _NETWORKS:
        torch.manual_seed(0)
        if family == "face_vid2vid":
            generator = OcclusionAwareSPADEGenerator() if args.fv2v_generator == "spade" else OcclusionAwareGenerator()
            _NETWORKS[family] = [CanonicalKeypointDetector(), HeadExpressionEstimator(), generator]
        else:
            nets = build_networks()
            _NETWORKS[family] = [net for _, net in nets.items()]
        for net in _NETWORKS[family]:
            net.to(device).eval()
    nets = _NETWORKS[family]
    if family == "face_vid2vid":
        return FaceVid2VidRenderer(*nets, **options)  # type: ignore[arg-type]
    return LivePortraitRenderer(*nets, input_size=None, **options)  # type: ignore[arg-type]


_NETWORKS: dict[str, list[torch.nn.Module]] = {}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device {device} ({torch.get_num_threads()} CPU threads), {args.size} px input, public sizes, random "
          f"weights; median of {args.repeats} runs; peak memory: {'CUDA allocator' if device.type == 'cuda' else 'RSS above the start'}")  # fmt: skip
    rows = []
    for family in args.family:
        torch.manual_seed(1)
        source = torch.rand(1, 3, args.size, args.size, device=device)
        driving = torch.rand(args.frames, 3, args.size, args.size, device=device)
        base = build(family, args, device)
        loop = face_vid2vid_loop if family == "face_vid2vid" else live_portrait_loop
        head = driving[: args.loop_frames]
        seconds, peak = timed(lambda f=loop, r=base, s=source, d=head: f(r, s, d), device, args.repeats)  # type: ignore[misc]
        loop_spf = seconds / args.loop_frames
        rows.append((family, "per-frame loop (public code)", "re-enact", 1, loop_spf, loop_spf, peak))
        variants = [("fp32", None, False)]
        if args.bf16:
            variants.append(("bf16 autocast", torch.bfloat16, False))
        if args.compile:
            variants.append(("compile", None, True))
            if args.bf16:
                variants.append(("bf16 + compile", torch.bfloat16, True))
        for label, dtype, compiled in variants:
            for batch in args.batch_sizes:
                renderer = build(family, args, device, batch_size=batch, autocast_dtype=dtype, compile=compiled)
                seconds, peak = timed(lambda r=renderer, s=source, d=driving: r.reconstruct(s, d), device, args.repeats)
                rows.append((family, f"batched, {label}", "re-enact", batch, seconds / args.frames, loop_spf, peak))
                state = renderer.prepare_source(source)
                kp = renderer.driving_keypoints(state, **renderer.estimate_driving(driving))
                seconds, peak = timed(lambda r=renderer, s=state, k=kp: r.render(s, k), device, args.repeats)
                rows.append((family, f"batched, {label}", "render", batch, seconds / args.frames, loop_spf, peak))
        _NETWORKS.pop(family).clear()  # free the family's weights before the next

    print("\n| family | path | task | batch | s/frame | frames/s | x loop | peak GiB |")
    print("|---|---|---|---|---|---|---|---|")
    for family, path, task, batch, spf, loop_spf, peak in rows:
        memory = f"{peak:.2f}" if peak is not None else "-"
        print(f"| {family} | {path} | {task} | {batch} | {spf:.3f} | {1 / spf:.2f} | {loop_spf / spf:.2f}x | {memory} |")
    lp = [spf for family, path, task, _, spf, _, _ in rows if family == "live_portrait" and task == "re-enact"]
    if lp:
        best = min(lp) * 1000
        verdict = "reached" if best <= LIVE_PORTRAIT_REPORTED_MS else "not reached"
        print(f"\nLivePortrait re-enact, best: {best:.1f} ms/frame; its reported {LIVE_PORTRAIT_REPORTED_MS} ms/frame "
              f"(RTX 4090, compile): {verdict} on {device}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
