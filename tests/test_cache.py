"""bin/prepare_dataset.py --cache: decoded, resized training inputs (carseg.data.cache) and training from them."""
import os

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from carseg.commands.catalyst_dl import main as catalyst_dl_main
from carseg.commands.prepare_dataset import main as prepare
from carseg.data.cache import cache_folder
from carseg.data.images import read_mask
from carseg.errors import CarsegError
from carseg.training.experiment import Experiment

from test_cli import catalyst_dl, overlay

SIZE = (64, 96)  # the tiny dataset's 240x160 photos: JPEG decoded at 1/2 (120x80), then fitted to 96x64


def corrupt_jpeg(path):
    """A JPEG whose header reads (prepare's checks pass) but whose Huffman table is bogus: no decoder takes it."""
    data = bytearray(path.read_bytes())
    table = data.find(b"\xff\xc4")
    data[table + 5:table + 21] = b"\x7f" * 16  # 16 code counts summing past 256
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("soft", [False, True])
def test_cache_holds_what_the_transforms_would_see(call, dataset_copy, soft):
    """Each cached pair is the photo and mask as the uncached path decodes and resizes them, exactly: the validation
    items (no augmentation) of a cached and an uncached Experiment are equal tensors; and the arrays are the originals
    shrunk to fit 64x96 (close to a full decode resized by area; masks agree with the full-size mask resized)."""
    result = call(prepare, "--datapath", dataset_copy, "--cache", *SIZE, *(["--soft-masks"] if soft else []))
    assert result.returncode == 0, result.stderr
    folder = cache_folder(dataset_copy, SIZE, soft)
    assert str(folder) in result.stdout and "18 pairs decoded, 0 up to date" in result.stdout
    csvs = {name: dict(train_csv=str(dataset_copy / "dataset_train.csv"), valid_csv=str(dataset_copy / "dataset_valid.csv"),
                       image_size=list(SIZE), soft_masks=soft, cached=cached) for name, cached in (("plain", False), ("cached", True))}
    plain, cached = (Experiment(**kwargs).get_datasets() for kwargs in csvs.values())
    for mode in ("train", "valid"):
        assert len(cached[mode]) == len(plain[mode]) > 0
        assert all(path.endswith(".npy") and path.startswith(str(folder)) for path in cached[mode].images)
    for index in range(len(plain["valid"])):
        a, b = plain["valid"][index], cached["valid"][index]
        assert torch.equal(a["features"], b["features"]) and torch.equal(a["targets"], b["targets"])
    frame = pd.read_csv(folder / "dataset_valid.csv")
    originals = pd.read_csv(dataset_copy / "dataset_valid.csv")
    for image, mask, source, source_mask in zip(frame["image"], frame["mask"], originals["image"], originals["mask"]):
        photo, target = np.load(image), np.load(mask)
        assert photo.shape == (64, 96, 3) and photo.dtype == np.uint8
        assert target.dtype == (np.float32 if soft else np.uint8) and target.shape == (64, 96)
        full = cv2.cvtColor(cv2.imread(source), cv2.COLOR_BGR2RGB)
        assert np.abs(cv2.resize(full, (96, 64), interpolation=cv2.INTER_AREA).astype(int) - photo).mean() < 3
        coverage = cv2.resize(read_mask(source_mask).astype(np.float32), (96, 64), interpolation=cv2.INTER_AREA)
        if soft:
            assert np.abs(coverage - target).mean() < 0.01  # area 240->120->96 vs 240->96: edge pixels differ
        else:
            assert set(np.unique(target)) <= {0, 1} and np.mean((coverage > 0.5) != target) < 0.02


def test_rerun_skips_up_to_date_entries(call, dataset_copy):
    assert call(prepare, "--datapath", dataset_copy, "--cache", *SIZE).returncode == 0
    folder = cache_folder(dataset_copy, SIZE, False)
    entries = sorted(folder.glob("*/*.npy"))
    assert len(entries) == 36
    files = {path: path.stat().st_ino for path in entries}  # a file written again is a new one (atomic rename)
    again = call(prepare, "--datapath", dataset_copy, "--cache", *SIZE)
    assert again.returncode == 0 and "0 pairs decoded, 18 up to date" in again.stdout
    assert {path: path.stat().st_ino for path in entries} == files
    assert not list(folder.rglob(".*.tmp"))
    photo = sorted((dataset_copy / "train").glob("*.jpg"))[0]
    older = photo.stat().st_mtime_ns - 10**10
    os.utime(photo, ns=(older, older))  # replaced since by another file (here an older one, as cp -p leaves it)
    third = call(prepare, "--datapath", dataset_copy, "--cache", *SIZE)
    assert "1 pairs decoded, 17 up to date" in third.stdout
    assert {path for path in entries if path.stat().st_ino != files[path]} == {
        folder / "images" / f"{photo.stem}.npy", folder / "masks" / f"{photo.stem}.npy"}


def test_corrupt_photo_is_one_line_and_the_rest_is_cached(call, dataset_copy):
    bad = sorted((dataset_copy / "train").glob("*.jpg"))[4]
    corrupt_jpeg(bad)
    result = call(prepare, "--datapath", dataset_copy, "--cache", *SIZE)
    assert result.returncode == 1
    failed = [line for line in result.stderr.splitlines() if line.strip()]
    assert failed == [f"failed: {bad.resolve()}: not a readable image (empty, corrupt or unsupported format); replace or remove it"]
    assert "17 pairs decoded, 0 up to date, 1 failed (left out)" in result.stdout
    folder = cache_folder(dataset_copy, SIZE, False)
    rows = pd.concat([pd.read_csv(folder / name) for name in ("dataset_train.csv", "dataset_valid.csv")])
    assert len(rows) == 17 and bad.stem not in " ".join(rows["image"])
    assert all(np.load(path).shape == (64, 96, 3) for path in rows["image"])


def test_training_from_the_cache(call, dataset_copy, tmp_path):
    """configs/demo.yml with experiment.cached: true trains from the cache's arrays (a loader worker, augmentations
    as in a real run) and, from the same seed, exactly as from the photos; a config whose size has no cache, or a
    CSV of another size's cache, is one line with the command to run."""
    assert call(prepare, "--datapath", dataset_copy, "--cache", *SIZE).returncode == 0
    metrics = {}
    for cached in (False, True):
        logdir = tmp_path / f"logs-{cached}"
        config = overlay(tmp_path, dataset_copy, cached=cached, num_workers=1)
        # a new interpreter each, as users run it: a second run with loader workers in one process can hang in
        # the worker's cv2.setNumThreads after the first run used OpenCV's thread pool (fork)
        result = catalyst_dl("run", "-C", "configs/demo.yml", str(config), "--logdir", str(logdir), "--seed", "3")
        assert result.returncode == 0, result.stderr[-3000:]
        metrics[cached] = pd.read_csv(logdir / "csv_logger" / "valid.csv")[["loss", "dice"]]
    assert len(metrics[True]) == 2 and metrics[True]["dice"].between(0, 1).all()
    pd.testing.assert_frame_equal(metrics[True], metrics[False])  # one seed, one run: the same inputs
    config = overlay(tmp_path, dataset_copy, cached=True, num_workers=1)
    other = call(catalyst_dl_main, "run", "-C", "configs/demo.yml", config, "--set", "experiment.image_size=[32,48]",
                 "--logdir", tmp_path / "other")
    lines = other.stderr.strip().splitlines()
    assert other.returncode == 1 and len(lines) == 1
    assert f"--datapath {dataset_copy} --cache 32 48 first" in lines[0] and "h32-w48" in lines[0]
    folder = cache_folder(dataset_copy, SIZE, False)
    with pytest.raises(CarsegError, match="cached at 64x96 with binary masks, but the experiment trains at 128x192 with soft"):
        Experiment(train_csv=str(folder / "dataset_train.csv"), valid_csv=str(folder / "dataset_valid.csv"),
                   image_size=[128, 192], soft_masks=True).get_datasets()
