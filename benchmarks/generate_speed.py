"""Speed of `emoface generate` by stage, at 256x256 with the vox-256 renderer sizes (random weights).

    python benchmarks/generate_speed.py                     # CPU, a 10 s clip
    python benchmarks/generate_speed.py --seconds 2         # shorter run, same per-frame figures
    python benchmarks/generate_speed.py --device cuda --bf16 --batch-size 32   # GPU

The stages are the ones `emoface generate` runs, through the same code (:mod:`emoface.pipeline`):
reading the inputs (audio decode + resample + features, image decode), the photo's landmarks
(dlib's real detector and predictor on scikit-image's astronaut photo, crop, pose and gaze),
stage 1 (SpeechToLandmarks, default sizes, free-running over the whole clip) with relocation,
stage 2 (LandmarksToKeypoints' mapper, default sizes, plus the source encoding it needs), the
renderer (dense motion, warping, decoding in batches), and H.264 + AAC encoding. Weights are
random: speed only. Printed: seconds and share of the total per stage, and frames/s overall.
Goal: the stages other than the renderer cost under 10% of the total.

Measured (2-core CPU, busy with two other training jobs, ``--seconds 2``, 2026-11-30): 50 frames
in 967 s; renderer 98.3% (0.05 frames/s under that load; 0.5 frames/s on the idle machine,
benchmarks/renderer_speed.py), stage 2 1.3% (12.5 s: mapper plus the source encoding), stage 1
0.3%, encoding 0.1%, landmarks and inputs < 0.1%: the stages other than the renderer are 1.7% of
the total (goal < 10%: met). No GPU was lent for these figures.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the speech")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=8, help="frames per renderer call")
    parser.add_argument("--bf16", action="store_true", help="renderer under bf16 autocast (GPU)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    return parser.parse_args(argv)


def build_pipeline(folder: Path, device: str, batch_size: int, bf16: bool):  # noqa: ANN201
    """Default-size stage 1 and stage 2 and a vox-256 renderer, random weights, as a pipeline."""
    from emoface.lightning_modules import LandmarksToKeypoints, SpeechToLandmarks
    from emoface.networks.face_vid2vid import (
        CanonicalKeypointDetector,
        HeadExpressionEstimator,
        OcclusionAwareGenerator,
    )
    from emoface.pipeline import TalkingFacePipeline

    torch.manual_seed(0)
    networks = {"kp_detector": CanonicalKeypointDetector(), "he_estimator": HeadExpressionEstimator(),
                "generator": OcclusionAwareGenerator()}  # fmt: skip
    renderer_file = folder / "vox256_random.pth.tar"
    torch.save({name: net.state_dict() for name, net in networks.items()}, renderer_file)  # the public layout
    l2k = LandmarksToKeypoints(renderer_checkpoint=str(renderer_file))
    l2k.load_renderer()
    return TalkingFacePipeline(
        SpeechToLandmarks(), l2k, s2l_size=256, render_size=256, device=device, batch_size=batch_size,
        autocast_dtype=torch.bfloat16 if bf16 else None,
    )  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, float]:
    """Time each stage once (after a short warm-up of the networks); returns seconds per stage."""
    from PIL import Image
    from skimage import data

    from emoface.datamodules.mini_mead import make_identity, synthesize_speech
    from emoface.io.media import write_audio, write_video
    from emoface.pipeline import FPS, load_image, load_speech
    from emoface.preprocessing.backends import DlibBackend

    if args.threads:
        torch.set_num_threads(args.threads)
    folder = Path(tempfile.mkdtemp(prefix="generate-speed-"))
    wave = synthesize_speech(np.random.default_rng(0), args.seconds, make_identity("M003", 0), "happy", 3, 44100)[0]
    audio_file = write_audio(folder / "speech.m4a", wave, sample_rate=44100)  # resampled by load_speech
    image_file = folder / "face.png"
    Image.fromarray(data.astronaut()).save(image_file)
    pipeline = build_pipeline(folder, args.device, args.batch_size, args.bf16)
    backend = DlibBackend()
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    seconds: dict[str, float] = {}

    def clock(name: str, start: float) -> None:
        sync()
        seconds[name] = time.perf_counter() - start

    # Warm-up: a few frames through every network (allocator, kernels), not timed.
    photo = pipeline.prepare_photo(data.astronaut(), backend)
    short = load_speech(audio_file)
    short.features, short.num_frames = short.features[: 4 * args.batch_size], args.batch_size
    pipeline.frames(photo, pipeline.cues(short, photo, "happy", 3))

    start = time.perf_counter()
    speech = load_speech(audio_file)
    image = load_image(image_file)
    clock("inputs", start)
    start = time.perf_counter()
    photo = pipeline.prepare_photo(image, backend)
    clock("landmarks", start)
    start = time.perf_counter()
    cues = pipeline.cues(speech, photo, "happy", 3, seed=0)
    clock("s2l", start)

    # Stage 2 and the renderer, split: pipeline.frames runs both through LandmarksToKeypoints.animate.
    from emoface.lightning_modules.landmarks_to_keypoints import normalise_points

    renderer = pipeline.renderer
    with torch.inference_mode():
        start = time.perf_counter()
        source = renderer.prepare_source(torch.from_numpy(photo.crop).permute(2, 0, 1))
        points = normalise_points(torch.from_numpy(cues["relocated"]), int(cues["size"])).to(renderer.device)
        source_points = normalise_points(torch.from_numpy(photo.relocated()), pipeline.render_size).to(renderer.device)
        _, keypoints = pipeline.l2k.map_keypoints(
            points[None], source_points[None], source.kp_canonical, source.estimate
        )
        clock("l2k", start)
        start = time.perf_counter()
        frames = torch.cat([renderer.render(source, keypoints[0, i : i + renderer.batch_size])
                            for i in range(0, keypoints.shape[1], renderer.batch_size)])  # fmt: skip
        clock("renderer", start)
    video = (frames.permute(0, 2, 3, 1).float().cpu().numpy() * 255).round().astype(np.uint8)
    start = time.perf_counter()
    write_video(folder / "out.mp4", video, fps=FPS, audio=speech.waveform)
    clock("encoding", start)
    seconds["frames"] = float(speech.num_frames)
    return seconds


def table(seconds: dict[str, float]) -> str:
    frames = int(seconds["frames"])
    stages = {k: v for k, v in seconds.items() if k != "frames"}
    total = sum(stages.values())
    lines = [f"{frames} frames ({frames / 25:.1f} s of speech) at 256x256, total {total:.1f} s = "
             f"{frames / total:.2f} frames/s", "", "| stage | seconds | share | frames/s |", "|---|---|---|---|"]  # fmt: skip
    for name, value in stages.items():
        lines.append(f"| {name} | {value:.2f} | {100 * value / total:.1f}% | {frames / max(value, 1e-9):.1f} |")
    other = total - stages["renderer"]
    verdict = "met" if other < 0.1 * total else "NOT met"
    lines.append(f"\nstages other than the renderer: {100 * other / total:.1f}% of the total (goal < 10%: {verdict})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    print(table(run(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
