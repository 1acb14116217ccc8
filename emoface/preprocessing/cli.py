"""``emoface preprocess``: raw MEAD (or mini-MEAD) -> feature cache with a manifest."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from emoface.emotions import EMOTIONS

BACKEND_NAMES = ("face_alignment", "dlib", "groundtruth")
"""``emoface.preprocessing.backends.BACKENDS``, spelt out so ``--help`` needs no torch import
(the tests check the two agree)."""

HELP = "Extract landmarks, pose, gaze, crops and audio features from a MEAD tree into a cache."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``emoface preprocess``."""
    parser.add_argument("--root", required=True, help="MEAD root: <actor>/video/front/<emotion>/level_<k>/<nnn>.mp4")
    parser.add_argument("--out", required=True, help="cache folder (manifest.csv, cache.json, clips/)")
    parser.add_argument("--backend", choices=("auto", *BACKEND_NAMES), default="auto",
                        help="landmark source: face_alignment (real data, 3D), dlib (real data, 2D lifted to 3D; "
                             "iBUG 300-W weights: no commercial use) or groundtruth (mini-MEAD sidecars); "
                             "auto: face_alignment when its weights are in the torch hub cache, else dlib")
    parser.add_argument("--device", default="auto", help="torch device for face_alignment (auto: GPU when present)")
    parser.add_argument("--workers", type=int, default=0, help="worker processes (0: this process)")
    parser.add_argument("--batch-size", type=int, default=16, help="frames per network forward (face_alignment)")
    parser.add_argument("--actors", nargs="+", default=None, help="only these actors (e.g. M003 W009)")
    parser.add_argument("--emotions", nargs="+", default=None, choices=EMOTIONS, help="only these emotions")
    parser.add_argument("--levels", nargs="+", type=int, default=None, choices=(1, 2, 3), help="only these levels")
    parser.add_argument("--fps", type=int, default=25, help="video frame rate of the cache")
    parser.add_argument("--size", type=int, default=256, help="face crop side in pixels")
    parser.add_argument("--crop-scale", type=float, default=1.6,
                        help="crop side / largest face extent in the clip (--crop track: / median face extent)")
    parser.add_argument("--crop", choices=("auto", "clip", "track"), default="auto",
                        help="clip: one square per clip around all its faces (MEAD's seated actors); track: a square of "
                             "one side per clip whose centre follows the smoothed face, for heads that turn and move; "
                             "auto: track for a free-motion mini-MEAD (emoface mini-mead --free-motion), else clip")
    parser.add_argument("--crop-smoothing", type=float, default=1.0,
                        help="--crop track: seconds (Gaussian sd) over which the crop's centre is smoothed (default: 1.0)")
    parser.add_argument("--min-frames", type=int, default=10, help="shorter clips fail as too short")
    parser.add_argument("--max-gap", type=int, default=12, help="longest face-less run that is interpolated")
    parser.add_argument("--retry-failed", action="store_true", help="redo clips an earlier run recorded as failed")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")


def run(args: argparse.Namespace) -> int:
    """Run the preprocessing; exit code 0 unless no clip is usable (1) or the arguments are wrong (2)."""
    # the arguments are checked before the heavy imports (torch, OpenCV): a typo is answered at once
    if args.size < 16 or args.workers < 0 or args.batch_size < 1:
        print("emoface preprocess: error: --size >= 16, --workers >= 0, --batch-size >= 1", file=sys.stderr)
        return 2
    if not Path(args.root).is_dir():
        print(f"emoface preprocess: error: {args.root}: MEAD root not found (a folder)", file=sys.stderr)
        return 2

    from emoface.preprocessing.backends import DlibWeightsError, FaceAlignmentWeightsError
    from emoface.preprocessing.pipeline import PreprocessOptions, format_summary, preprocess

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    options = PreprocessOptions(
        backend=args.backend,
        fps=args.fps,
        size=args.size,
        crop_scale=args.crop_scale,
        crop=args.crop,
        crop_smoothing=args.crop_smoothing,
        min_frames=args.min_frames,
        max_gap=args.max_gap,
        device=args.device,
        batch_size=args.batch_size,
    )
    try:
        summary = preprocess(
            args.root,
            args.out,
            options,
            workers=args.workers,
            actors=args.actors,
            emotions=args.emotions,
            levels=args.levels,
            retry_failed=args.retry_failed,
            progress=not args.no_progress,
        )
    except (FileNotFoundError, ValueError) as error:
        if isinstance(error, (FaceAlignmentWeightsError, DlibWeightsError)):
            print(f"emoface preprocess: {error}", file=sys.stderr)
            return 1
        print(f"emoface preprocess: error: {error}", file=sys.stderr)
        return 2
    print(format_summary(summary, args.out))
    if summary.exit_code:
        print("emoface preprocess: no usable clip in the cache", file=sys.stderr)
    return summary.exit_code
