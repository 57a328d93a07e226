"""The built-in model: the default of the Predictor and both commands; clear lines when it is missing,
damaged, or a traced file comes from another carseg version."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from carseg.inference import backends as backends_module
from carseg.data.images import read_mask
from carseg.data.synthetic import generate_dataset
from carseg.errors import CarsegError
from carseg.metadata import FORMAT, METADATA_FILE, ModelMetadata
from carseg.inference.backends import BUILTIN_MODEL
from carseg.inference.predictor import Predictor

from conftest import ROOT, RedOracle, red_car_photo, save_traced


@pytest.fixture(scope="module")
def generated_photos(tmp_path_factory):
    """Two generated 1918x1280 car photos (Carvana's size) and their true masks."""
    data = tmp_path_factory.mktemp("builtin") / "data"
    generate_dataset(data, num_cars=2, views=1, num_test_cars=0, size=(1918, 1280), seed=3)
    return sorted((data / "train").glob("*.jpg")), data / "train_masks"


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def test_builtin_model_is_small_and_current():
    assert BUILTIN_MODEL.is_file() and BUILTIN_MODEL.stat().st_size <= 25 * 2**20
    predictor = Predictor(device="cpu")  # no path: the built-in model
    assert predictor.metadata.format == FORMAT and predictor.metadata.image_size == (256, 384)


def test_car_segmentation_without_model_cuts_out_generated_cars(generated_photos, tmp_path):
    photos, masks = generated_photos
    folder = tmp_path / "in"
    folder.mkdir()
    for photo in photos:
        shutil.copy(photo, folder / photo.name)
    result = subprocess.run([sys.executable, str(ROOT / "bin" / "car_segmentation.py"), str(folder), str(tmp_path / "out"),
                             "--quiet", "--device", "cpu"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"done {len(photos)}," in result.stdout
    for photo in photos:
        rgba = np.asarray(Image.open(tmp_path / "out" / f"{photo.stem}.png"))
        assert rgba.shape == (1280, 1918, 4)
        # generated cars are not studio photos (painted distractors, odd colours): the built-in model
        # scores Dice 0.81 and 0.87 on these two
        assert dice(rgba[..., 3], read_mask(masks / f"{photo.stem}_mask.gif")) > 0.75
        assert not rgba[:50, :50, 3].any() and not rgba[-50:, -50:, 3].any()  # the studio corners are cut away


def test_missing_or_damaged_builtin_model_says_how_to_restore(monkeypatch, tmp_path):
    monkeypatch.setattr(backends_module, "BUILTIN_MODEL", tmp_path / "src" / "carseg" / "builtin_model" / "model.pth")
    with pytest.raises(CarsegError, match="built-in model is missing; restore it with git checkout -- .*retrain"):
        Predictor(device="cpu")
    backends_module.BUILTIN_MODEL.parent.mkdir(parents=True)
    backends_module.BUILTIN_MODEL.write_bytes(BUILTIN_MODEL.read_bytes()[:100_000])  # truncated
    with pytest.raises(CarsegError, match="built-in model is damaged; restore it with git checkout"):
        Predictor(device="cpu")


def test_traced_file_from_another_carseg_version_is_refused(tmp_path):
    path = save_traced(RedOracle((0.5,) * 3, (0.25,) * 3), tmp_path / "model.pth")
    module = torch.jit.load(str(path))
    old = json.loads(ModelMetadata(model="RedOracle", image_size=(64, 96)).to_json()) | {"format": "carseg-traced-v0"}
    torch.jit.save(module, str(path), _extra_files={METADATA_FILE: json.dumps(old)})
    with pytest.raises(CarsegError, match=r"model.pth: written by another carseg version \(metadata format 'carseg-traced-v0'"):
        Predictor(path, device="cpu")
    (tmp_path / "in").mkdir()
    Image.fromarray(red_car_photo(64, 96)[0]).save(tmp_path / "in" / "car.png")
    result = subprocess.run([sys.executable, str(ROOT / "bin" / "car_segmentation.py"), str(tmp_path / "in"), str(tmp_path / "out"),
                             str(path)], capture_output=True, text=True)
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1 and "another carseg version" in result.stderr
