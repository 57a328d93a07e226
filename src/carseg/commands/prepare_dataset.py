"""``bin/prepare_dataset.py``: pair Carvana-layout images and masks and write train/valid (and k-fold) CSVs; with
``--cache H W``, also the photos and masks decoded and resized for training at that size (``DIR/cache/``)."""
import argparse
import sys
from pathlib import Path
from typing import List, Optional

from carseg.data.cache import write_cache
from carseg.data.prepare import CSVS, FOLDS_CSV, prepare
from carseg.data.transforms import as_hw
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
    parser.add_argument("--cache", type=int, nargs="+", metavar="SIZE",
                        help="also decode every pair once, resized to fit H W (a config's experiment.image_size, height "
                             "first; one number: square), into DIR/cache/hH-wW/ with CSVs pointing at it; train from it "
                             "with experiment.cached: true. Up-to-date entries are skipped")
    parser.add_argument("--soft-masks", action="store_true",
                        help="with --cache: masks as float coverage, for configs with experiment.soft_masks: true "
                             "(configs/real.yml, general.yml)")
    args = parser.parse_args(argv)
    if args.cache is not None and (len(args.cache) > 2 or min(args.cache) < 1):
        parser.error("--cache takes the training size: H W (or one number for a square), positive")
    if args.soft_masks and args.cache is None:
        parser.error("--soft-masks applies to --cache only")
    if not 0.0 < args.valid_size < 1.0:
        parser.error("--valid-size must be between 0 and 1")
    if args.folds is not None and args.folds < 2:
        parser.error("--folds must be at least 2")
    try:
        print(prepare(args.datapath, args.valid_size, args.random_state, args.mask_suffix, args.skip_unmatched, args.folds),
              flush=True)
        if args.cache is not None:
            image_hw = as_hw(args.cache if len(args.cache) == 2 else args.cache[0])
            csvs = [args.datapath / name for name in (*CSVS, FOLDS_CSV) if (args.datapath / name).is_file()
                    and (name != FOLDS_CSV or args.folds)]
            summary, failed = write_cache(args.datapath, csvs, image_hw, args.soft_masks)
            print(summary)
            if failed:
                return 1
    except CarsegError as exc:
        print(f"prepare_dataset.py: error: {one_line(exc)}", file=sys.stderr)
        return 1
    return 0
