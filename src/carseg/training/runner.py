"""The config's ``SupervisedRunner``: Catalyst's, with a best checkpoint that really is the best epoch's."""
import shutil

from catalyst import dl


class CheckpointCallback(dl.CheckpointCallback):
    """Catalyst 22.04's checkpoint callback, fixed: it rewrote ``model.best.pth`` from the live model at every
    epoch end (its record of the best epoch holds a reference to the model, not a copy), so "best" held the last
    epoch's weights. Here ``model.best.pth`` is a copy of the best epoch's own file, which the callback keeps."""

    def on_epoch_end_best(self, runner: "dl.IRunner") -> None:
        metrics = runner.epoch_metrics[self.loader_key] if self.loader_key is not None else runner.epoch_metrics
        self._handle_epoch(runner=runner, score=metrics[self.metric_key])
        if self.save_best:
            runner.engine.wait_for_everyone()
            if runner.engine.is_main_process:
                shutil.copyfile(self._storage[0].logpath, f"{self.logdir}/{self.mode}.best.pth")


class SupervisedRunner(dl.SupervisedRunner):
    """Catalyst's SupervisedRunner with :class:`CheckpointCallback` as its default checkpointing."""

    def get_callbacks(self):
        callbacks = super().get_callbacks()
        default = callbacks.get("_checkpoint")
        if type(default) is dl.CheckpointCallback:  # the runner's own default, not one the config lists
            callbacks["_checkpoint"] = CheckpointCallback(
                logdir=default.logdir, loader_key=self._valid_loader, metric_key=self._valid_metric,
                minimize=self._minimize_valid_metric, load_best_on_end=self._load_best_on_end)
        return callbacks
