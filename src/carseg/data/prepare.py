"""Pair Carvana-layout images and masks, check every pair, split by car and write the train/valid (and k-fold) CSVs."""
import sys
from pathlib import Path
from typing import List, Optional

import pandas as pd

from carseg.atomic import atomic_path
from carseg.data.pairs import car_id, check_pairs, folds_by_car, pair_by_name, split_by_car, split_by_sources
from carseg.data.sources import SOURCES_CSV
from carseg.errors import CarsegError

FOLDS_CSV = "dataset_folds.csv"
CSVS = ("dataset_train.csv", "dataset_valid.csv")


def _names(paths: List[Path], limit: int = 3) -> str:
    shown = ", ".join(p.name for p in paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def write_csv_atomic(frame: pd.DataFrame, path: Path) -> None:
    """``frame.to_csv(path)`` without the index, atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def _cars(frame: pd.DataFrame) -> int:
    return frame["image"].map(lambda p: car_id(Path(p))).nunique()


def prepare(
    datapath: Path, valid_size: float, random_state: int, mask_suffix: str, skip_unmatched: bool, folds: Optional[int] = None
) -> str:
    """Pair, check, split and write ``dataset_{train,valid}.csv`` (and with ``folds``, ``dataset_folds.csv``
    with an ``image,mask,fold`` row per pair); return a summary. A folder built by ``download_dataset.sh --real``
    has ``sources.csv``: its fixed split (and each photo's kind) is used instead of a random split by car."""
    image_dir, mask_dir = datapath / "train", datapath / "train_masks"
    pairing = pair_by_name(image_dir, mask_dir, mask_suffix)
    unmatched = []
    if pairing.images_without_mask:
        unmatched.append(f"{len(pairing.images_without_mask)} images in {image_dir} have no mask ({_names(pairing.images_without_mask)})")
    if pairing.masks_without_image:
        unmatched.append(f"{len(pairing.masks_without_image)} masks in {mask_dir} have no image ({_names(pairing.masks_without_image)})")
    if unmatched and not skip_unmatched:
        raise CarsegError("; ".join(unmatched) + "; add the missing files or pass --skip-unmatched")
    for line in unmatched:
        print(f"warning: skipped {line}", file=sys.stderr)
    if not pairing.pairs:
        raise CarsegError(f"{image_dir}: no image/mask pairs found (expected NAME.jpg with {mask_dir.name}/NAME{mask_suffix}.gif)")
    check_pairs(pairing.pairs)
    sources_csv = datapath / SOURCES_CSV
    if sources_csv.is_file():
        train, valid = split_by_sources(pairing.pairs, sources_csv)
    else:
        train, valid = split_by_car(pairing.pairs, valid_size, random_state)
    folded = folds_by_car(pairing.pairs, folds) if folds else None  # fails (too few cars) before anything is written
    write_csv_atomic(train, datapath / "dataset_train.csv")
    write_csv_atomic(valid, datapath / "dataset_valid.csv")
    summary = (
        f"{len(pairing.pairs)} pairs checked; train: {len(train)} images of {_cars(train)} cars -> {datapath / 'dataset_train.csv'}; "
        f"valid: {len(valid)} images of {_cars(valid)} cars -> {datapath / 'dataset_valid.csv'}"
    )
    if "kind" in train.columns:
        for name, part in (("train", train), ("valid", valid)):
            summary += f"\n  {name} (split fixed by {sources_csv.name}): " + ", ".join(
                f"{count} {kind}" for kind, count in part["kind"].value_counts().sort_index().items())
    if folded is not None:
        write_csv_atomic(folded, datapath / FOLDS_CSV)
        summary += f"\n{folds} folds grouped by car id -> {datapath / FOLDS_CSV}"
        for fold, part in folded.groupby("fold"):
            summary += f"\n  fold {fold}: {len(part)} images of {_cars(part)} cars"
    return summary
