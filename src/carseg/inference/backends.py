"""Model backends: a ``catalyst-dl trace`` TorchScript file or its ONNX twin, each loaded into a callable
(NCHW float tensor in, tensor out) with its :class:`ModelMetadata`; ``load_model`` picks one."""
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple, Union

import torch

from carseg.errors import CarsegError
from carseg.metadata import METADATA_FILE, ModelMetadata

# The built-in models, each a traced file beside its model card (README.md), chosen by name; the first is the default.
BUILTIN_DIR = Path(__file__).resolve().parents[1] / "builtin_model"
BUILTIN_MODELS: Dict[str, Path] = {
    "general": BUILTIN_DIR / "general" / "carseg-general-lite0-336x448.pth",  # cars in any photo: studio, street, video
    "studio": BUILTIN_DIR / "studio" / "carseg-studio-r18-256x384.pth",       # studio turntable photos only
}
DEFAULT_MODEL = "general"
BACKENDS = ("auto", "torchscript", "onnx")


def model_path(model: Union[None, str, Path]) -> Path:
    """A built-in model's name (None: the default) or the path of a traced file -> the file."""
    if model is None or str(model) in BUILTIN_MODELS:
        return BUILTIN_MODELS[DEFAULT_MODEL if model is None else str(model)]
    return Path(model)


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


class OnnxModel:
    """Calls an onnxruntime session with a torch tensor and returns a torch tensor (CPU or CUDA provider)."""

    def __init__(self, session: Any):
        self.session = session
        self.input_name = session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input_name: x.detach().cpu().contiguous().numpy()})[0]
        return torch.from_numpy(out).to(x.device)


def load_onnx(path: Path, device: str = "cpu") -> Tuple[OnnxModel, ModelMetadata]:
    """Load an ``.onnx`` file written by ``catalyst-dl trace --onnx`` and its metadata."""
    import onnxruntime

    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
    try:
        options = onnxruntime.SessionOptions()
        # Idle intra-op threads sleep instead of spinning: the Predictor shares the cores with loader
        # workers and writer threads (CLI on 2 cores: 12.6 vs 8.5 images/s, benchmarks/README.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = onnxruntime.InferenceSession(str(path), options, providers=providers)
    except Exception:
        raise CarsegError(f"{path}: not a readable ONNX model; export one with catalyst-dl trace LOGDIR --onnx") from None
    meta = session.get_modelmeta().custom_metadata_map.get(METADATA_FILE)
    if not meta:
        raise CarsegError(f"{path}: ONNX file without carseg metadata; re-export it with catalyst-dl trace LOGDIR --onnx")
    return OnnxModel(session), ModelMetadata.from_json(meta, path)


def backend_for(path: Union[None, str, Path], backend: str = "auto") -> str:
    """``auto`` -> ``onnx`` for a ``.onnx`` file, else ``torchscript`` (also for the built-in models)."""
    if backend not in BACKENDS:
        raise CarsegError(f"--backend {backend}: choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        return "onnx" if path is not None and Path(path).suffix.lower() == ".onnx" else "torchscript"
    return backend


def load_model(model: Union[None, str, Path], backend: str, device: str = "cpu"
               ) -> Tuple[Callable[[torch.Tensor], torch.Tensor], ModelMetadata]:
    """The model behind ``backend`` (``torchscript`` or ``onnx``; ``model``: a path, a built-in model's name, None for
    the default) and its metadata, or one clear error line."""
    path = model_path(model)
    return load_onnx(path, device) if backend == "onnx" else load_traced(path, device)
