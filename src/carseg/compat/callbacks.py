"""Catalyst 22.04's ``--check`` callback, fixed."""
from catalyst import dl


class CheckRunCallback(dl.CheckRunCallback):
    """Catalyst's ``--check`` callback, fixed for loaders shorter than ``num_batch_steps``: Catalyst's version leaves
    ``need_early_stop`` set when a loader runs out first, so the next loader stops before its first batch and its
    metrics divide by zero. The registry's ``CheckRunCallback`` is this one."""

    def on_loader_start(self, runner: "dl.IRunner") -> None:
        runner.need_early_stop = False
