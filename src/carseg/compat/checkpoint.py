"""Catalyst 22.04's best checkpoint, fixed, and the checkpoint records a resumed run restores."""
import shutil
from typing import List, Tuple

from catalyst import dl
from catalyst.callbacks.checkpoint import Checkpoint

from carseg.interrupts import deferred
from carseg.progress import on_terminal


class CheckpointCallback(dl.CheckpointCallback):
    """Catalyst 22.04's checkpoint callback, fixed: it rewrote ``model.best.pth`` from the live model at every
    epoch end (its record of the best epoch holds a reference to the model, not a copy), so "best" held the last
    epoch's weights. Here ``model.best.pth`` is a copy of the best epoch's own file, which the callback keeps.
    The registry's ``CheckpointCallback`` is this one."""

    def on_epoch_end_best(self, runner: "dl.IRunner") -> None:
        metrics = runner.epoch_metrics[self.loader_key] if self.loader_key is not None else runner.epoch_metrics
        self._handle_epoch(runner=runner, score=metrics[self.metric_key])
        if self.save_best:
            runner.engine.wait_for_everyone()
            if runner.engine.is_main_process:
                shutil.copyfile(self._storage[0].logpath, f"{self.logdir}/{self.mode}.best.pth")


class SupervisedRunner(dl.SupervisedRunner):
    """Catalyst's SupervisedRunner with :class:`CheckpointCallback` as its default checkpointing (Catalyst's own
    ``get_callbacks`` adds the unfixed one under the private name ``_checkpoint``), and the progress bar of
    ``verbose: true`` (``_verbose``) only on a terminal (:mod:`carseg.progress`): the console logger's line per
    epoch is what a log file gets. Ctrl-C or SIGTERM during an epoch's end waits for it, so its checkpoints and
    training state are written whole."""

    def _run_event(self, event: str) -> None:
        if event != "on_epoch_end":
            return super()._run_event(event)
        with deferred():
            super()._run_event(event)

    def get_callbacks(self):
        callbacks = super().get_callbacks()
        if not on_terminal():
            callbacks.pop("_verbose", None)
        default = callbacks.get("_checkpoint")
        if type(default) is dl.CheckpointCallback:  # the runner's own default, not one the config lists
            callbacks["_checkpoint"] = CheckpointCallback(
                logdir=default.logdir, loader_key=self._valid_loader, metric_key=self._valid_metric,
                minimize=self._minimize_valid_metric, load_best_on_end=self._load_best_on_end)
        return callbacks


def checkpoint_records(callback: dl.CheckpointCallback) -> List[Tuple[str, float]]:
    """The checkpoints the callback keeps, best first, as (file, metric): its private ``_storage``."""
    return [(record.logpath, record.metric) for record in callback._storage]


def restore_checkpoint_records(callback: dl.CheckpointCallback, records: List[Tuple[str, float]]) -> None:
    """Give a resumed run's callback the records of the stopped run, so it keeps ranking the same files."""
    callback._storage = [Checkpoint(obj=None, logpath=path, metric=metric) for path, metric in records]
