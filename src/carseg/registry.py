"""Everything a config may name by a short ``_target_``: carseg's parts and Catalyst's building blocks.

``import carseg`` stays light (no Catalyst: the inference commands start fast); :func:`registry` imports Catalyst
and fills its ``REGISTRY`` on first use, as the config, training and tracing code do.
"""
import inspect

from hydra_slayer import Registry


def register(registry: Registry) -> None:
    """Add models, losses, engines, the Experiment and Catalyst's runners/callbacks/loggers (carseg's fixed
    ``CheckpointCallback``, ``CheckRunCallback`` and ``SupervisedRunner`` in place of Catalyst's)."""
    import segmentation_models_pytorch.losses as smp_losses
    from catalyst import callbacks, loggers

    from carseg.compat import checkpoint, engines
    from carseg.compat.callbacks import CheckRunCallback
    from carseg.data.composite import PasteCars
    from carseg.training.callbacks import ChannelsLastCallback, KindDiceCallback, PredictionPreviewCallback
    from carseg.training.engines import AutoEngine
    from carseg.training.experiment import Experiment
    from carseg.training.losses import BCEDiceLoss
    from carseg.training.models import model_factories
    from carseg.training.resume import TrainingStateCallback

    fixed = {"SupervisedRunner": checkpoint.SupervisedRunner, "CheckpointCallback": checkpoint.CheckpointCallback,
             "CheckRunCallback": CheckRunCallback}
    for module in (callbacks, loggers):
        registry.add(**{name: obj for name, obj in vars(module).items()
                        if inspect.isclass(obj) and name.endswith(("Callback", "Logger")) and name not in fixed})
    registry.add(**fixed)
    registry.add(TrainingStateCallback=TrainingStateCallback,
                 PredictionPreviewCallback=PredictionPreviewCallback, ChannelsLastCallback=ChannelsLastCallback,
                 KindDiceCallback=KindDiceCallback)
    registry.add(CPUEngine=engines.CPUEngine, DistributedDataParallelEngine=engines.DistributedDataParallelEngine,
                 GPUEngine=engines.GPUEngine, DataParallelEngine=engines.DataParallelEngine, AutoEngine=AutoEngine)
    registry.add(Experiment=Experiment, BCEDiceLoss=BCEDiceLoss, PasteCars=PasteCars)
    registry.add(**{name: getattr(smp_losses, name) for name in
                    ("DiceLoss", "JaccardLoss", "FocalLoss", "LovaszLoss", "SoftBCEWithLogitsLoss", "TverskyLoss")})
    registry.add(**model_factories())


_registered = False


def registry() -> Registry:
    """Catalyst's ``REGISTRY`` with carseg's names (registered on first call; a user package's additions with
    ``from catalyst.registry import REGISTRY; REGISTRY.add(...)`` land in the same one)."""
    global _registered
    from catalyst.registry import REGISTRY

    if not _registered:
        REGISTRY.late_add(register)
        _registered = True
    return REGISTRY
