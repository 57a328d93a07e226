"""The Experiment: the role Catalyst's old ConfigExperiment played — datasets, transforms, loaders."""
from collections import OrderedDict
from pathlib import Path
from typing import Dict, Optional, Sequence

import albumentations as A
import cv2
import pandas as pd
import torch
from torch.utils.data import DataLoader

from carseg.data.cache import cache_command, cached_csv, check_cached
from carseg.data.dataset import CACHED_SUFFIX, SegmentationDataset, read_pairs_csv
from carseg.data.loader import Loader
from carseg.data.transforms import IMAGENET_MEAN, IMAGENET_STD, ImageSize, as_hw, compose, post_transforms, pre_transforms
from carseg.errors import CarsegError


def _worker_init(_: int) -> None:
    # Each loader worker is its own process: OpenCV's own thread pool would oversubscribe the cores.
    cv2.setNumThreads(1)
    # albumentations >= 2 draws from the pipeline's own generators, seeded from the OS unless told: seeded from the
    # worker's seed (torch's, drawn from the run's seed), the augmentations follow the run's seed like the rest
    worker = torch.utils.data.get_worker_info()
    transforms = getattr(worker.dataset, "transforms", None) if worker is not None else None
    if hasattr(transforms, "set_random_seed"):
        transforms.set_random_seed(worker.seed % 2**32)


class Experiment:
    """Builds datasets and loaders from config values; referenced from YAML as ``experiment``.

    ``train_augmentations`` is a list of albumentations transforms (instantiated from the YAML)
    applied between the pre (resize + pad to ``image_size``) and post (normalize) steps.

    The data comes either from ``train_csv`` + ``valid_csv`` or, for k-fold cross-validation, from
    ``folds_csv`` (``bin/prepare_dataset.py --folds K``: columns image,mask,fold) + ``valid_fold``: the rows
    of that fold validate, all others train. ``folds_csv`` takes precedence over the train/valid pair, so
    ``--set experiment.folds_csv=... experiment.valid_fold=K`` works on any config.

    ``cached``: read the CSVs' copies in the cache ``bin/prepare_dataset.py --cache H W [--soft-masks]`` wrote beside
    them (``DIR/cache/hH-wW[-soft]/``, :mod:`carseg.data.cache`), chosen by ``image_size`` and ``soft_masks``: photos
    and masks already decoded and resized as the transforms would, so an epoch does not decode full-size files.
    """

    def __init__(
        self,
        train_csv: Optional[str] = None,
        valid_csv: Optional[str] = None,
        image_size: ImageSize = (256, 384),
        batch_size: int = 8,
        valid_batch_size: Optional[int] = None,
        num_workers: int = 2,
        train_augmentations: Sequence[A.BasicTransform] = (),
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        folds_csv: Optional[str] = None,
        valid_fold: Optional[int] = None,
        soft_masks: bool = False,
        fit_all: bool = False,
        cached: bool = False,
    ):
        if folds_csv is not None:
            if valid_fold is None:
                raise CarsegError(f"experiment: folds_csv {folds_csv} needs valid_fold (the fold to validate on), e.g. --set experiment.valid_fold=0")
            if isinstance(valid_fold, bool) or not isinstance(valid_fold, int):
                raise CarsegError(f"experiment.valid_fold: {valid_fold!r} is not a fold number; use an integer from the fold column of {folds_csv}")
        elif valid_fold is not None:
            raise CarsegError("experiment.valid_fold is set but experiment.folds_csv is not; add folds_csv (bin/prepare_dataset.py --folds K writes it)")
        elif train_csv is None or valid_csv is None:
            raise CarsegError(
                "experiment: needs train_csv and valid_csv, or folds_csv and valid_fold; run bin/prepare_dataset.py --datapath DIR first"
            )
        self.folds_csv = Path(folds_csv) if folds_csv is not None else None
        self.valid_fold = valid_fold
        self.csv = {"train": Path(train_csv), "valid": Path(valid_csv)} if self.folds_csv is None else {}
        self.image_size = as_hw(image_size)
        self.batch_size = batch_size
        self.valid_batch_size = valid_batch_size or batch_size
        self.num_workers = num_workers
        self.train_augmentations = list(train_augmentations)
        self.mean, self.std = tuple(mean), tuple(std)
        self.soft_masks = soft_masks
        self.fit_all = fit_all
        self.cached = cached

    def get_transforms(self, mode: str) -> A.Compose:
        """Pre + (train only) augmentations + post."""
        augment = self.train_augmentations if mode == "train" else []
        return compose(pre_transforms(self.image_size, self.soft_masks), augment, post_transforms(self.mean, self.std))

    def get_frames(self) -> Dict[str, pd.DataFrame]:
        """``train`` and ``valid`` rows (image, mask paths): from the two CSVs, or split from ``folds_csv``."""
        if self.folds_csv is None:
            return {mode: read_pairs_csv(self.source(path)) for mode, path in self.csv.items()}
        frame = read_pairs_csv(self.source(self.folds_csv))
        if "fold" not in frame.columns or not pd.api.types.is_integer_dtype(frame["fold"]):
            raise CarsegError(f"{self.folds_csv}: needs an integer fold column; re-run bin/prepare_dataset.py --folds K")
        folds = sorted(frame["fold"].unique().tolist())
        if self.valid_fold not in folds:
            raise CarsegError(
                f"{self.folds_csv}: valid_fold={self.valid_fold} is not a fold in it; use one of {', '.join(map(str, folds))}"
            )
        if len(folds) < 2:
            raise CarsegError(f"{self.folds_csv}: only fold {folds[0]} in it, nothing left to train on; re-run bin/prepare_dataset.py --folds K")
        valid = frame["fold"] == self.valid_fold
        return {"train": frame[~valid].reset_index(drop=True), "valid": frame[valid].reset_index(drop=True)}

    def source(self, csv: Path) -> Path:
        """``csv``, or with ``cached`` its copy in the cache for this size and kind of mask (which must exist)."""
        if not self.cached:
            return csv
        copy = cached_csv(csv, self.image_size, self.soft_masks)
        if not copy.is_file():
            raise CarsegError(f"{copy}: no cache for experiment.cached at {self.image_size[0]}x{self.image_size[1]}; run "
                              f"{cache_command(csv.parent, self.image_size, self.soft_masks)} first")
        return copy

    def get_split(self) -> Dict[str, pd.DataFrame]:
        """``get_frames``, with the valid rows also in train when ``fit_all``."""
        frames = self.get_frames()
        if self.fit_all:
            frames["train"] = pd.concat([frames["train"], frames["valid"]], ignore_index=True)
        return frames

    def get_datasets(self) -> "OrderedDict[str, SegmentationDataset]":
        """``train`` and ``valid`` datasets from the CSVs (a cache's rows checked against this size and mask kind)."""
        datasets = OrderedDict()
        for mode, frame in self.get_split().items():
            cached = frame[frame["image"].astype(str).str.endswith(CACHED_SUFFIX)]
            check_cached(cached["image"], cached["mask"], self.image_size, self.soft_masks)
            datasets[mode] = SegmentationDataset(frame, self.get_transforms(mode), self.image_size, self.soft_masks)
        return datasets

    def get_loaders(self) -> "OrderedDict[str, DataLoader]":
        """Shuffled, drop-last train loader and an ordered valid loader."""
        loaders = OrderedDict()
        for mode, dataset in self.get_datasets().items():
            train = mode == "train"
            loaders[mode] = Loader(
                dataset,
                batch_size=self.batch_size if train else self.valid_batch_size,
                shuffle=train,
                drop_last=train and len(dataset) > self.batch_size,
                num_workers=self.num_workers,
                pin_memory=torch.cuda.is_available(),
                persistent_workers=self.num_workers > 0,
                worker_init_fn=_worker_init,
            )
        return loaders
