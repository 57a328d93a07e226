"""Pair images with masks by name, validate each pair, split by car id and write the CSVs."""
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Tuple

import pandas as pd
from sklearn.model_selection import GroupKFold, GroupShuffleSplit

from carseg.data.images import IMAGE_SUFFIXES, MASK_SUFFIXES, image_size, read_mask
from carseg.errors import CarsegError


@dataclass
class Pairing:
    """Images matched to masks by name, plus what could not be matched."""

    pairs: List[Tuple[Path, Path]] = field(default_factory=list)
    images_without_mask: List[Path] = field(default_factory=list)
    masks_without_image: List[Path] = field(default_factory=list)


def _files(folder: Path, suffixes: Tuple[str, ...]) -> Dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in suffixes}


def pair_by_name(image_dir: Path, mask_dir: Path, mask_suffix: str = "_mask") -> Pairing:
    """Match ``NAME.jpg`` with ``NAME<mask_suffix>.gif|.png|...`` (never by sorted position)."""
    for folder in (image_dir, mask_dir):
        if not folder.is_dir():
            raise CarsegError(f"{folder}: folder not found; run bin/download_dataset.sh (or --synthetic) first")
    images = _files(image_dir, IMAGE_SUFFIXES)
    masks = {}
    for stem, path in _files(mask_dir, MASK_SUFFIXES).items():
        if stem.endswith(mask_suffix):
            masks[stem[: len(stem) - len(mask_suffix)] if mask_suffix else stem] = path
    result = Pairing()
    for name, image in images.items():
        if name in masks:
            result.pairs.append((image, masks[name]))
        else:
            result.images_without_mask.append(image)
    result.masks_without_image = [masks[name] for name in sorted(set(masks) - set(images))]
    return result


def check_same_size(image: Path, image_hw: Tuple[int, ...], mask: Path, mask_hw: Tuple[int, ...]) -> None:
    """Raise CarsegError naming the mask unless image and mask are (height, width)-equal."""
    if tuple(image_hw[:2]) != tuple(mask_hw[:2]):
        raise CarsegError(
            f"{mask}: mask size {mask_hw[1]}x{mask_hw[0]} differs from image {image.name} {image_hw[1]}x{image_hw[0]}; "
            "fix or remove the pair"
        )


def check_pair(image: Path, mask: Path) -> None:
    """Raise CarsegError unless the mask is binary and has the image's size."""
    check_same_size(image, image_size(image), mask, read_mask(mask).shape)


def check_pairs(pairs: List[Tuple[Path, Path]], workers: int = 4) -> None:
    """Check every pair in parallel (decoding releases the GIL); the first bad one raises."""
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(lambda pair: check_pair(*pair), pairs):
            pass


def car_id(image: Path) -> str:
    """Carvana names views ``<carid>_<NN>``; all views of one car share the id."""
    stem = image.stem
    return stem.rsplit("_", 1)[0] if "_" in stem else stem


def _pairs_frame(pairs: List[Tuple[Path, Path]]) -> pd.DataFrame:
    """``image,mask`` columns with absolute paths, one row per pair, in the given order."""
    return pd.DataFrame({"image": [str(i.resolve()) for i, _ in pairs], "mask": [str(m.resolve()) for _, m in pairs]})


def split_by_car(pairs: List[Tuple[Path, Path]], valid_size: float, random_state: int) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """Split so that all views of one car land on the same side (no near-duplicate leakage)."""
    frame = _pairs_frame(pairs)
    groups = [car_id(i) for i, _ in pairs]
    if len(set(groups)) < 2:
        raise CarsegError(f"only {len(set(groups))} car id found in {pairs[0][0].parent}; a grouped split needs at least 2 cars")
    splitter = GroupShuffleSplit(n_splits=1, test_size=valid_size, random_state=random_state)
    train_idx, valid_idx = next(splitter.split(frame, groups=groups))
    return frame.iloc[train_idx].reset_index(drop=True), frame.iloc[valid_idx].reset_index(drop=True)


def split_by_sources(pairs: List[Tuple[Path, Path]], sources_csv: Path) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """The split a data build fixed (``sources.csv``: name, source, kind, split; held-out cars, sequences and street
    photos chosen per kind), with a ``kind`` column so metrics can be reported per kind of photo."""
    sources = pd.read_csv(sources_csv).set_index("name")
    frame = _pairs_frame(pairs)
    names = [image.stem for image, _ in pairs]
    unlisted = [name for name in names if name not in sources.index]
    if unlisted:
        raise CarsegError(f"{sources_csv}: does not list {unlisted[0]} (and {len(unlisted) - 1} more); "
                          "rebuild the folder with bin/download_dataset.sh --real, or delete sources.csv to split by car")
    frame["kind"] = sources.loc[names, "kind"].to_numpy()
    valid = sources.loc[names, "split"].to_numpy() == "valid"
    return frame[~valid].reset_index(drop=True), frame[valid].reset_index(drop=True)


def folds_by_car(pairs: List[Tuple[Path, Path]], folds: int) -> pd.DataFrame:
    """``image,mask,fold`` with ``fold`` in ``0..folds-1`` from sklearn's GroupKFold over car ids: all views
    of a car share a fold, and folds hold about the same number of images (deterministic, no shuffling)."""
    frame = _pairs_frame(pairs)
    groups = [car_id(i) for i, _ in pairs]
    cars = len(set(groups))
    if cars < folds:
        where = pairs[0][0].parent if pairs else "the dataset"
        fix = f"pass --folds {cars} or fewer" if cars >= 2 else "k-fold needs at least 2 cars"
        raise CarsegError(f"{where}: {cars} car ids for {folds} folds; every fold needs at least one car: {fix}")
    frame["fold"] = -1
    for fold, (_, valid_idx) in enumerate(GroupKFold(n_splits=folds).split(frame, groups=groups)):
        frame.loc[valid_idx, "fold"] = fold
    return frame
