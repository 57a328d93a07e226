"""The training/validation dataset: rows of (image, mask) paths -> normalized tensors."""
from pathlib import Path
from typing import Dict, Tuple

import albumentations as A
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from carseg.data.images import image_size, read_image, read_mask
from carseg.errors import CarsegError


def read_pairs_csv(path: Path, show: int = 3) -> pd.DataFrame:
    """Load a CSV with ``image,mask`` columns and check that every file exists."""
    path = Path(path)
    if not path.is_file():
        raise CarsegError(f"{path}: CSV not found; run bin/prepare_dataset.py --datapath DIR first")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise CarsegError(f"{path}: not a readable CSV ({exc}); re-run bin/prepare_dataset.py") from exc
    missing_columns = {"image", "mask"} - set(frame.columns)
    if missing_columns or frame.empty:
        raise CarsegError(f"{path}: needs columns image,mask and at least one row; re-run bin/prepare_dataset.py")
    missing = [p for p in pd.concat([frame["image"], frame["mask"]]) if not Path(p).is_file()]
    if missing:
        more = f" and {len(missing) - show} more" if len(missing) > show else ""
        raise CarsegError(f"{path}: points to missing files ({', '.join(missing[:show])}{more}); re-run bin/prepare_dataset.py")
    return frame


CACHED_SUFFIX = ".npy"


def read_pair(image_path: Path, mask_path: Path, decode_hw: Tuple[int, int], soft_masks: bool = False
              ) -> Tuple[np.ndarray, np.ndarray]:
    """A photo (uint8 RGB) and its mask decoded for training at ``decode_hw``: the JPEG at the smallest libjpeg scale
    that covers it, the mask resized to the decoded photo (nearest {0, 1}, or float coverage with ``soft_masks``)."""
    image = read_image(image_path, target_hw=decode_hw, full_hw=image_size(mask_path))
    return image, read_mask(mask_path, out_hw=image.shape[:2], soft=soft_masks)  # at the reduced decode size


class SegmentationDataset(Dataset):
    """Yields ``{"features": 3xHxW float, "targets": 1xHxW float in {0, 1}}`` (in [0, 1] with ``soft_masks``),
    and ``"kind"`` (studio, street, video: the photo's kind, for per-kind metrics) when the rows have a kind column.

    JPEGs are decoded at the smallest libjpeg scale that still covers ``decode_hw`` (the
    training size), which is most of the data-loading speed-up over a full decode. Rows whose files are ``.npy``
    come from ``bin/prepare_dataset.py --cache`` (:mod:`carseg.data.cache`): arrays already decoded and resized to
    fit ``decode_hw``, loaded as they are (the transforms' resize leaves them unchanged).
    """

    def __init__(self, frame: pd.DataFrame, transforms: A.Compose, decode_hw: Tuple[int, int], soft_masks: bool = False):
        self.images = frame["image"].tolist()
        self.masks = frame["mask"].tolist()
        self.kinds = frame["kind"].tolist() if "kind" in frame.columns else None
        self.transforms = transforms
        self.decode_hw = decode_hw
        self.soft_masks = soft_masks

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        image_path, mask_path = Path(self.images[index]), Path(self.masks[index])
        if image_path.suffix == CACHED_SUFFIX:
            image, mask = np.load(image_path), np.load(mask_path)
        else:
            image, mask = read_pair(image_path, mask_path, self.decode_hw, self.soft_masks)
        sample = self.transforms(image=image, mask=mask)
        item = {"features": sample["image"], "targets": sample["mask"].unsqueeze(0).float()}
        if self.kinds is not None:
            item["kind"] = self.kinds[index]
        return item
