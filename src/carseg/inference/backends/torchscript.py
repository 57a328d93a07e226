"""The TorchScript backend: the ``.pth`` file ``catalyst-dl trace`` writes, its metadata inside."""
import os
import warnings
from pathlib import Path
from typing import Tuple

import torch

from carseg.errors import CarsegError
from carseg.inference.backends.base import BUILTIN_DIR, BUILTIN_MODELS, Backend
from carseg.metadata import METADATA_FILE, ModelMetadata


def load_traced(path: Path, device: str = "cpu") -> Tuple[torch.jit.ScriptModule, ModelMetadata]:
    """Load a ``catalyst-dl trace`` file and its metadata, or fail with one clear line."""
    path = Path(path)
    builtin = path.resolve() in {p.resolve() for p in BUILTIN_MODELS.values()}
    restore = (f"restore it with git checkout -- {os.path.relpath(path.resolve(), BUILTIN_DIR.parents[2])} "
               f"(or reinstall carseg), or retrain it as {path.parent / 'README.md'} says")
    if not path.is_file():
        raise CarsegError(f"{path}: carseg's built-in model is missing; {restore}" if builtin
                          else f"{path}: model file not found; create it with catalyst-dl trace LOGDIR")
    extra = {METADATA_FILE: ""}
    try:
        with warnings.catch_warnings():  # torch 2.15 marks TorchScript deprecated; it still works
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    except Exception:
        if builtin:
            raise CarsegError(f"{path}: carseg's built-in model is damaged; {restore}") from None
        if _is_checkpoint(path):
            raise CarsegError(f"{path}: is a training checkpoint, not a traced model; run catalyst-dl trace LOGDIR "
                              "and pass LOGDIR/trace/traced-best-forward.pth") from None
        raise CarsegError(f"{path}: not a TorchScript model file; create one with catalyst-dl trace LOGDIR") from None
    if not extra[METADATA_FILE]:
        raise CarsegError(f"{path}: TorchScript file without carseg metadata; re-export it with catalyst-dl trace LOGDIR")
    return module.eval(), ModelMetadata.from_json(extra[METADATA_FILE], path)


def _is_checkpoint(path: Path) -> bool:
    try:
        return isinstance(torch.load(path, map_location="cpu", weights_only=True), dict)
    except Exception:
        return False


class TorchScript(Backend):
    """A traced module run by PyTorch (also the built-in models)."""

    name = "torchscript"
    suffixes = (".pth", ".pt")
    channels_last = True  # oneDNN convolutions: ~20-25% faster on NHWC input on CPU (benchmarks/README.md); cuDNN bf16 too

    def __init__(self, path: Path, device: str = "cpu"):
        self.module, self.metadata = load_traced(path, device)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return self.module(batch)
