"""Copy-paste composites (PasteCars) and the per-kind validation Dice (KindDiceCallback)."""
import random
from types import SimpleNamespace

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from carseg.data.composite import PasteCars
from carseg.errors import CarsegError
from carseg.training.callbacks import KindDiceCallback

from conftest import red_car_photo


@pytest.fixture
def cars_csv(tmp_path):
    """One 'studio' photo (a red car on blue) and one 'street' row that must never be cut from."""
    image, mask = red_car_photo(320, 480)
    cv2.imwrite(str(tmp_path / "car.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(tmp_path / "car_mask.png"), mask)
    rows = [(str(tmp_path / "car.png"), str(tmp_path / "car_mask.png"), "studio"), ("/missing.png", "/missing.png", "street")]
    pd.DataFrame(rows, columns=["image", "mask", "kind"]).to_csv(tmp_path / "cars.csv", index=False)
    return tmp_path / "cars.csv"


def test_pasted_car_is_labelled_where_it_shows_and_the_frame_keeps_its_own(cars_csv):
    paste = PasteCars(str(cars_csv), width=(0.3, 0.6), occlude=0, motion_blur=0, shadow=0, p=1.0)
    frame = np.full((120, 160, 3), (40, 160, 40), np.uint8)  # a green street with a car of its own at the top left
    own = np.zeros((120, 160), np.float32)
    own[5:25, 5:45] = 1.0
    for seed in range(5):
        random.seed(seed)
        out = paste(image=frame, mask=own)
        image, mask = out["image"], out["mask"]
        assert image.shape == frame.shape and mask.shape == own.shape and mask.dtype == np.float32
        assert (mask[5:25, 5:45] == 1).all()  # the frame's own car stays labelled
        changed = (image != frame).any(axis=2)
        new = mask > 0
        new[5:25, 5:45] = False
        assert new.any() and not (changed & (mask == 0)).any()  # pixels change only where the car was pasted
        solid = (mask > 0.99) & ~np.pad(np.ones((20, 40), bool), ((5, 95), (5, 115)))
        assert (image[solid][:, 0] > image[solid][:, 2]).all()  # the pasted car is red, not the blue studio


def test_no_car_of_the_kind_is_one_clear_line(cars_csv):
    with pytest.raises(CarsegError, match="no rows of kinds \\['video'\\]"):
        PasteCars(str(cars_csv), kinds=["video"])


def test_kind_dice_callback_averages_per_kind():
    callback = KindDiceCallback()
    runner = SimpleNamespace(loader_metrics={})
    target = torch.zeros(3, 1, 4, 4)
    target[:, :, :2] = 1  # 8 car pixels each
    probs = target.clone()
    probs[1, :, 0] = 0     # the second photo misses 4 of 8: Dice 2*4/(4+8)
    probs[2] = 0.9         # the third takes all 16 pixels: Dice 2*8/(16+8)
    callback.on_loader_start(runner)
    runner.batch = {"probs": probs, "targets": target, "kind": ["studio", "street", "street"]}
    callback.on_batch_end(runner)
    runner.batch = {"probs": torch.zeros(1, 1, 4, 4), "targets": torch.zeros(1, 1, 4, 4), "kind": ["video"]}
    callback.on_batch_end(runner)  # no car and none found: 1
    callback.on_loader_end(runner)
    assert runner.loader_metrics == pytest.approx({"dice_studio": 1.0, "dice_street": (8 / 12 + 16 / 24) / 2, "dice_video": 1.0})
