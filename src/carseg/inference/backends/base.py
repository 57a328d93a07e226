"""What every model backend is: a model file loaded into a callable (NCHW float tensor in, tensor out) with its
:class:`ModelMetadata`; and where the built-in models are."""
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar, Dict, Tuple, Union

import torch

from carseg.metadata import ModelMetadata

# The built-in models, each a traced file beside its model card (README.md), chosen by name; the first is the default.
BUILTIN_DIR = Path(__file__).resolve().parents[2] / "builtin_model"
BUILTIN_MODELS: Dict[str, Path] = {
    "general": BUILTIN_DIR / "general" / "carseg-general-lite0-336x448.pth",  # cars in any photo: studio, street, video
    "studio": BUILTIN_DIR / "studio" / "carseg-studio-r18-256x384.pth",       # studio turntable photos only
}
DEFAULT_MODEL = "general"


def model_path(model: Union[None, str, Path]) -> Path:
    """A built-in model's name (None: the default) or the path of a traced file -> the file."""
    if model is None or str(model) in BUILTIN_MODELS:
        return BUILTIN_MODELS[DEFAULT_MODEL if model is None else str(model)]
    return Path(model)


class Backend(ABC):
    """One model runtime. A subclass loads its kind of file in ``__init__`` (a bad file: one ``CarsegError`` line
    naming it and how to make a good one), sets ``metadata`` and runs batches in ``__call__``."""

    name: ClassVar[str]                     # its --backend value
    suffixes: ClassVar[Tuple[str, ...]] = ()  # model files --backend auto gives to it
    channels_last: ClassVar[bool] = False   # whether the Predictor should feed it NHWC memory
    metadata: ModelMetadata

    @abstractmethod
    def __init__(self, path: Path, device: str = "cpu"):
        """Load ``path`` to run on ``device`` (``cpu`` or ``cuda``)."""

    @abstractmethod
    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """An N x 3 x H x W float batch on the device -> the model's N x 1 x H x W output there."""
