"""The built-in models (general, the default, and studio): chosen by name in the Predictor and the commands; clear
lines when one is missing, damaged, or a traced file comes from another carseg version."""
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
from carseg.commands.car_segmentation import main as car_segmentation
from carseg.commands.model_options import BUILTIN_NAMES
from carseg.inference.backends import BUILTIN_MODELS, DEFAULT_MODEL
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


@pytest.mark.parametrize("name, size", [("general", (336, 448)), ("studio", (256, 384))])
def test_builtin_models_are_small_and_current(name, size):
    assert BUILTIN_MODELS[name].is_file() and BUILTIN_MODELS[name].stat().st_size <= 25 * 2**20
    assert Predictor(name, device="cpu").metadata.image_size == size
    assert BUILTIN_NAMES == tuple(BUILTIN_MODELS)  # the options' copy (kept import-free) names the same models
    assert DEFAULT_MODEL == "general" and Predictor(device="cpu").metadata.image_size == (336, 448)


def run_cli(folder, out, *options):
    return subprocess.run([sys.executable, str(ROOT / "bin" / "car_segmentation.py"), str(folder), str(out), *options,
                           "--quiet", "--device", "cpu"], capture_output=True, text=True)


@pytest.mark.parametrize("options, least_dice", [((), 0.75), (("--model", "studio"), 0.75)])
def test_car_segmentation_by_model_name_cuts_out_generated_cars(generated_photos, tmp_path, options, least_dice):
    photos, masks = generated_photos
    folder = tmp_path / "in"
    folder.mkdir()
    for photo in photos:
        shutil.copy(photo, folder / photo.name)
    result = run_cli(folder, tmp_path / "out", *options)
    assert result.returncode == 0, result.stderr
    assert f"done {len(photos)}," in result.stdout
    for photo in photos:
        rgba = np.asarray(Image.open(tmp_path / "out" / f"{photo.stem}.png"))
        assert rgba.shape == (1280, 1918, 4)
        # generated cars are not real photos (painted distractors, odd colours)
        assert dice(rgba[..., 3], read_mask(masks / f"{photo.stem}_mask.gif")) > least_dice
        assert not rgba[:50, :50, 3].any() and not rgba[-50:, -50:, 3].any()  # the backdrop's corners are cut away


def test_model_given_twice_is_one_line(call, generated_photos, tmp_path):
    result = call(car_segmentation, generated_photos[0][0].parent, tmp_path / "out", "studio", "--model", "general")
    assert result.returncode == 1 and result.stderr.strip() == (
        "car_segmentation.py: error: MODEL studio and --model general: give the model once")


@pytest.mark.parametrize("name", sorted(BUILTIN_MODELS))
def test_missing_or_damaged_builtin_model_says_how_to_restore(monkeypatch, tmp_path, name):
    fake = tmp_path / "src" / "carseg" / "builtin_model" / name / "model.pth"
    monkeypatch.setitem(BUILTIN_MODELS, name, fake)
    with pytest.raises(CarsegError, match=f"built-in model is missing; restore it with git checkout -- .*{name}/model.pth.*retrain"):
        Predictor(name, device="cpu")
    fake.parent.mkdir(parents=True)
    fake.write_bytes(backends_module.BUILTIN_MODELS["studio" if name == "general" else "general"].read_bytes()[:100_000])
    with pytest.raises(CarsegError, match="built-in model is damaged; restore it with git checkout"):
        Predictor(name, device="cpu")


def test_traced_file_from_another_carseg_version_is_refused(call, tmp_path):
    path = save_traced(RedOracle((0.5,) * 3, (0.25,) * 3), tmp_path / "model.pth")
    module = torch.jit.load(str(path))
    old = json.loads(ModelMetadata(model="RedOracle", image_size=(64, 96)).to_json()) | {"format": "carseg-traced-v0"}
    torch.jit.save(module, str(path), _extra_files={METADATA_FILE: json.dumps(old)})
    with pytest.raises(CarsegError, match=r"model.pth: written by another carseg version \(metadata format 'carseg-traced-v0'"):
        Predictor(path, device="cpu")
    (tmp_path / "in").mkdir()
    Image.fromarray(red_car_photo(64, 96)[0]).save(tmp_path / "in" / "car.png")
    result = call(car_segmentation, tmp_path / "in", tmp_path / "out", path)
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1 and "another carseg version" in result.stderr
