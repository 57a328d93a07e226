"""Backends behind one base class: a third one is a ``Backend`` subclass and its entry in ``BACKENDS``, nothing else."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from carseg.commands.car_segmentation import main as car_segmentation
from carseg.inference.backends import BACKENDS, Backend, backend_for
from carseg.inference.predictor import Predictor
from carseg.metadata import ModelMetadata

from conftest import red_car_photo


class Constant(Backend):
    """A model file holding one number: that logit at every pixel."""

    name = "constant"
    suffixes = (".const",)

    def __init__(self, path: Path, device: str = "cpu"):
        self.logit = float(Path(path).read_text())
        self.metadata = ModelMetadata(model="Constant", image_size=(32, 48))

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return torch.full((batch.shape[0], 1, *batch.shape[2:]), self.logit, device=batch.device)


@pytest.fixture
def constant(monkeypatch, tmp_path) -> Path:
    monkeypatch.setitem(BACKENDS, Constant.name, Constant)  # the registration line
    (tmp_path / "everything.const").write_text("10")
    return tmp_path / "everything.const"


def test_a_third_backend_needs_only_its_class_and_its_registration(constant, tmp_path, call):
    assert backend_for(constant) == "constant" and backend_for(tmp_path / "m.pth") == backend_for(None) == "torchscript"
    photo = red_car_photo(50, 70)[0]
    assert (Predictor(constant, device="cpu").predict(photo) == 255).all()  # logit 10 everywhere: all car
    (tmp_path / "in").mkdir()
    Image.fromarray(photo).save(tmp_path / "in" / "car.png")
    ran = call(car_segmentation, tmp_path / "in", tmp_path / "out", constant, "--backend", "constant", "--quiet",
               "--workers", "0", "--device", "cpu")
    assert ran.returncode == 0, ran.stderr
    assert (np.asarray(Image.open(tmp_path / "out" / "car.png"))[..., 3] == 255).all()


def test_an_unknown_backend_is_one_line_naming_the_registered_ones(tmp_path, call, oracle_model):
    (tmp_path / "in").mkdir()
    Image.fromarray(red_car_photo(20, 30)[0]).save(tmp_path / "in" / "car.png")
    ran = call(car_segmentation, tmp_path / "in", tmp_path / "out", oracle_model, "--backend", "tensorrt")
    assert ran.returncode == 1
    assert ran.stderr == "car_segmentation.py: error: --backend tensorrt: choose one of auto, torchscript, onnx\n"

