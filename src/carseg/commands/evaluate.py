"""``bin/evaluate.py [MODEL] --images DIR --masks DIR | --pairs CSV``: options in, scores and reports out."""
import argparse
import os
import sys
from pathlib import Path
from typing import List, Optional, Tuple

from carseg.commands.model_options import add_model_options, load_predictor
from carseg.data.dataset import read_pairs_csv
from carseg.data.pairs import pair_by_name
from carseg.errors import CarsegError, printable
from carseg.evaluation.report import summary_lines, write_csv, write_json, write_overlays
from carseg.evaluation.scoring import evaluate
from carseg.inference.backends import model_path
from carseg.inference.options import ALPHA, CutoutOptions
from carseg.inference.subject import SUBJECTS
from carseg.interrupts import exit_cleanly

PROG = "evaluate.py"


def _pairs(images: Path, masks: Path, mask_suffix: str, log) -> List[Tuple[Path, Path]]:
    pairing = pair_by_name(images, masks, mask_suffix)
    for files, where in ((pairing.images_without_mask, f"without a mask NAME{mask_suffix}.* in {masks}"),
                         (pairing.masks_without_image, f"without an image in {images}")):
        if files:
            examples = ", ".join(p.name for p in files[:3]) + (", ..." if len(files) > 3 else "")
            log(f"{PROG}: warning: skipping {len(files)} file(s) {where}: {examples}")
    if not pairing.pairs:
        raise CarsegError(f"{images}: no image has a mask named NAME{mask_suffix}.gif/.png in {masks}; check --mask-suffix")
    return pairing.pairs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Score a traced model on labelled photos: Dice, IoU, accuracy, precision, recall, "
                               "F1 and ROC AUC per image at full resolution, and their means.")
    add_model_options(parser)
    parser.add_argument("--images", type=Path, metavar="DIR", help="folder of photos")
    parser.add_argument("--masks", type=Path, metavar="DIR", help="folder of masks NAME<suffix>.gif/.png")
    parser.add_argument("--pairs", type=Path, metavar="CSV",
                        help="instead of --images/--masks: an image,mask CSV, e.g. bin/prepare_dataset.py's dataset_valid.csv")
    parser.add_argument("--mask-suffix", default="_mask", metavar="SUFFIX", help="mask name = image stem + this (default: _mask)")
    parser.add_argument("--csv", type=Path, metavar="PATH", help="write per-image scores as CSV")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write means and per-image scores as JSON")
    parser.add_argument("--overlays", type=Path, metavar="DIR",
                        help="write PNGs of the worst images by Dice (TP green, FP red, FN blue)")
    parser.add_argument("--num-overlays", type=int, default=8, metavar="N", help="how many worst images to draw (default: 8)")
    parser.add_argument("--alpha", choices=ALPHA, default=CutoutOptions.alpha,
                        help="score what car_segmentation.py --alpha writes: the 0/1 mask (hard, default) or the soft alpha matte")
    parser.add_argument("--subject", choices=SUBJECTS, default=CutoutOptions.subject,
                        help="score the main car's cut-out (default, as car_segmentation.py writes it) or every car's")
    parser.add_argument("--batch-size", type=int, metavar="N",
                        help="images per forward pass (default: 32 on GPU; on CPU 8 at 128x192 down to 1 at 512x768)")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), metavar="N", help="decoding processes")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _check_args(args: argparse.Namespace) -> None:
    if (args.pairs is None) == (args.images is None or args.masks is None) or (args.pairs and (args.images or args.masks)):
        raise CarsegError("give either --images DIR --masks DIR, or --pairs CSV")
    if args.batch_size is not None and args.batch_size < 1:
        raise CarsegError(f"--batch-size {args.batch_size}: must be at least 1")
    for name in ("num_overlays", "workers"):
        if getattr(args, name) < 0:
            raise CarsegError(f"--{name.replace('_', '-')} {getattr(args, name)}: must be 0 or more")


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return exit_cleanly(PROG, lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    log = lambda line: print(printable(line), file=sys.stderr)
    try:
        _check_args(args)
        kinds = None
        if args.pairs is None:
            pairs = _pairs(args.images, args.masks, args.mask_suffix, log)
        else:
            frame = read_pairs_csv(args.pairs)
            pairs = [(Path(i), Path(m)) for i, m in frame[["image", "mask"]].itertuples(index=False)]
            kinds = frame["kind"].astype(str).tolist() if "kind" in frame.columns else None
        predictor = load_predictor(args, announce=not args.quiet)
        result = evaluate(pairs, predictor, args.batch_size or predictor.default_batch_size, args.workers,
                          args.num_overlays if args.overlays else 0, progress=not args.quiet, log=log, alpha=args.alpha,
                          subject=args.subject, kinds=kinds)
        info = {"model": str(model_path(args.model)), "images": str(args.images or args.pairs), "subject": args.subject,
                "masks": str(args.masks or args.pairs), "tta": args.tta, "refine": args.refine, "alpha": args.alpha,
                "threshold": predictor.threshold, "max_size": predictor.max_size, "precision": predictor.precision}
        if args.csv:
            write_csv(result, args.csv)
        if args.json:
            write_json(result, args.json, info)
        if args.overlays:
            write_overlays(result, args.overlays, log)
    except CarsegError as exc:
        log(f"{PROG}: error: {exc}")
        return 1
    if result.failed:
        log(f"{PROG}: {len(result.failed)} of {len(pairs)} pairs failed (see above); scores cover the other {len(result.rows)}")
    print("\n".join(summary_lines(result)))
    return 1 if result.failed else 0
