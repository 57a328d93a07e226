"""Shared fixtures: tiny generated datasets in Carvana's layout."""
import shutil
from pathlib import Path

import pytest

from carseg.data.synthetic import generate_dataset

ROOT = Path(__file__).resolve().parents[1]


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
