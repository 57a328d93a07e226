"""Image reading, transforms, dataset and Experiment loaders."""
import albumentations as A
import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from carseg.data.dataset import SegmentationDataset, read_pairs_csv
from carseg.data.images import read_image, read_mask, reduction_factor
from carseg.errors import CarsegError
from carseg.training.experiment import Experiment
from carseg.commands.prepare_dataset import main as prepare


def test_reduction_factor():
    assert reduction_factor((1280, 1918), (256, 384)) == 4
    assert reduction_factor((1280, 1918), (512, 768)) == 2
    assert reduction_factor((1280, 1918), (128, 192)) == 8   # 160x240 still covers 128x192
    assert reduction_factor((1280, 1918), (1280, 1918)) == 1
    assert reduction_factor((1918, 1280), (256, 384)) == 4   # EXIF-rotated: compared long to long


def test_reduced_decode_covers_target(tmp_path):
    path = tmp_path / "a.jpg"
    cv2.imwrite(str(path), np.full((1280, 1918, 3), 128, np.uint8))
    image = read_image(path, target_hw=(256, 384), full_hw=(1280, 1918))
    assert image.shape == (320, 480, 3)


@pytest.mark.parametrize("content", [b"", b"not an image at all"])
def test_unreadable_image(tmp_path, content):
    path = tmp_path / "broken.jpg"
    path.write_bytes(content)
    with pytest.raises(CarsegError, match="broken.jpg"):
        read_image(path)


def test_mask_values(tmp_path):
    path = tmp_path / "m.gif"
    Image.fromarray(np.array([[0, 255], [255, 0]], np.uint8)).save(path)
    assert read_mask(path).tolist() == [[0, 1], [1, 0]]
    Image.fromarray(np.array([[0, 7], [255, 0]], np.uint8)).save(path)
    with pytest.raises(CarsegError, match="not binary"):
        read_mask(path)


def test_csv_with_missing_files(tmp_path):
    csv = tmp_path / "train.csv"
    pd.DataFrame({"image": [f"/nowhere/{i}.jpg" for i in range(5)], "mask": ["/nowhere/m.gif"] * 5}).to_csv(csv, index=False)
    with pytest.raises(CarsegError, match=r"train.csv: points to missing files \(/nowhere/0.jpg, /nowhere/1.jpg, /nowhere/2.jpg and \d+ more\)"):
        read_pairs_csv(csv)
    with pytest.raises(CarsegError, match="prepare_dataset"):
        read_pairs_csv(tmp_path / "absent.csv")


def test_mask_follows_augmentation(tmp_path):
    """After geometric augmentation the mask still covers exactly the (red) car pixels."""
    image = np.zeros((400, 600, 3), np.uint8)
    image[:] = (0, 0, 255)
    mask = np.zeros((400, 600), np.uint8)
    cv2.ellipse(mask, (280, 220), (200, 90), 15, 0, 360, 255, -1)
    image[mask > 0] = (255, 0, 0)
    cv2.imwrite(str(tmp_path / "car_01.jpg"), image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 100])
    Image.fromarray(mask).save(tmp_path / "car_01_mask.gif")
    frame = pd.DataFrame({"image": [str(tmp_path / "car_01.jpg")], "mask": [str(tmp_path / "car_01_mask.gif")]})
    experiment = Experiment("a.csv", "b.csv", image_size=(128, 192), train_augmentations=[
        A.HorizontalFlip(p=1.0), A.Affine(scale=(0.8, 1.2), translate_percent=(-0.1, 0.1), rotate=(-20, 20), p=1.0)])
    dataset = SegmentationDataset(frame, experiment.get_transforms("train"), (128, 192))
    for _ in range(5):
        sample = dataset[0]
        features, target = sample["features"], sample["targets"]
        assert features.shape == (3, 128, 192) and target.shape == (1, 128, 192)
        assert set(torch.unique(target).tolist()) <= {0.0, 1.0}
        red = features[0] > features[2]  # normalized red channel above blue: car pixel
        inner = cv2.erode(target[0].numpy(), np.ones((5, 5), np.uint8)).astype(bool)
        outer = ~cv2.dilate(target[0].numpy(), np.ones((5, 5), np.uint8)).astype(bool)
        assert red.numpy()[inner].mean() > 0.99
        assert red.numpy()[outer & (features[2] > features[0]).numpy()].size > 0
        assert red.numpy()[outer].mean() < 0.01


def test_experiment_loaders(tiny_dataset, tmp_path):
    data = tmp_path / "data"
    import shutil
    shutil.copytree(tiny_dataset, data)
    assert prepare(["--datapath", str(data)]) == 0
    experiment = Experiment(str(data / "dataset_train.csv"), str(data / "dataset_valid.csv"),
                            image_size=[64, 96], batch_size=4, num_workers=0)
    loaders = experiment.get_loaders()
    assert list(loaders) == ["train", "valid"]
    batch = next(iter(loaders["train"]))
    assert batch["features"].shape == (4, 3, 64, 96) and batch["targets"].shape == (4, 1, 64, 96)
    assert batch["features"].dtype == torch.float32


def test_soft_mask_is_the_car_share_of_each_pixel(tmp_path):
    mask = np.zeros((4, 8), np.uint8)
    mask[:, :3] = 255  # 3 of the 4 columns of the first 4x4 block are car
    Image.fromarray(mask).save(tmp_path / "m.png")
    soft = read_mask(tmp_path / "m.png", out_hw=(1, 2), soft=True)
    assert soft.dtype == np.float32 and soft.tolist() == [[0.75, 0.0]]
    assert read_mask(tmp_path / "m.png", out_hw=(1, 2)).tolist() in ([[1, 0]], [[0, 0]])  # nearest: 0 or 1 only


def test_experiment_soft_masks_and_fit_all(dataset_copy):
    prepare(["--datapath", str(dataset_copy)])
    csvs = {"train_csv": str(dataset_copy / "dataset_train.csv"), "valid_csv": str(dataset_copy / "dataset_valid.csv")}
    hard = Experiment(**csvs, image_size=(32, 48), num_workers=0).get_datasets()["valid"][0]["targets"]
    soft = Experiment(**csvs, image_size=(32, 48), num_workers=0, soft_masks=True).get_datasets()["valid"][0]["targets"]
    assert set(hard.unique().tolist()) == {0.0, 1.0}
    fractional = (soft > 0) & (soft < 1)
    assert fractional.any() and (soft.round() == hard).float().mean() > 0.98  # edges soft, the rest as before
    split = Experiment(**csvs, num_workers=0, fit_all=True).get_split()
    plain = Experiment(**csvs, num_workers=0).get_split()
    assert len(split["train"]) == len(plain["train"]) + len(plain["valid"])
    assert split["valid"].equals(plain["valid"])
