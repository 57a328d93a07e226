"""Prediction previews (PNG + TensorBoard) during ``catalyst-dl run``, and training curves from the CSV logs."""
import shutil
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from carseg.training.callbacks import PredictionPreviewCallback, preview_grid
from carseg.training.curves import plot_curves, read_metrics_csv
from carseg.errors import CarsegError
from carseg.commands.prepare_dataset import main as prepare

from test_cli import catalyst_dl, overlay

IMAGE_SIZE = (64, 96)  # the overlay's image_size


@pytest.fixture(scope="module")
def trained(tiny_dataset, tmp_path_factory) -> Path:
    """One tiny 2-epoch run of configs/demo.yml (which lists PredictionPreviewCallback); its logdir."""
    folder = tmp_path_factory.mktemp("previews")
    data = folder / "data"
    shutil.copytree(tiny_dataset, data)
    assert prepare(["--datapath", str(data)]) == 0
    logdir = folder / "logs"
    result = catalyst_dl("run", "--config", "configs/demo.yml", str(overlay(folder, data)), "--logdir", str(logdir))
    assert result.returncode == 0, result.stderr[-3000:]
    return logdir


def check_grid_shape(shape, rows: int) -> None:
    """A title strip (10-30 px) above ``rows`` rows of 64-px tiles, 4-px gaps between; four 96-px columns, 4-px gaps."""
    assert shape[1] == 4 * IMAGE_SIZE[1] + 3 * 4  # photo | probability | true mask | errors
    assert shape[0] - rows * (IMAGE_SIZE[0] + 4) in range(10, 31)


def test_previews_png_per_validation_epoch(trained):
    previews = trained / "previews"
    assert sorted(p.name for p in previews.iterdir()) == ["epoch_001.png", "epoch_002.png"]  # no temporary left
    grid = cv2.imread(str(previews / "epoch_002.png"))
    check_grid_shape(grid.shape, rows=4)
    assert grid.std() > 10  # a picture, not a blank


def test_previews_in_tensorboard(trained):
    from tensorboard.backend.event_processing.event_accumulator import IMAGES, EventAccumulator

    events = EventAccumulator(str(trained / "tensorboard" / "valid"), size_guidance={IMAGES: 0}).Reload()
    assert "previews" in events.Tags()[IMAGES]
    images = events.Images("previews")
    assert [image.step for image in images] == [1, 2]
    check_grid_shape((images[-1].height, images[-1].width), rows=4)


def test_curves_from_run(trained):
    path = plot_curves(trained)
    assert path == trained / "curves.png"
    picture = cv2.imread(str(path))
    assert picture is not None and picture.shape[1] > 2 * picture.shape[0]  # three panels side by side
    assert not list(trained.glob(".*.tmp"))


def test_curves_need_csv_logs(tmp_path):
    with pytest.raises(CarsegError, match="no CSV logs"):
        plot_curves(tmp_path)
    with pytest.raises(CarsegError, match="logdir not found"):
        plot_curves(tmp_path / "missing")
    assert not (tmp_path / "curves.png").exists()


def test_csv_of_a_rerun_keeps_the_latest_run(tmp_path):
    path = tmp_path / "valid.csv"
    path.write_text("step,dice,loss\n1,0.1,0.9\n2,0.2,0.8\nstep,dice,iou,loss\n1,0.5,0.3,0.4\n2,0.6,0.4,0.3\n3,0.7")
    series = read_metrics_csv(path)
    assert series["step"] == [1, 2] and series["dice"] == [0.5, 0.6] and series["iou"] == [0.3, 0.4]


class FakeRunner(SimpleNamespace):
    def log_image(self, tag, image, scope=None):
        self.logged.append((tag, image.shape, self.epoch_step))


def run_loader(callback, runner, batches):
    callback.on_loader_start(runner)
    for batch in batches:
        runner.batch = batch
        callback.on_batch_end(runner)
    callback.on_loader_end(runner)


def batch(n: int, value: float = 0.0):
    return {"features": torch.full((n, 3, *IMAGE_SIZE), value), "probs": torch.rand(n, 1, *IMAGE_SIZE),
            "targets": (torch.rand(n, 1, *IMAGE_SIZE) > 0.5).float()}


def test_callback_keeps_only_the_first_samples(tmp_path):
    runner = FakeRunner(loader_key="valid", epoch_step=3, engine=SimpleNamespace(is_main_process=True),
                        _logdir=str(tmp_path), logged=[])
    callback = PredictionPreviewCallback(num_images=5)
    untouched = batch(4)
    untouched["features"] = None  # slicing it would fail: the third batch must not be read at all
    run_loader(callback, runner, [batch(4), batch(4), untouched])
    [(tag, shape, epoch)] = runner.logged
    assert tag == "previews" and epoch == 3 and shape[2] == 3
    check_grid_shape(shape, rows=5)
    assert cv2.imread(str(tmp_path / "previews" / "epoch_003.png")).shape == shape

    runner.loader_key, runner.logged = "train", []  # another loader: nothing kept, nothing written
    run_loader(callback, runner, [batch(4)])
    assert runner.logged == []


def test_callback_names_a_missing_key(tmp_path):
    runner = FakeRunner(loader_key="valid", epoch_step=1, engine=SimpleNamespace(is_main_process=True),
                        _logdir=None, logged=[])
    with pytest.raises(CarsegError, match="no 'probabilities'.*output_key"):
        run_loader(PredictionPreviewCallback(output_key="probabilities"), runner, [batch(2)])


def test_grid_tints_each_kind_of_error():
    """On a black photo the error tile is the pure tint: added red, right green, missed blue, background black."""
    images = np.zeros((1, 3, *IMAGE_SIZE), np.float32)
    probs = np.zeros((1, 1, *IMAGE_SIZE), np.float32)
    probs[..., :48] = 1  # predicted: the left half
    targets = np.zeros_like(probs)
    targets[..., 24:72] = 1  # true: the middle half
    grid = preview_grid(images, probs, targets, (0.0,) * 3, (1.0,) * 3)
    errors = grid[-IMAGE_SIZE[0]:, 3 * (IMAGE_SIZE[1] + 4):]
    assert errors.shape == (*IMAGE_SIZE, 3)
    assert [tuple(errors[40, x]) for x in (10, 36, 60, 90)] == [(115, 0, 0), (0, 100, 0), (0, 45, 128), (0, 0, 0)]
