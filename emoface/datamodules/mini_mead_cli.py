"""``emoface mini-mead OUT``: write the embedded MEAD-shaped dataset."""

from __future__ import annotations

import argparse
import sys
import time

HELP = "Write mini-MEAD, procedurally rendered talking faces in the exact MEAD layout."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``emoface mini-mead``."""
    parser.add_argument("out", help="output root; receives <actor>/video/front/..., <actor>/audio/...")
    parser.add_argument("--speakers", type=int, default=6, help="number of actors, 1-32 (default: 6)")
    parser.add_argument("--clips", type=int, default=2, help="clips per emotion and level (default: 2)")
    parser.add_argument("--seconds", type=float, default=2.0, help="clip length in seconds (default: 2.0)")
    parser.add_argument("--size", type=int, default=256, help="frame side in pixels (default: 256)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same data (default: 0)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    parser.add_argument("--free-motion", action="store_true",
                        help="free head motion like VoxCeleb video (yaw +-30 deg, pitch +-20, roll +-15, translation "
                             "up to a tenth of the face, size +-10%%; the head is drawn smaller in the frame); "
                             "`emoface preprocess` then crops it with a crop that follows the face (--crop auto)")


def run(args: argparse.Namespace) -> int:
    """Generate the tree and print a summary."""
    problem = _argument_problem(args)
    if problem:  # before importing torch: a typo is answered at once
        print(f"emoface mini-mead: error: {problem}", file=sys.stderr)
        return 2
    from emoface.datamodules.mini_mead import make_mini_mead

    start = time.perf_counter()
    try:
        root = make_mini_mead(
            args.out, speakers=args.speakers, clips=args.clips, seconds=args.seconds, size=args.size,
            seed=args.seed, workers=args.workers, progress=True, free_motion=args.free_motion,
        )  # fmt: skip
    except ValueError as error:
        print(f"emoface mini-mead: error: {error}", file=sys.stderr)
        return 2
    count = len(list(root.glob("*/video/front/*/level_*/*.mp4")))
    print(f"wrote {count} clips to {root} in {time.perf_counter() - start:.1f} s")
    return 0


def _argument_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the options (the limits :func:`~emoface.datamodules.mini_mead.make_mini_mead`
    enforces too), or ``None``."""
    if not 1 <= args.speakers <= 32:
        return f"--speakers must be between 1 and 32, got {args.speakers}"
    if args.clips < 1 or not args.seconds > 0:
        return f"--clips must be >= 1 and --seconds > 0, got --clips {args.clips} --seconds {args.seconds}"
    if args.size < 32 or args.size % 2:
        return f"--size must be an even number of pixels >= 32, got {args.size}"
    if args.workers is not None and args.workers < 0:
        return f"--workers must be >= 0 (0: all cores), got {args.workers}"
    return None
