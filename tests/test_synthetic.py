"""Synthetic Carvana-layout generator and bin/download_dataset.sh (offline, small images)."""
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from carseg.commands.download_dataset import main
from carseg.data.synthetic import generate_dataset, render

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bin" / "download_dataset.sh"
SIZE = (240, 160)
PARAMS = dict(num_cars=3, views=3, num_test_cars=1, size=SIZE, seed=0)
NAME = re.compile(r"^[0-9a-f]{12}_\d{2}$")


def _files(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _mask(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("L"))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    counts = generate_dataset(root, **PARAMS)
    assert counts == {"train_images": 9, "test_images": 3, "written": 12, "skipped": 0}
    return root


def test_layout_and_names(dataset):
    for split, count in (("train", 9), ("test", 3)):
        images = sorted(p.stem for p in (dataset / split).iterdir())
        masks = sorted(p.name for p in (dataset / f"{split}_masks").iterdir())
        assert len(images) == count and all(NAME.match(name) for name in images)
        assert masks == sorted(f"{name}_mask.gif" for name in images)
        assert {name[-2:] for name in images} == {"01", "02", "03"}
    train_cars = {p.stem[:12] for p in (dataset / "train").iterdir()}
    test_cars = {p.stem[:12] for p in (dataset / "test").iterdir()}
    assert len(train_cars) == 3 and len(test_cars) == 1 and not train_cars & test_cars
    assert "--num-cars 3" in (dataset / "SYNTHETIC.txt").read_text()
    assert not [p for p in dataset.rglob(".*")], "temporary files left behind"


def test_pairs_have_same_size_and_binary_masks(dataset):
    for image_path in (dataset / "train").glob("*.jpg"):
        with Image.open(image_path) as img:
            assert img.format == "JPEG" and img.mode == "RGB" and img.size == SIZE
        mask = _mask(dataset / "train_masks" / f"{image_path.stem}_mask.gif")
        assert mask.shape == SIZE[::-1]
        assert set(np.unique(mask).tolist()) == {0, 255}


def test_same_seed_same_bytes_other_seed_differs(dataset, tmp_path):
    generate_dataset(tmp_path / "again", **PARAMS)
    assert _files(tmp_path / "again") == _files(dataset)
    generate_dataset(tmp_path / "other", **{**PARAMS, "seed": 1})
    assert not set((tmp_path / "other" / "train").iterdir()) & set((dataset / "train").iterdir())
    assert render(0, "train", 0, 0, 3, SIZE)[0].tobytes() != render(1, "train", 0, 0, 3, SIZE)[0].tobytes()


def test_rerun_keeps_files_and_fills_gaps(dataset, tmp_path):
    root = tmp_path / "copy"
    generate_dataset(root, **PARAMS)
    before = _files(root)
    assert generate_dataset(root, **PARAMS)["written"] == 0
    missing = next((root / "train_masks").iterdir())
    missing.unlink()
    counts = generate_dataset(root, **PARAMS)
    assert (counts["written"], counts["skipped"]) == (1, 11)
    assert _files(root) == before


def test_car_is_centred_and_takes_a_plausible_share(dataset):
    for path in (dataset / "train_masks").iterdir():
        mask = _mask(path) > 0
        cols, rows = np.flatnonzero(mask.any(0)), np.flatnonzero(mask.any(1))
        assert 0.4 <= (cols[-1] - cols[0] + 1) / SIZE[0] <= 0.9
        assert abs((cols[0] + cols[-1]) / 2 / SIZE[0] - 0.5) < 0.1
        assert 0.05 <= mask.mean() <= 0.5 and rows[0] > 0 and rows[-1] < SIZE[1] - 1


def test_views_of_one_car_differ_in_width():
    widths = [np.flatnonzero(render(0, "train", 0, v, 8, SIZE)[1].any(0)).size for v in (0, 2)]
    assert widths[1] < 0.8 * widths[0]


def _best_threshold_dice(gray: np.ndarray, mask: np.ndarray) -> float:
    """Best Dice of ``gray > t`` or ``gray <= t`` against ``mask`` over all thresholds t."""
    hit, hist = np.bincount(gray[mask], minlength=256), np.bincount(gray, minlength=256)
    best = 0.0
    for order in (slice(None), slice(None, None, -1)):
        true_pos, predicted = np.cumsum(hit[order]), np.cumsum(hist[order])
        best = max(best, float((2 * true_pos / (predicted + mask.sum())).max()))
    return best


def test_mask_is_not_a_brightness_threshold():
    pairs = [render(0, "train", car, view, 4, SIZE) for car in range(8) for view in range(4)]
    gray = np.concatenate([cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).ravel() for img, _ in pairs])
    mask = np.concatenate([m.ravel() > 0 for _, m in pairs])
    assert _best_threshold_dice(gray, mask) < 0.6
    per_image = [_best_threshold_dice(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).ravel(), m.ravel() > 0) for img, m in pairs]
    assert np.mean(per_image) < 0.75


def test_cli(tmp_path, capsys):
    assert main(["--data-dir", str(tmp_path), "--num-cars", "1", "--views", "2", "--num-test-cars", "0",
                 "--size", "64x48", "--seed", "3"]) == 0
    assert "2 train + 0 test images" in capsys.readouterr().out
    assert len(list((tmp_path / "train").glob("*.jpg"))) == 2
    with pytest.raises(SystemExit):
        main(["--size", "64"])


def _run_script(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHON": sys.executable, **(env or {})})


def _offline_env(tmp_path: Path, fake_bin: Path | None = None) -> dict:
    """No Kaggle credentials, every HTTP(S) request to a closed local port, optional fake tools first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")}
    proxy = "http://127.0.0.1:9"
    env.update(HOME=str(tmp_path / "home"), http_proxy=proxy, https_proxy=proxy, HTTPS_PROXY=proxy,
               HTTP_PROXY=proxy, ALL_PROXY=proxy, NO_PROXY="", no_proxy="")
    if fake_bin:
        env["PATH"] = f"{fake_bin}{os.pathsep}{env['PATH']}"
    return env


def test_script_synthetic(tmp_path):
    result = _run_script("--data-dir", str(tmp_path / "data"), "--synthetic", "--num-cars", "2", "--views", "2",
                         "--num-test-cars", "1", "--size", "96x64", "--seed", "5")
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "data" / "train").glob("*.jpg"))) == 4
    assert len(list((tmp_path / "data" / "test_masks").glob("*_mask.gif"))) == 2


@pytest.mark.parametrize("precreate", [True, False])
def test_script_offline_fails_cleanly(tmp_path, precreate):
    data = tmp_path / "data"
    if precreate:
        data.mkdir()
    result = subprocess.run(["bash", str(SCRIPT), "--data-dir", str(data)], capture_output=True, text=True,
                            timeout=120, env=_offline_env(tmp_path))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("download_dataset.sh: could not download Carvana (")
    assert "--synthetic" in lines[0]
    assert (list(data.iterdir()) == []) if precreate else not data.exists()


def _fake_downloader(tmp_path: Path, payload: Path) -> Path:
    """``curl`` and ``gdown`` stand-ins that copy ``payload`` to their -o/-O target."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    script = f'#!/bin/sh\nwhile [ $# -gt 0 ]; do case "$1" in -o|-O) cp "{payload}" "$2"; exit 0;; esac; shift; done\nexit 7\n'
    for tool in ("curl", "gdown"):
        (fake_bin / tool).write_text(script)
        (fake_bin / tool).chmod(0o755)
    return fake_bin


def test_script_moves_nested_archive_into_place(tmp_path):
    archive = tmp_path / "segmentation_data.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("segmentation_data/train/abc_01.jpg", b"jpeg")
        zf.writestr("segmentation_data/train_masks/abc_01_mask.gif", b"gif")
    env = _offline_env(tmp_path, _fake_downloader(tmp_path, archive))
    data = tmp_path / "data"
    result = _run_script("--data-dir", str(data), env=env)
    assert result.returncode == 0, result.stderr
    assert sorted(str(p.relative_to(data)) for p in data.rglob("*")) == [
        "train", "train/abc_01.jpg", "train_masks", "train_masks/abc_01_mask.gif"]
    again = _run_script("--data-dir", str(data), env=env)
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_script_rejects_a_non_archive(tmp_path):
    page = tmp_path / "quota.html"
    page.write_text("<html>Google Drive quota exceeded</html>")
    data = tmp_path / "data"
    result = _run_script("--data-dir", str(data), env=_offline_env(tmp_path, _fake_downloader(tmp_path, page)))
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1
    assert "not a valid archive" in result.stderr and not data.exists()
