"""Accuracy of the dlib landmark backend against mini-MEAD's ground truth.

    python benchmarks/landmark_backends.py                        # a fresh mini-MEAD (3 actors, 128 px)
    python benchmarks/landmark_backends.py --size 256 --emotions neutral happy
    python benchmarks/landmark_backends.py --root RAW             # your own mini-MEAD tree

Per frame of every clip, dlib's points (largest face) are compared with the ground-truth sidecar
in source-frame pixels: detection rate, mean 2D point error (all 68, mouth 48-67), the same
divided by the outer-eye-corner distance (NME), depth error of the lifted z, and the head pose
error (yaw, pitch, roll: degrees, the pipeline's own :func:`estimate_pose` on both) for each
lifting method. Frames where dlib finds no face count against the detection rate only.

mini-MEAD's faces are procedural renderings, not photographs: these figures say that the backend
is wired correctly (layout, order, pixel frame, depth units, pose convention), not how accurate
dlib is on real faces.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def clip_pairs(root: Path, actors: list[str] | None = None, emotions: list[str] | None = None) -> list[tuple[Path, Path]]:
    """``(video, groundtruth sidecar)`` of every clip of a mini-MEAD tree (restricted when asked)."""
    pairs = []
    for video in sorted(root.glob("*/video/front/*/level_*/*.mp4")):
        actor, emotion = video.parts[-6], video.parts[-3]
        if (actors and actor not in actors) or (emotions and emotion not in emotions):
            continue
        sidecar = root / actor / "groundtruth" / emotion / video.parts[-2] / (video.stem + ".npz")
        pairs.append((video, sidecar))
    return pairs


def measure(pairs: list[tuple[Path, Path]], backend=None, lifts: tuple[str, ...] = ("orthographic", "similarity"),
            stride: int = 1) -> dict[str, float]:  # fmt: skip
    """Accuracy figures of dlib against the sidecars of ``pairs`` (every ``stride``-th frame)."""
    from emoface.geometry.lifting import lift_landmarks
    from emoface.io import read_video
    from emoface.io.arrays import load_npz
    from emoface.preprocessing.backends import DlibBackend
    from emoface.preprocessing.features import estimate_pose

    backend = backend or DlibBackend()
    predicted, truth, frames_total = [], [], 0
    start = time.perf_counter()
    for video, sidecar in pairs:
        frames = read_video(video).frames[::stride]
        gt = load_npz(sidecar)["landmarks"][::stride][: len(frames)]
        frames = frames[: len(gt)]
        landmarks, found = backend.landmarks_from_chunks([frames])
        frames_total += len(frames)
        predicted.append(landmarks[found])
        truth.append(gt[found])
    seconds = time.perf_counter() - start
    pred, gt = np.concatenate(predicted), np.concatenate(truth)
    found = len(pred)
    result: dict[str, float] = {"clips": len(pairs), "frames": frames_total, "detection_rate": found / max(frames_total, 1),
                                "ms_per_frame": 1000 * seconds / max(frames_total, 1)}  # fmt: skip
    if not found:
        return result
    error = np.linalg.norm(pred[..., :2] - gt[..., :2], axis=-1)  # (N, 68)
    iod = np.linalg.norm(gt[:, 45, :2] - gt[:, 36, :2], axis=-1)  # (N,)
    result.update(
        point_error_px=float(error.mean()),
        mouth_error_px=float(error[:, 48:68].mean()),
        nme_iod=float((error.mean(1) / iod).mean()),
        eye_distance_px=float(iod.mean()),
    )
    gt_pose = estimate_pose(gt)["euler"]
    for lift in lifts:
        lifted = lift_landmarks(pred[..., :2], lift)
        pose_error = np.abs(estimate_pose(lifted)["euler"] - gt_pose)  # (N, 3)
        result[f"{lift}/z_error_px"] = float(np.abs(lifted[..., 2] - gt[..., 2]).mean())
        for k, name in enumerate(("yaw", "pitch", "roll")):
            result[f"{lift}/{name}_error_deg"] = float(pose_error[:, k].mean())
        # The same lifting applied to the ground truth's own x, y: the error of the depth model alone.
        ideal = np.abs(estimate_pose(lift_landmarks(gt[..., :2], lift))["euler"] - gt_pose)
        result[f"{lift}/pose_error_deg_from_true_2d"] = float(ideal.mean())
    return result


def format_result(result: dict[str, float]) -> str:
    return "\n".join(f"{key:40s} {value:10.3f}" if isinstance(value, float) else f"{key:40s} {value:10d}"
                     for key, value in result.items())  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=None, help="a mini-MEAD tree (default: make one)")
    parser.add_argument("--size", type=int, default=128, help="frame size of the mini-MEAD made")
    parser.add_argument("--speakers", type=int, default=3)
    parser.add_argument("--actors", nargs="+", default=None)
    parser.add_argument("--emotions", nargs="+", default=None)
    parser.add_argument("--stride", type=int, default=1, help="every n-th frame")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        root = args.root
        if root is None:
            from emoface.datamodules.mini_mead import make_mini_mead

            root = make_mini_mead(Path(work) / "mini-mead", speakers=args.speakers, clips=1, seconds=1.0,
                                  size=args.size, seed=0)  # fmt: skip
        print(format_result(measure(clip_pairs(Path(root), args.actors, args.emotions), stride=args.stride)))


if __name__ == "__main__":
    main()
