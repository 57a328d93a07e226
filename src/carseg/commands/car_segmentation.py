"""``bin/car_segmentation.py IN OUT [MODEL]``: options in, one line per failed photo and a summary out."""
import argparse
import os
import sys
from pathlib import Path
from typing import List, Optional, Tuple

from carseg.commands.model_options import add_model_options, load_predictor
from carseg.errors import CarsegError, printable
from carseg.inference.background_removal import SUMMARY_CSV, check_writable, plan_jobs, remove_backgrounds
from carseg.inference.options import add_arguments, check_format, cutout_options
from carseg.interrupts import exit_cleanly

PROG = "car_segmentation.py"


def parse_shard(text: str) -> Tuple[int, int]:
    """``"I/N"`` -> (I, N) with 0 <= I < N."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise CarsegError(f"--shard {text}: expected I/N, e.g. 0/4") from None
    if not 0 <= index < count:
        raise CarsegError(f"--shard {text}: need 0 <= I < N")
    return index, count


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Cut cars out of every photo in IN and write them to OUT (RGBA PNG by default).")
    parser.add_argument("input", type=Path, metavar="IN", help="folder of photos")
    parser.add_argument("output", type=Path, metavar="OUT", help="folder for the cut-outs (created if needed)")
    add_model_options(parser)
    add_arguments(parser)  # the cut-out options and --format
    parser.add_argument("--review-below", type=float, default=0.5, metavar="C",
                        help="count the photos whose confidence (OUT/summary.csv) is under C (default %(default)s)")
    parser.add_argument("--max-megapixels", type=float, default=150.0, metavar="MP",
                        help="refuse photos over MP megapixels from their header, before decoding (default %(default)s)")
    parser.add_argument("--save-mask", action="store_true", help="also write OUT/NAME_mask.png")
    parser.add_argument("--batch-size", type=int, metavar="N",
                        help="photos per forward pass (default: 8 on GPU; on CPU 8 at 128x192 down to 1 at 512x768)")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), metavar="N",
                        help="decoding processes (0: decode in this process; default %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="redo photos whose output already exists")
    parser.add_argument("--recursive", action="store_true", help="include subfolders (mirrored in OUT)")
    parser.add_argument("--shard", default="0/1", metavar="I/N", help="process only shard I of N (0-based), for job arrays")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return exit_cleanly(PROG, lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    log = lambda line: print(printable(line), file=sys.stderr)
    try:
        if args.batch_size is not None and args.batch_size < 1:
            raise CarsegError(f"--batch-size {args.batch_size}: must be at least 1")
        if args.workers < 0:
            raise CarsegError(f"--workers {args.workers}: must be 0 or more")
        options = cutout_options(vars(args))
        if args.max_megapixels <= 0:
            raise CarsegError(f"--max-megapixels {args.max_megapixels}: must be positive")
        if not 0 <= args.review_below <= 1:
            raise CarsegError(f"--review-below {args.review_below}: must be in [0, 1]")
        check_format(args.format, options.background)
        jobs, ignored = plan_jobs(args.input, args.output, args.format, args.save_mask, args.recursive, parse_shard(args.shard))
        check_writable(args.output)
        predictor = load_predictor(args, announce=not args.quiet)
        summary = remove_backgrounds(jobs, predictor, options, args.format,
                                     args.batch_size or predictor.default_batch_size, args.workers,
                                     args.overwrite, progress=not args.quiet, log=log,
                                     summary_csv=args.output / SUMMARY_CSV, review_below=args.review_below,
                                     max_megapixels=args.max_megapixels)
    except CarsegError as exc:
        log(f"{PROG}: error: {exc}")
        return 1
    summary.ignored = ignored
    print(summary)
    return 1 if summary.failed else 0
