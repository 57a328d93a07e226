"""``bin/prepare_dataset.py``: pair Carvana-layout images and masks and write train/valid (and k-fold) CSVs."""
import argparse
import sys
from pathlib import Path
from typing import List, Optional

from carseg.data.prepare import FOLDS_CSV, prepare
from carseg.errors import CarsegError, one_line


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datapath", type=Path, default=Path("./data"), help="folder with train/ and train_masks/")
    parser.add_argument("--valid-size", type=float, default=0.2, help="fraction of cars for validation")
    parser.add_argument("--random-state", type=int, default=42)
    parser.add_argument("--mask-suffix", default="_mask", help="mask name = image name + suffix")
    parser.add_argument("--skip-unmatched", action="store_true", help="warn about unmatched files instead of failing")
    parser.add_argument("--folds", type=int, metavar="K",
                        help=f"also write {FOLDS_CSV} (image,mask,fold) with K >= 2 folds grouped by car id")
    args = parser.parse_args(argv)
    if not 0.0 < args.valid_size < 1.0:
        parser.error("--valid-size must be between 0 and 1")
    if args.folds is not None and args.folds < 2:
        parser.error("--folds must be at least 2")
    try:
        print(prepare(args.datapath, args.valid_size, args.random_state, args.mask_suffix, args.skip_unmatched, args.folds))
    except CarsegError as exc:
        print(f"prepare_dataset.py: error: {one_line(exc)}", file=sys.stderr)
        return 1
    return 0
