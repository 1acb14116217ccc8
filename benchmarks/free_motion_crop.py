"""The face crop on a free-motion mini-MEAD: how often it runs past the frame, how steady the face is.

    python benchmarks/free_motion_crop.py                          # 24 actors, 64 px crops (builds the trees)
    python benchmarks/free_motion_crop.py --root RAW --default-root RAW0   # trees you already have

For every clip it places both crops of preprocessing on the generator's landmarks (the groundtruth
backend's input, so the figures are those of the cache): ``clip`` (one box of 1.6 x the union of
the clip's face extents, today's default) and ``track`` (one side of 1.6 x the median face
extent, the centre following the face smoothed over ``PreprocessOptions.crop_smoothing``), and
reports per crop:

* ``padded clips``: clips with a crop past the frame's edge in any frame (black borders), and the
  mean share of the crop that is border on those frames;
* ``face cut``: frames with a landmark outside the crop;
* ``face px``: mean face extent (the landmarks' larger side) in crop pixels; ``cv in clip``: its
  std / mean over a clip's frames, averaged over clips; ``cv all``: over all frames of all clips;
* ``centre sd``: how much the face moves in the crop (standard deviation over a clip's frames of
  its bounding-box centre, crop pixels, x and y pooled, averaged over clips): the translation
  the crop leaves for a renderer to model.

Rows: the free-motion tree (head drawn at ``FREE_HEAD_SCALE`` of the frame); the same motion with
the head at the default mini-MEAD size in a frame of the crop's size (as the issue-25 probe had it,
computed exactly from the same landmarks); the default (MEAD-like) tree.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np


def clip_landmarks(root: Path) -> tuple[list[np.ndarray], int]:
    """Every clip's sidecar landmarks ``(T, 68, 3)`` (frame pixels) and the tree's frame side."""
    from emoface.io.arrays import load_npz

    size = int(json.loads((root / "mini_mead.json").read_text())["config"]["size"])
    files = sorted(root.glob("*/groundtruth/*/level_*/*.npz"))
    if not files:
        raise FileNotFoundError(f"no ground-truth sidecar under {root} (a mini-MEAD tree?)")
    return [load_npz(f)["landmarks"].astype(np.float64) for f in files], size


def crop_stats(clips: list[np.ndarray], frame: int, size: int, mode: str, fps: int = 25) -> dict[str, float]:
    """Figures of one crop ``mode`` (``clip`` or ``track``) over ``clips`` in ``frame`` x ``frame`` frames."""
    from emoface.preprocessing.features import crop_padding, landmarks_to_crop, stable_crop_box, tracking_crop_boxes
    from emoface.preprocessing.pipeline import PreprocessOptions

    padded_clips, border, cut, within, extents, centre_sd = [], [], [], [], [], []
    for landmarks in clips:
        if mode == "clip":
            box = stable_crop_box(landmarks, size)
            padding = np.repeat(crop_padding(box, (frame, frame)), len(landmarks))
        else:
            box = tracking_crop_boxes(landmarks, size, smoothing=PreprocessOptions().crop_smoothing * fps, frame_size=(frame, frame))
            padding = crop_padding(box, (frame, frame))
        crop = landmarks_to_crop(landmarks, box)[..., :2]
        padded_clips.append(bool((padding > 1e-9).any()))
        border.extend(padding[padding > 1e-9])
        cut.extend(((crop < 0) | (crop >= size)).any((1, 2)))
        extent = (crop.max(1) - crop.min(1)).max(1)  # (T,)
        within.append(extent.std() / extent.mean())
        extents.append(extent)
        centre_sd.append(float(((crop.max(1) + crop.min(1)) / 2).std(0).mean()))
    every = np.concatenate(extents)
    return {
        "padded_clips": float(np.mean(padded_clips)),
        "border_share": float(np.mean(border)) if border else 0.0,
        "face_cut_frames": float(np.mean(cut)),
        "face_px": float(every.mean()),
        "cv_in_clip": float(np.mean(within)),
        "cv_all": float(every.std() / every.mean()),
        "centre_sd": float(np.mean(centre_sd)),
    }


def probe_geometry(clips: list[np.ndarray], frame: int, size: int) -> list[np.ndarray]:
    """The same clips with the head at the default mini-MEAD scale in a ``size`` frame (exact: the
    generator's image is ``scale * (R p + shift) + (S / 2, 0.47 S)`` with ``scale`` proportional to
    the head scale and ``S``)."""
    from emoface.datamodules.mini_mead import FREE_HEAD_SCALE, HEAD_SCALE

    ratio = (HEAD_SCALE * size) / (FREE_HEAD_SCALE * frame)
    old, new = np.array([frame / 2, frame * 0.47, 0.0]), np.array([size / 2, size * 0.47, 0.0])
    return [(c - old) * ratio + new for c in clips]


def table(rows: list[tuple[str, str, dict[str, float]]]) -> str:
    head = f"{'data':<44} {'crop':<6} {'padded clips':>12} {'border':>7} {'face cut':>9} {'face px':>8} {'cv in clip':>10} {'cv all':>7} {'centre sd':>9}"
    lines = [head, "-" * len(head)]
    for data, mode, s in rows:
        lines.append(f"{data:<44} {mode:<6} {s['padded_clips']:>12.1%} {s['border_share']:>7.1%} {s['face_cut_frames']:>9.1%} "
                     f"{s['face_px']:>8.1f} {s['cv_in_clip']:>10.3f} {s['cv_all']:>7.3f} {s['centre_sd']:>9.2f}")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", help="a free-motion mini-MEAD tree (default: build one)")
    parser.add_argument("--default-root", help="a default mini-MEAD tree (default: build one; 'skip': none)")
    parser.add_argument("--work", help="where to build the trees (default: a new temporary folder)")
    parser.add_argument("--speakers", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--size", type=int, default=64, help="crop side (the free-motion frames are drawn larger)")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args(argv)

    from emoface.datamodules.mini_mead import free_motion_frame_size, make_mini_mead

    work = Path(args.work or tempfile.mkdtemp(prefix="emoface-crop-"))
    common = dict(speakers=args.speakers, clips=1, seconds=args.seconds, workers=args.workers, progress=True)
    free_root = Path(args.root) if args.root else work / "free"
    if not (free_root / "mini_mead.json").is_file():
        make_mini_mead(free_root, size=free_motion_frame_size(args.size), free_motion=True, **common)
    clips, frame = clip_landmarks(free_root)
    rows = []
    for mode in ("clip", "track"):
        rows.append((f"free motion ({len(clips)} clips, {frame} px frames)", mode, crop_stats(clips, frame, args.size, mode)))
    probe = probe_geometry(clips, frame, args.size)
    for mode in ("clip", "track"):
        rows.append((f"same, head at default size ({args.size} px frames)", mode, crop_stats(probe, args.size, args.size, mode)))
    if args.default_root != "skip":
        default_root = Path(args.default_root) if args.default_root else work / "default"
        if not (default_root / "mini_mead.json").is_file():
            make_mini_mead(default_root, size=args.size, **common)
        clips, frame = clip_landmarks(default_root)
        for mode in ("clip", "track"):
            rows.append((f"default mini-MEAD ({len(clips)} clips, {frame} px)", mode, crop_stats(clips, frame, args.size, mode)))
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
