"""Shared fixtures: tiny generated datasets in Carvana's layout, stand-in models, a command's main run in-process."""
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import cv2
import numpy as np
import pytest
import torch

from carseg.data.synthetic import generate_dataset

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Ran:
    """What a command's ``main(argv)`` returned and printed (the fields of a finished subprocess)."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def call(capsys, monkeypatch) -> Callable[..., Ran]:
    """``call(main, *args)``: a command's ``main`` in this process, from the repository root as its script would run;
    an argparse exit is its exit code. A one-line error needs no new interpreter (~3 s each)."""
    monkeypatch.chdir(ROOT)

    def run_main(main: Callable[[Optional[List[str]]], int], *args: object) -> Ran:
        capsys.readouterr()
        try:
            code = main([str(arg) for arg in args])
        except SystemExit as exit:
            code = exit.code
        out, err = capsys.readouterr()
        return Ran(code, out, err)

    return run_main


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """6 cars x 3 views at 240x160 (+1 test car), generated once per session; treat as read-only."""
    data_dir = tmp_path_factory.mktemp("tiny") / "data"
    generate_dataset(data_dir, num_cars=6, views=3, num_test_cars=1, size=(240, 160), seed=0)
    return data_dir


@pytest.fixture
def dataset_copy(tiny_dataset, tmp_path) -> Path:
    """A private copy of the tiny dataset that a test may break."""
    target = tmp_path / "data"
    shutil.copytree(tiny_dataset, target)
    return target


class RedOracle(torch.nn.Module):
    """A stand-in segmentation model with a known answer: logits > 0 exactly where a pixel is red."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rgb = x * self.std + self.mean
        return 20.0 * (rgb[:, :1] - rgb[:, 2:3] - 0.5)


def save_traced(model: torch.nn.Module, path: Path, image_size=(64, 96)) -> Path:
    """Trace ``model`` and save it with the metadata ``catalyst-dl trace`` writes."""
    from carseg import metadata

    with torch.no_grad():
        traced = torch.jit.trace(model.eval(), torch.rand(1, 3, *image_size))
    meta = metadata.ModelMetadata(model=type(model).__name__, image_size=tuple(image_size), checkpoint="none (test fixture)")
    return metadata.save_traced(traced, path, meta)


@pytest.fixture(scope="session")
def oracle_model(tmp_path_factory) -> Path:
    """A traced RedOracle: red pixels are 'car', everything else background."""
    from carseg.data.transforms import IMAGENET_MEAN, IMAGENET_STD

    return save_traced(RedOracle(IMAGENET_MEAN, IMAGENET_STD), tmp_path_factory.mktemp("oracle") / "oracle.pth")


def red_car_photo(height: int, width: int) -> Tuple[np.ndarray, np.ndarray]:
    """An RGB photo with a red ellipse 'car' on a blue background, and its 0/255 mask."""
    mask = np.zeros((height, width), np.uint8)
    cv2.ellipse(mask, (width // 2, height // 2), (max(1, width // 3), max(1, height // 4)), 0, 0, 360, 255, -1)
    image = np.zeros((height, width, 3), np.uint8)
    image[:] = (30, 60, 200)
    image[mask > 0] = (220, 20, 20)
    return image, mask


PAGE_TESTS = "test_serve_page.py"


def pytest_terminal_summary(terminalreporter) -> None:
    """Skipped web-page tests are said loudly at the end of the run: skipped in silence, CI passed without a browser."""
    skipped = [report for report in terminalreporter.stats.get("skipped", []) if PAGE_TESTS in report.nodeid]
    if skipped:
        longrepr = skipped[0].longrepr
        reason = (longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)).removeprefix("Skipped: ")
        terminalreporter.section("web-page tests NOT RUN", sep="!", red=True, bold=True)
        terminalreporter.line(f"{len(skipped)} skipped in tests/{PAGE_TESTS}: {reason}; .ci/run installs Chromium with "
                              "apt-get as root", red=True, bold=True)
