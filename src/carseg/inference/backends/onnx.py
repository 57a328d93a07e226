"""The ONNX backend: an ``.onnx`` file written by ``catalyst-dl trace --onnx``, run by onnxruntime."""
from pathlib import Path

import torch

from carseg.errors import CarsegError
from carseg.inference.backends.base import Backend
from carseg.metadata import METADATA_FILE, ModelMetadata


class Onnx(Backend):
    """Calls an onnxruntime session with a torch tensor and returns a torch tensor (CPU or CUDA provider)."""

    name = "onnx"
    suffixes = (".onnx",)

    def __init__(self, path: Path, device: str = "cpu"):
        import onnxruntime

        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
        try:
            options = onnxruntime.SessionOptions()
            # Idle intra-op threads sleep instead of spinning: the Predictor shares the cores with loader
            # workers and writer threads (CLI on 2 cores: 12.6 vs 8.5 images/s, benchmarks/README.md).
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self.session = onnxruntime.InferenceSession(str(path), options, providers=providers)
        except Exception:
            raise CarsegError(f"{path}: not a readable ONNX model; export one with catalyst-dl trace LOGDIR --onnx") from None
        meta = self.session.get_modelmeta().custom_metadata_map.get(METADATA_FILE)
        if not meta:
            raise CarsegError(f"{path}: ONNX file without carseg metadata; re-export it with catalyst-dl trace LOGDIR --onnx")
        self.metadata = ModelMetadata.from_json(meta, path)
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input_name: batch.detach().cpu().contiguous().numpy()})[0]
        return torch.from_numpy(out).to(batch.device)
