"""Speed of the costly metrics: seconds per 10 s clip for LSE-C/D, frames/s for FID features and LPIPS.

Networks are the reference-sized ones (SyncNet at 224 px, pytorch-fid InceptionV3, LPIPS AlexNet)
with random weights: speed does not depend on the weight values, and nothing is downloaded.
Runs on CPU and, when one is available, on the GPU.

    python benchmarks/metrics_speed.py [--seconds 10] [--frames 32] [--devices cpu cuda]
"""

from __future__ import annotations

import argparse
import time
from unittest import mock

import torch

from emoface.metrics import functional as MF
from emoface.metrics.image import build_lpips
from emoface.networks.syncnet import SyncNet


def _random_fid_inception() -> torch.nn.Module:
    """pytorch-fid's InceptionV3([3]) with its own (random) init in place of the downloaded weights."""
    from pytorch_fid import inception

    with (
        mock.patch.object(inception, "load_state_dict_from_url", return_value=None),
        mock.patch.object(torch.nn.Module, "load_state_dict", lambda self, state, *a, **k: None),
    ):
        model = inception.InceptionV3([3])
    return model.eval()


def _timed(fn, sync: bool) -> float:  # type: ignore[no-untyped-def]
    if sync:
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if sync:
        torch.cuda.synchronize()
    return time.perf_counter() - start


@torch.no_grad()
def run(device: str, seconds: float, frames: int) -> dict[str, float]:
    """Benchmark figures on one device."""
    sync = device.startswith("cuda")
    out: dict[str, float] = {}
    t = int(seconds * 25)
    video = torch.randint(0, 256, (1, t, 3, 224, 224), dtype=torch.uint8, device=device)
    audio = torch.randn(1, t * 640, device=device) * 0.1
    net = SyncNet().to(device).eval()
    MF.sync_scores(net, video[:, :12], audio[:, : 12 * 640])  # warm-up
    out["lse_seconds_per_clip"] = _timed(lambda: MF.sync_scores(net, video, audio, batch_size=50), sync)

    frames_in = torch.randint(0, 256, (frames, 3, 256, 256), dtype=torch.uint8, device=device)
    inception = _random_fid_inception().to(device)
    MF.inception_features(inception, frames_in[:2])
    out["fid_frames_per_s"] = frames / _timed(lambda: MF.inception_features(inception, frames_in, 32), sync)

    lpips_model = build_lpips("alex", random_backbone=True).to(device)
    pair = frames_in[None], frames_in.flip(0)[None]
    MF.lpips_per_frame(lpips_model, pair[0][:, :2], pair[1][:, :2])
    out["lpips_frames_per_s"] = frames / _timed(lambda: MF.lpips_per_frame(lpips_model, *pair, 32), sync)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length for LSE-C/D")
    parser.add_argument("--frames", type=int, default=32, help="frames for FID / LPIPS throughput")
    parser.add_argument("--devices", nargs="*", default=None)
    args = parser.parse_args()
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    for device in devices:
        name = torch.cuda.get_device_name() if device.startswith("cuda") else "CPU"
        figures = run(device, args.seconds, args.frames)
        print(f"[{device}: {name}]")
        print(
            f"  LSE-C/D (SyncNet 224 px):   {figures['lse_seconds_per_clip']:.2f} s per {args.seconds:g} s clip"
        )
        print(f"  FID Inception features:     {figures['fid_frames_per_s']:.1f} frames/s (256 px -> 299)")
        print(f"  LPIPS (AlexNet):            {figures['lpips_frames_per_s']:.1f} frames/s (256 px)")


if __name__ == "__main__":
    main()
