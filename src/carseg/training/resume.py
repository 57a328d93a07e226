"""Resumable training: the whole training state saved after every epoch, and ``catalyst-dl run --resume``.

Catalyst's checkpoints (``model.best.pth``, ``model.last.pth``) hold the weights only, and its runner
restarts at epoch 1; this callback adds what a continuation needs, in one file beside them.
"""
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch
from catalyst import dl
from catalyst.utils import pack_checkpoint, unpack_checkpoint

from carseg.atomic import atomic_path
from carseg.compat.checkpoint import checkpoint_records, restore_checkpoint_records
from carseg.config import train_calls
from carseg.errors import CarsegError

STATE_FILE = "training_state.pth"  # in LOGDIR/checkpoints/


def state_path(resume: Path) -> Path:
    """``--resume`` names a logdir or a state file; the state file, or one clear error."""
    path = Path(resume) / "checkpoints" / STATE_FILE if Path(resume).is_dir() else Path(resume)
    if not path.is_file():
        raise CarsegError(f"{path}: no training state to resume from; pass the logdir of a run whose config lists "
                          "TrainingStateCallback (configs/_base_/default_runtime.yml does) after its first epoch")
    return path


class TrainingStateCallback(dl.Callback):
    """After each epoch, write ``LOGDIR/checkpoints/training_state.pth``: model, optimizer, scheduler, epoch,
    and the best-so-far records of early stopping and of the best checkpoint. With ``resume`` (a state file),
    load it at the start, so the run continues with the next epoch as if it had never stopped."""

    def __init__(self, resume: Optional[str] = None):
        super().__init__(order=dl.CallbackOrder.External)  # after the metrics, early stopping and checkpoints
        self.resume = resume

    def on_experiment_start(self, runner: "dl.IRunner") -> None:
        if self.resume is None:
            return
        path = state_path(Path(self.resume))
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)  # tensors and plain data: a crafted file runs no code
            unpack_checkpoint(state, model=runner.engine.unwrap_model(runner.model), criterion=runner.criterion,
                              optimizer=runner.optimizer, scheduler=runner.scheduler)
        except Exception as exc:
            raise CarsegError(f"{path}: cannot resume from it ({type(exc).__name__}: {exc}); was it written "
                              "with the same config?") from exc
        runner.epoch_step, runner.batch_step, runner.sample_step = state["epoch_step"], state["batch_step"], state["sample_step"]
        for callback in runner.callbacks.values():
            if isinstance(callback, dl.EarlyStoppingCallback):
                callback.best_score, callback.num_no_improvement_epochs = state["early_stopping"]
            elif isinstance(callback, dl.CheckpointCallback):
                restore_checkpoint_records(callback, state["checkpoints"])

    def on_epoch_end(self, runner: "dl.IRunner") -> None:
        logdir = getattr(runner, "_logdir", None)
        if not logdir or not runner.engine.is_main_process:
            return
        state = pack_checkpoint(model=runner.engine.unwrap_model(runner.model), criterion=runner.criterion,
                                optimizer=runner.optimizer, scheduler=runner.scheduler)
        state.update(epoch_step=runner.epoch_step, batch_step=runner.batch_step, sample_step=runner.sample_step,
                     early_stopping=None, checkpoints=[])
        for callback in runner.callbacks.values():
            if isinstance(callback, dl.EarlyStoppingCallback):
                state["early_stopping"] = (callback.best_score, callback.num_no_improvement_epochs)
            elif isinstance(callback, dl.CheckpointCallback):
                state["checkpoints"] = checkpoint_records(callback)
        with atomic_path(Path(logdir) / "checkpoints" / STATE_FILE) as tmp:  # a kill mid-write keeps the last one
            torch.save(state, tmp)


def apply_resume(config: Dict[str, Any], resume: Union[bool, Path], logdir_given: bool) -> None:
    """Point every train call's TrainingStateCallback at the state to resume from: ``resume`` True means each
    call's own logdir; a logdir (which also becomes the run's logdir unless ``--logdir`` was given) or a state file."""
    for entry in train_calls(config):
        callback = next((c for c in entry.get("callbacks", {}).values() if c.get("_target_") == "TrainingStateCallback"), None)
        if callback is None:
            raise CarsegError("--resume: the config's train call lists no TrainingStateCallback, so no run of it saved "
                              "a state to resume from; add it (as configs/_base_/default_runtime.yml does)")
        if resume is True and not entry.get("logdir"):
            raise CarsegError("--resume: the train call has no logdir; pass --resume LOGDIR")
        source = Path(entry["logdir"]) if resume is True else Path(resume)
        callback["resume"] = str(state_path(source))
        if source.is_dir() and not logdir_given:
            entry["logdir"] = str(source)  # the logs and checkpoints continue where they were
