"""Progress bars only on a terminal: a log file or a pipe (bin/demo.sh's log) gets no carriage-return redraws from the
folder command's bar or from training's ``verbose: true``, only lines; a terminal still gets the bars."""
import io
import sys
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset

from carseg.commands.car_segmentation import main as car_segmentation

from conftest import red_car_photo


class Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_folder_command_draws_its_bar_only_on_a_terminal(call, tmp_path, oracle_model, monkeypatch):
    (tmp_path / "in").mkdir()
    for i in range(3):
        Image.fromarray(red_car_photo(40, 60)[0]).save(tmp_path / "in" / f"car_{i}.png")
    logged = call(car_segmentation, tmp_path / "in", tmp_path / "logged", oracle_model, "--workers", "0", "--batch-size", "1")
    assert logged.returncode == 0 and logged.stdout.startswith("done 3,")
    assert "\r" not in logged.stdout + logged.stderr
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert call(car_segmentation, tmp_path / "in", tmp_path / "watched", oracle_model, "--workers", "0",
                "--batch-size", "1").returncode == 0
    assert "\r" in terminal.getvalue() and "| 3/3 [" in terminal.getvalue()


def train_verbose(logdir: Path) -> None:
    """One epoch of 4 batches with ``verbose: true``, by the runner configs name."""
    from carseg.registry import registry

    torch.manual_seed(0)
    data = TensorDataset(torch.rand(8, 3), torch.rand(8, 1))
    model = torch.nn.Linear(3, 1)
    registry().get("SupervisedRunner")().train(
        model=model, criterion=torch.nn.MSELoss(), optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        loaders={"train": DataLoader(data, batch_size=2), "valid": DataLoader(data, batch_size=2)},
        logdir=str(logdir), num_epochs=1, valid_loader="valid", valid_metric="loss", verbose=True)


def test_training_draws_its_bar_only_on_a_terminal(tmp_path, capsys, monkeypatch):
    train_verbose(tmp_path / "logged")
    logged = capsys.readouterr()
    assert "\r" not in logged.out + logged.err
    lines = logged.out.splitlines()  # the console logger's line per loader and epoch stays
    assert any(line.startswith("train (1/1) loss: ") for line in lines)
    assert any(line.startswith("valid (1/1) loss: ") for line in lines)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    train_verbose(tmp_path / "watched")
    assert "\r" in terminal.getvalue() and "1/1 * Epoch (train)" in terminal.getvalue()
