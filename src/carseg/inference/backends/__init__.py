"""Model backends, one module each, behind one base class (:class:`Backend`): ``load_model`` picks one by name or
by the file's suffix. A new backend is a module with a ``Backend`` subclass and its entry in ``BACKENDS``."""
from pathlib import Path
from typing import Dict, Type, Union

from carseg.errors import CarsegError
from carseg.inference.backends.base import BUILTIN_DIR, BUILTIN_MODELS, DEFAULT_MODEL, Backend, model_path
from carseg.inference.backends.onnx import Onnx
from carseg.inference.backends.torchscript import TorchScript, load_traced

BACKENDS: Dict[str, Type[Backend]] = {backend.name: backend for backend in (TorchScript, Onnx)}  # the first: auto's fallback

__all__ = ["BACKENDS", "BUILTIN_DIR", "BUILTIN_MODELS", "DEFAULT_MODEL", "Backend", "backend_for", "load_model",
           "load_traced", "model_path"]


def backend_for(path: Union[None, str, Path], backend: str = "auto") -> str:
    """``auto`` -> the backend whose suffixes include the file's (``onnx`` for ``.onnx``), else ``torchscript`` (also
    for the built-in models)."""
    if backend != "auto" and backend not in BACKENDS:
        raise CarsegError(f"--backend {backend}: choose one of auto, {', '.join(BACKENDS)}")
    if backend == "auto":
        suffix = "" if path is None else Path(path).suffix.lower()
        return next((name for name, kind in BACKENDS.items() if suffix in kind.suffixes), next(iter(BACKENDS)))
    return backend


def load_model(model: Union[None, str, Path], backend: str, device: str = "cpu") -> Backend:
    """The model (a path, a built-in model's name, None for the default) loaded by ``backend`` (a name in
    ``BACKENDS``), or one clear error line."""
    return BACKENDS[backend](model_path(model), device)
