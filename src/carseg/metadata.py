"""The traced model's metadata: one versioned type, written by export and checked by both backends."""
import dataclasses
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Tuple

import torch

from carseg.atomic import atomic_path
from carseg.errors import CarsegError

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the default normalisation (ImageNet's), here so inference needs no
IMAGENET_STD = (0.229, 0.224, 0.225)   # albumentations (carseg.data.transforms takes them from here)
FORMAT = "carseg-traced-v1"  # bump when a field changes meaning; older or newer files are refused by name
METADATA_FILE = "carseg.json"  # inside the TorchScript archive (_extra_files) and the ONNX model's properties


@dataclass(frozen=True)
class ModelMetadata:
    """Everything the Predictor needs besides the weights: how to preprocess and how to read the output."""

    model: str
    image_size: Tuple[int, int]  # (height, width) the network was trained at
    mean: Tuple[float, float, float] = IMAGENET_MEAN
    std: Tuple[float, float, float] = IMAGENET_STD
    output: str = "logits"  # or "probabilities"
    threshold: float = 0.5
    size_divisor: int = 32  # input sides must be multiples of the network's stride
    checkpoint: str = ""
    format: str = FORMAT

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str, source: Path) -> "ModelMetadata":
        """Parse and validate, or fail with one line naming ``source`` and what to do."""
        redo = "re-export it with catalyst-dl trace LOGDIR"
        try:
            fields: Dict[str, Any] = json.loads(text)
        except ValueError:
            raise CarsegError(f"{source}: its carseg metadata is not valid JSON; {redo}") from None
        version = fields.get("format") if isinstance(fields, dict) else None
        if version != FORMAT:
            raise CarsegError(f"{source}: written by another carseg version (metadata format {version!r}, this carseg "
                              f"reads {FORMAT!r}); {redo} with this version, or use the carseg that wrote it")
        known = {f.name for f in dataclasses.fields(cls)}
        try:
            meta = cls(**{k: v for k, v in fields.items() if k in known})
            meta = dataclasses.replace(meta, image_size=tuple(int(v) for v in meta.image_size),
                                       mean=tuple(map(float, meta.mean)), std=tuple(map(float, meta.std)))
        except (TypeError, ValueError):
            raise CarsegError(f"{source}: incomplete carseg metadata (needs {', '.join(sorted(known))}); {redo}") from None
        if len(meta.image_size) != 2 or meta.output not in ("logits", "probabilities") or meta.size_divisor < 1:
            raise CarsegError(f"{source}: inconsistent carseg metadata ({meta}); {redo}")
        return meta


def save_traced(traced: torch.jit.ScriptModule, path: Path, meta: ModelMetadata) -> Path:
    """Write a TorchScript file with its metadata inside, atomically."""
    with warnings.catch_warnings(), atomic_path(Path(path)) as tmp:
        warnings.simplefilter("ignore", FutureWarning)  # torch 2.15 marks TorchScript deprecated; it still works
        torch.jit.save(traced, str(tmp), _extra_files={METADATA_FILE: meta.to_json()})
    return Path(path)
