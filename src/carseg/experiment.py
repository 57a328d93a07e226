"""The Experiment: the role Catalyst's old ConfigExperiment played — datasets, transforms, loaders."""
from collections import OrderedDict
from pathlib import Path
from typing import Optional, Sequence

import albumentations as A
import cv2
import torch
from torch.utils.data import DataLoader

from carseg.data.dataset import SegmentationDataset, read_pairs_csv
from carseg.data.transforms import IMAGENET_MEAN, IMAGENET_STD, ImageSize, as_hw, compose, post_transforms, pre_transforms


def _worker_init(_: int) -> None:
    # Each loader worker is its own process: OpenCV's own thread pool would oversubscribe the cores.
    cv2.setNumThreads(1)


class Experiment:
    """Builds datasets and loaders from config values; referenced from YAML as ``experiment``.

    ``train_augmentations`` is a list of albumentations transforms (instantiated from the YAML)
    applied between the pre (resize + pad to ``image_size``) and post (normalize) steps.
    """

    def __init__(
        self,
        train_csv: str,
        valid_csv: str,
        image_size: ImageSize = (256, 384),
        batch_size: int = 8,
        valid_batch_size: Optional[int] = None,
        num_workers: int = 2,
        train_augmentations: Sequence[A.BasicTransform] = (),
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ):
        self.csv = {"train": Path(train_csv), "valid": Path(valid_csv)}
        self.image_size = as_hw(image_size)
        self.batch_size = batch_size
        self.valid_batch_size = valid_batch_size or batch_size
        self.num_workers = num_workers
        self.train_augmentations = list(train_augmentations)
        self.mean, self.std = tuple(mean), tuple(std)

    def get_transforms(self, mode: str) -> A.Compose:
        """Pre + (train only) augmentations + post."""
        augment = self.train_augmentations if mode == "train" else []
        return compose(pre_transforms(self.image_size), augment, post_transforms(self.mean, self.std))

    def get_datasets(self) -> "OrderedDict[str, SegmentationDataset]":
        """``train`` and ``valid`` datasets from the CSVs."""
        return OrderedDict(
            (mode, SegmentationDataset(read_pairs_csv(path), self.get_transforms(mode), self.image_size))
            for mode, path in self.csv.items()
        )

    def get_loaders(self) -> "OrderedDict[str, DataLoader]":
        """Shuffled, drop-last train loader and an ordered valid loader."""
        loaders = OrderedDict()
        for mode, dataset in self.get_datasets().items():
            train = mode == "train"
            loaders[mode] = DataLoader(
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
