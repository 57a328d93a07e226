"""``catalyst-dl run --resume``: a run killed after its first epoch continues to the configured end; the best
checkpoint is the best epoch's; the checkpoint of a real run traces into a working Predictor."""
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from catalyst import dl

from carseg.commands.catalyst_dl import main
from carseg.inference.predictor import Predictor
from carseg.training.curves import read_metrics_csv
from carseg.compat.checkpoint import CheckpointCallback

from conftest import ROOT, red_car_photo
from test_cli import catalyst_dl, overlay, prepared  # noqa: F401 - the module fixture

KILLER = """import os, signal
from catalyst import dl
from catalyst.registry import REGISTRY


class KillAtEpoch(dl.Callback):
    \"\"\"SIGKILL the run as epoch ``epoch`` starts: no clean-up, as a crash or a pre-empted job.\"\"\"

    def __init__(self, epoch: int):
        super().__init__(order=dl.CallbackOrder.External)
        self.epoch = epoch

    def on_epoch_start(self, runner):
        if runner.epoch_step == self.epoch:
            os.kill(os.getpid(), signal.SIGKILL)


REGISTRY.add(KillAtEpoch=KillAtEpoch)
"""


def test_killed_run_resumes_where_it_stopped(prepared, tmp_path):  # noqa: F811
    package = tmp_path / "killer"
    package.mkdir()
    (package / "__init__.py").write_text(KILLER)
    logdir, config = tmp_path / "logs", overlay(tmp_path, prepared)  # 2 epochs; the cosine schedule spans them
    killed = catalyst_dl("run", "-C", "configs/demo.yml", str(config), "--logdir", str(logdir), "--expdir", str(package),
                         "--set", "run.train.callbacks.kill={_target_: KillAtEpoch, epoch: 2}")
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert read_metrics_csv(logdir / "csv_logger" / "valid.csv")["step"] == [1]

    resumed = catalyst_dl("run", "-C", "configs/demo.yml", str(config), "--logdir", str(logdir), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert read_metrics_csv(logdir / "csv_logger" / "valid.csv")["step"] == [1, 2]  # ends at the configured epoch
    lr = read_metrics_csv(logdir / "csv_logger" / "_epoch_.csv")["lr"]
    cosine = [0.003 * (1 + math.cos(math.pi * epoch / 2)) / 2 for epoch in (1, 2)]  # logged after each epoch's step
    assert lr == pytest.approx(cosine)  # the schedule went on; restarted, epoch 2 would log epoch 1's rate again
    assert torch.load(logdir / "checkpoints" / "training_state.pth", weights_only=False)["epoch_step"] == 2

    # the real run's best checkpoint traces into a model the Predictor runs, with the config's threshold and stride
    traced = catalyst_dl("trace", str(logdir))
    assert traced.returncode == 0, traced.stderr[-3000:]
    predictor = Predictor(logdir / "trace" / "traced-best-forward.pth", device="cpu")
    assert predictor.metadata.threshold == 0.5 and predictor.metadata.size_divisor == 8  # the tiny UNet's depth 3
    assert predictor.predict(red_car_photo(100, 150)[0]).shape == (100, 150)


def test_resume_without_a_state_says_so(prepared, tmp_path, capsys):  # noqa: F811
    demo = str(ROOT / "configs" / "demo.yml")
    assert main(["run", "-C", demo, str(overlay(tmp_path, prepared)), "--resume", str(tmp_path)]) == 1  # in-process: fails before training
    assert "training_state.pth: no training state to resume from" in capsys.readouterr().err


def test_best_checkpoint_is_the_best_epochs_weights(tmp_path):
    """Catalyst 22.04 rewrote model.best.pth from the live model every epoch; carseg's callback copies the best."""
    model = torch.nn.Linear(1, 1, bias=False)
    runner = SimpleNamespace(engine=dl.CPUEngine(), model=model, epoch_step=0, epoch_metrics={})
    callback = CheckpointCallback(str(tmp_path), loader_key="valid", metric_key="dice", minimize=False)
    for weight, dice in ((1.0, 0.9), (2.0, 0.5), (3.0, 0.7)):  # epoch 1 is the best
        torch.nn.init.constant_(model.weight, weight)
        runner.epoch_step += 1
        runner.epoch_metrics = {"valid": {"dice": dice}}
        callback.on_epoch_end(runner)
    best = torch.load(tmp_path / "model.best.pth")
    assert np.allclose(best["weight"].numpy(), 1.0)
    assert np.allclose(torch.load(tmp_path / "model.last.pth")["weight"].numpy(), 3.0)


class _RunsCode:
    """Unpickling this writes a marker file: what a crafted state file could do with a full unpickler."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_crafted_state_file_runs_no_code(tmp_path):
    from carseg.errors import CarsegError
    from carseg.training.resume import TrainingStateCallback

    marker = tmp_path / "pwned"
    torch.save({"model_state_dict": _RunsCode(marker)}, tmp_path / "training_state.pth")
    with pytest.raises(CarsegError, match="training_state.pth: cannot resume from it"):
        TrainingStateCallback(resume=str(tmp_path / "training_state.pth")).on_experiment_start(runner=None)
    assert not marker.exists()
