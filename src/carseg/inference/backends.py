"""Model backends: a ``catalyst-dl trace`` TorchScript file or its ONNX twin, each loaded into a callable
(NCHW float tensor in, tensor out) with its :class:`ModelMetadata`; ``load_model`` picks one."""
import warnings
from pathlib import Path
from typing import Any, Callable, Optional, Tuple

import torch

from carseg.errors import CarsegError
from carseg.metadata import METADATA_FILE, ModelMetadata

# The built-in model (trained on real photos, see its README.md): used when no model file is given.
BUILTIN_MODEL = Path(__file__).resolve().parents[1] / "builtin_model" / "carseg-real-r18-256x384.pth"
BACKENDS = ("auto", "torchscript", "onnx")


def load_traced(path: Path, device: str = "cpu") -> Tuple[torch.jit.ScriptModule, ModelMetadata]:
    """Load a ``catalyst-dl trace`` file and its metadata, or fail with one clear line."""
    path = Path(path)
    builtin = path.resolve() == BUILTIN_MODEL
    restore = (f"restore it with git checkout -- {BUILTIN_MODEL.relative_to(BUILTIN_MODEL.parents[3])} (or reinstall carseg), "
               f"or retrain it as {BUILTIN_MODEL.parent / 'README.md'} says")
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


def backend_for(path: Optional[Path], backend: str = "auto") -> str:
    """``auto`` -> ``onnx`` for a ``.onnx`` file, else ``torchscript`` (also for the built-in model, ``None``)."""
    if backend not in BACKENDS:
        raise CarsegError(f"--backend {backend}: choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        return "onnx" if path is not None and Path(path).suffix.lower() == ".onnx" else "torchscript"
    return backend


def load_model(path: Optional[Path], backend: str, device: str = "cpu") -> Tuple[Callable[[torch.Tensor], torch.Tensor], ModelMetadata]:
    """The model behind ``backend`` (``torchscript`` or ``onnx``; ``path`` None: the built-in model) and its
    metadata, or one clear error line."""
    path = BUILTIN_MODEL if path is None else Path(path)
    return load_onnx(path, device) if backend == "onnx" else load_traced(path, device)
