"""``catalyst-dl run`` end to end on tiny generated data, and its bad inputs."""
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pandas as pd
import pytest
import yaml

from carseg.commands.catalyst_dl import main as catalyst_dl_main
from carseg.commands.prepare_dataset import main as prepare

from conftest import ROOT

CATALYST_DL = [sys.executable, "-c", "from carseg.commands.catalyst_dl import main; raise SystemExit(main())"]


def catalyst_dl(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """``catalyst-dl`` in a new interpreter, as users run it (training runs: Catalyst, DataLoader workers, exit)."""
    return subprocess.run([*CATALYST_DL, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def prepared(tiny_dataset, tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("cli") / "data"
    import shutil
    shutil.copytree(tiny_dataset, data)
    assert prepare(["--datapath", str(data)]) == 0
    return data


def overlay(folder: Path, data: Path, model: Optional[dict] = None, **experiment) -> Path:
    """A small overlay on configs/demo.yml: tiny images and model, no workers, two epochs."""
    config = {
        "experiment": {"train_csv": str(data / "dataset_train.csv"), "valid_csv": str(data / "dataset_valid.csv"),
                       "image_size": [64, 96], "batch_size": 4, "num_workers": 0, **experiment},
        "model": model or {"base_channels": 4, "depth": 3},
        "run": {"train": {"num_epochs": 2}},
    }
    path = folder / "tiny.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_help_lists_commands():
    result = catalyst_dl("--help")
    assert result.returncode == 0 and "run" in result.stdout and "trace" in result.stdout


def test_run_writes_checkpoints_logs_and_config(prepared, tmp_path):
    logdir = tmp_path / "logs"
    result = catalyst_dl("run", "--config", "configs/demo.yml", str(overlay(tmp_path, prepared)),
                         "--logdir", str(logdir), "--seed", "3")
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("model.best.pth", "model.last.pth"):
        assert (logdir / "checkpoints" / name).is_file()
    saved = yaml.safe_load((logdir / "configs" / "_config.yml").read_text())
    assert saved["model"]["base_channels"] == 4 and saved["run"]["train"]["logdir"] == str(logdir)
    assert "_base_" not in saved and len(saved["run"]["train"]["callbacks"]) == 9 and saved["optimizer"]["lr"] == 0.003  # complete
    assert (logdir / "configs" / "demo.yml").is_file() and (logdir / "configs" / "tiny.yml").is_file()
    valid = pd.read_csv(logdir / "csv_logger" / "valid.csv")
    assert {"dice", "iou", "loss"} <= set(valid.columns) and len(valid) == 2
    assert (logdir / "tensorboard").is_dir()


def test_check_runs_a_few_batches(prepared, tmp_path):
    result = catalyst_dl("run", "-C", "configs/demo.yml", str(overlay(tmp_path, prepared)), "--set", "run.train.num_epochs=6",
                         "--logdir", str(tmp_path / "logs"), "--check")
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(pd.read_csv(tmp_path / "logs" / "csv_logger" / "valid.csv")) == 3  # Catalyst's check: 3 of the 6 epochs


def test_expdir_registers_user_models(prepared, tmp_path):
    package = tmp_path / "myexp"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from catalyst.registry import REGISTRY\nfrom carseg.training.models.unet import UNet\n\n"
        "class TinyNet(UNet):\n    pass\n\nREGISTRY.add(TinyNet=TinyNet)\n")
    config = overlay(tmp_path, prepared, model={"_target_": "TinyNet", "base_channels": 4, "depth": 3})
    result = catalyst_dl("run", "-C", "configs/demo.yml", str(config), "--logdir", str(tmp_path / "logs"),
                         "--check", "--expdir", str(package))
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize("experiment, fragment", [
    ({"train_csv": "/nowhere/train.csv"}, "/nowhere/train.csv: CSV not found"),
])
def test_bad_data_is_one_line(call, prepared, tmp_path, experiment, fragment):
    result = call(catalyst_dl_main, "run", "-C", "configs/demo.yml", str(overlay(tmp_path, prepared, **experiment)),
                  "--logdir", str(tmp_path / "logs"))  # in one process, one build after another
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"catalyst-dl run: error: {fragment}; run bin/prepare_dataset.py --datapath DIR first"]


def test_csv_pointing_to_missing_files(call, prepared, tmp_path):
    frame = pd.read_csv(prepared / "dataset_valid.csv")
    frame.loc[0, "image"] = "/gone/a.jpg"
    bad_csv = tmp_path / "valid.csv"
    frame.to_csv(bad_csv, index=False)
    result = call(catalyst_dl_main, "run", "-C", "configs/demo.yml", str(overlay(tmp_path, prepared, valid_csv=str(bad_csv))),
                  "--logdir", str(tmp_path / "logs"))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "valid.csv: points to missing files (/gone/a.jpg)" in lines[0]


def test_unknown_model_is_one_line(call, prepared, tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("model:\n  _target_: smp.Unett\n")
    result = call(catalyst_dl_main, "run", "-C", "configs/demo.yml", str(bad), "--logdir", str(tmp_path / "logs"))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "model._target_: unknown name 'smp.Unett'" in lines[0] and "smp.Unet" in lines[0]
    assert not (tmp_path / "logs").exists()


def test_run_ends_with_its_loader_workers(call, prepared, tmp_path):
    """A run with loader workers (persistent, as on a GPU) stops them when it ends, not at the interpreter's exit,
    which a GPU run with pinned memory never reached (pytorch/pytorch#81794)."""
    import psutil

    before = {child.pid for child in psutil.Process().children()}
    ran = call(catalyst_dl_main, "run", "-C", "configs/demo.yml", str(overlay(tmp_path, prepared, num_workers=2)),
               "--set", "run.train.num_epochs=1", "--logdir", str(tmp_path / "logs"))
    assert ran.returncode == 0, ran.stderr[-2000:]
    alive = [child for child in psutil.Process().children() if child.pid not in before and child.is_running()
             and child.status() != psutil.STATUS_ZOMBIE]
    assert alive == []
