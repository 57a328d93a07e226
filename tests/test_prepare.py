"""bin/prepare_dataset.py: pairing by name, checks, grouped split, CSVs, bad inputs."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from carseg.data.pairs import Pairing, car_id, pair_by_name
from carseg.commands.prepare_dataset import main

from conftest import ROOT


def run_prepare(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "bin" / "prepare_dataset.py"), *args],
                          cwd=cwd, capture_output=True, text=True)


def test_pairs_by_name_not_position(tmp_path):
    """Images and masks whose names sort in different orders, one image without a mask and one mask without an
    image: every image gets the mask of its own name, never the next one in sorted order."""
    images, masks = tmp_path / "train", tmp_path / "train_masks"
    images.mkdir()
    masks.mkdir()
    for name in ("b_lonely.jpg", "car.jpg", "car_10.jpg", "car_2.png"):
        (images / name).touch()
    for name in ("a_orphan_mask.gif", "car_10_mask.png", "car_2_mask.gif", "car_mask.gif", "notes.txt"):
        (masks / name).touch()
    assert pair_by_name(images, masks) == Pairing(
        pairs=[(images / "car.jpg", masks / "car_mask.gif"), (images / "car_10.jpg", masks / "car_10_mask.png"),
               (images / "car_2.png", masks / "car_2_mask.gif")],
        images_without_mask=[images / "b_lonely.jpg"], masks_without_image=[masks / "a_orphan_mask.gif"])


def test_writes_grouped_split_with_absolute_paths(dataset_copy, tmp_path):
    result = run_prepare("--datapath", str(dataset_copy), "--valid-size", "0.34")
    assert result.returncode == 0, result.stderr
    assert "18 pairs checked" in result.stdout
    train = pd.read_csv(dataset_copy / "dataset_train.csv")
    valid = pd.read_csv(dataset_copy / "dataset_valid.csv")
    assert list(train.columns) == ["image", "mask"]
    assert len(train) + len(valid) == 18 and len(valid) > 0
    train_cars = {car_id(Path(p)) for p in train["image"]}
    valid_cars = {car_id(Path(p)) for p in valid["image"]}
    assert train_cars.isdisjoint(valid_cars)
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in pd.concat([train["image"], valid["mask"]]))


def test_relative_datapath_from_another_folder(dataset_copy):
    result = run_prepare("--datapath", "data", cwd=dataset_copy.parent)
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(dataset_copy / "dataset_train.csv")
    assert Path(frame["image"][0]).is_absolute()


def expect_error(capsys, argv, *fragments):
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def test_missing_folder(tmp_path, capsys):
    expect_error(capsys, ["--datapath", str(tmp_path / "nope")], "nope/train", "download_dataset.sh")


def test_unmatched_files_fail_and_write_nothing(dataset_copy, capsys):
    lonely_mask = sorted((dataset_copy / "train_masks").iterdir())[0]
    lonely_image = sorted((dataset_copy / "train").iterdir())[-1]
    os.remove(dataset_copy / "train" / lonely_mask.name.replace("_mask.gif", ".jpg"))
    os.remove(dataset_copy / "train_masks" / lonely_image.name.replace(".jpg", "_mask.gif"))
    expect_error(capsys, ["--datapath", str(dataset_copy)], "have no mask", lonely_image.name,
                 "have no image", lonely_mask.name, "--skip-unmatched")
    assert not (dataset_copy / "dataset_train.csv").exists()
    assert main(["--datapath", str(dataset_copy), "--skip-unmatched"]) == 0
    assert "skipped" in capsys.readouterr().err


def test_size_mismatch(dataset_copy, capsys):
    mask = sorted((dataset_copy / "train_masks").iterdir())[2]
    Image.new("L", (100, 50)).save(mask, format="GIF")
    expect_error(capsys, ["--datapath", str(dataset_copy)], mask.name, "100x50", "differs")
    assert not (dataset_copy / "dataset_valid.csv").exists()


def test_non_binary_mask(dataset_copy, capsys):
    mask = sorted((dataset_copy / "train_masks").iterdir())[1]
    gray = np.tile(np.arange(240, dtype=np.uint8), (160, 1))
    Image.fromarray(gray).save(mask, format="GIF")
    expect_error(capsys, ["--datapath", str(dataset_copy)], mask.name, "not binary")


def test_existing_csvs_survive_a_failed_run(dataset_copy, capsys):
    assert main(["--datapath", str(dataset_copy)]) == 0
    before = (dataset_copy / "dataset_train.csv").read_bytes()
    Image.new("L", (10, 10)).save(sorted((dataset_copy / "train_masks").iterdir())[0], format="GIF")
    assert main(["--datapath", str(dataset_copy)]) == 1
    assert (dataset_copy / "dataset_train.csv").read_bytes() == before
