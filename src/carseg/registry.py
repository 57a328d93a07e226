"""Everything a config may name by a short ``_target_``: carseg's parts and Catalyst's building blocks."""
import inspect

from hydra_slayer import Registry


def register(registry: Registry) -> None:
    """Add models, losses, engines, the Experiment and Catalyst's runners/callbacks/loggers."""
    import segmentation_models_pytorch.losses as smp_losses
    from catalyst import callbacks, loggers

    from carseg.data.composite import PasteCars
    from carseg.training import engines
    from carseg.training.callbacks import ChannelsLastCallback, CheckRunCallback, KindDiceCallback, PredictionPreviewCallback
    from carseg.training.experiment import Experiment
    from carseg.training.losses import BCEDiceLoss
    from carseg.training.models import model_factories
    from carseg.training.resume import TrainingStateCallback
    from carseg.training.runner import SupervisedRunner

    registry.add(SupervisedRunner=SupervisedRunner, TrainingStateCallback=TrainingStateCallback)
    for module in (callbacks, loggers):
        registry.add(**{name: obj for name, obj in vars(module).items()
                        if inspect.isclass(obj) and name.endswith(("Callback", "Logger")) and name != "CheckRunCallback"})
    registry.add(CheckRunCallback=CheckRunCallback)  # carseg's fix of Catalyst's (see carseg.training.callbacks)
    registry.add(PredictionPreviewCallback=PredictionPreviewCallback, ChannelsLastCallback=ChannelsLastCallback,
                 KindDiceCallback=KindDiceCallback)
    registry.add(CPUEngine=engines.CPUEngine, DistributedDataParallelEngine=engines.DistributedDataParallelEngine,
                 GPUEngine=engines.GPUEngine, DataParallelEngine=engines.DataParallelEngine,
                 AutoEngine=engines.AutoEngine)
    registry.add(Experiment=Experiment, BCEDiceLoss=BCEDiceLoss, PasteCars=PasteCars)
    registry.add(**{name: getattr(smp_losses, name) for name in
                    ("DiceLoss", "JaccardLoss", "FocalLoss", "LovaszLoss", "SoftBCEWithLogitsLoss", "TverskyLoss")})
    registry.add(**model_factories())
