"""``catalyst-dl trace``: rebuild the model from LOGDIR/configs, load a checkpoint, trace, save with metadata."""
import copy
import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import torch
from catalyst.utils import trace_model

from carseg.config import MERGED_CONFIG, load_configs, train_calls
from carseg.data.transforms import IMAGENET_MEAN, IMAGENET_STD, as_hw
from carseg.errors import CarsegError
from carseg.export.onnx import export_onnx
from carseg.metadata import ModelMetadata, save_traced
from carseg.registry import registry


def build_model(config: Dict[str, Any], source: Path) -> torch.nn.Module:
    """Instantiate the config's top-level ``model:`` without downloading pretrained weights."""
    if not isinstance(config.get("model"), dict):
        raise CarsegError(f"{source}: no top-level 'model:' section to rebuild the model from")
    params = copy.deepcopy(config["model"])
    params.pop("_var_", None)
    if "encoder_weights" in params:
        params["encoder_weights"] = None  # the checkpoint holds the trained weights
    return registry().get_from_params(**params)


def find_checkpoint(logdir: Path, checkpoint: str) -> Path:
    """``best``/``last`` -> LOGDIR/checkpoints/model.{best,last}.pth, or a path as given."""
    path = logdir / "checkpoints" / f"model.{checkpoint}.pth" if checkpoint in ("best", "last") else Path(checkpoint)
    if not path.is_file():
        raise CarsegError(f"{path}: checkpoint not found; train first with catalyst-dl run, or pass --checkpoint PATH")
    return path


def load_weights(model: torch.nn.Module, path: Path) -> None:
    """Load a Catalyst checkpoint (a state dict, or a dict holding ``model_state_dict``)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CarsegError(f"{path}: not a readable checkpoint ({type(exc).__name__}); pick another with --checkpoint") from exc
    state = state.get("model_state_dict", state) if isinstance(state, dict) else state
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise CarsegError(f"{path}: weights do not fit the model in the logdir's config; was it trained with another config?") from exc


def metadata(config: Dict[str, Any], model: torch.nn.Module, image_hw: Sequence[int], checkpoint: Path) -> ModelMetadata:
    """Everything the Predictor needs besides the weights, from the logdir's config and the model it builds:
    normalisation, the threshold validation Dice was measured at, and the network's stride."""
    experiment = config.get("experiment", {})
    dice = [c for entry in train_calls(config) for c in entry.get("callbacks", {}).values()
            if isinstance(c, dict) and c.get("_target_") == "DiceCallback" and c.get("threshold") is not None]
    stride = getattr(getattr(model, "encoder", None), "output_stride", None) or getattr(model, "size_divisor", 32)
    return ModelMetadata(model=config["model"].get("_target_"), image_size=tuple(image_hw),
                         mean=tuple(experiment.get("mean", IMAGENET_MEAN)), std=tuple(experiment.get("std", IMAGENET_STD)),
                         threshold=float(dice[0]["threshold"]) if dice else 0.5, size_divisor=int(stride),
                         checkpoint=str(checkpoint))


def trace_logdir(logdir: Path, checkpoint: str = "best", image_size: Optional[Sequence[int]] = None,
                 device: str = "cpu", out: Optional[Path] = None, onnx: bool = False) -> Path:
    """Trace LOGDIR's model and write ``LOGDIR/trace/traced-<checkpoint>-forward.pth`` (or ``out``).

    With ``onnx``, also export ``<same name>.onnx`` beside it (same metadata, dynamic batch and size).
    """
    logdir = Path(logdir)
    config_path = logdir / "configs" / MERGED_CONFIG
    if not config_path.is_file():
        raise CarsegError(f"{config_path}: not found; is {logdir} a logdir written by catalyst-dl run?")
    if device == "cuda" and not torch.cuda.is_available():
        raise CarsegError("--device cuda: no CUDA device here; use --device cpu (the traced file runs on both)")
    config = load_configs([config_path])
    model = build_model(config, config_path)
    weights = find_checkpoint(logdir, checkpoint)
    load_weights(model, weights)
    model = model.to(device).eval()

    image_hw = as_hw(image_size or config.get("experiment", {}).get("image_size", (256, 384)))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", FutureWarning)  # torch 2.15 marks TorchScript deprecated; it still works
        example = torch.randn(1, 3, *image_hw, device=device)
        traced = trace_model(model, example)
        # Other sizes must work too: the Predictor feeds each photo at its own aspect ratio.
        check = torch.randn(2, 3, image_hw[0] + 32, image_hw[1] + 64, device=device)
        max_diff = max((traced(x) - model(x)).abs().max().item() for x in (example, check))
    if max_diff > 1e-3:
        raise CarsegError(f"{weights}: traced and eager outputs differ by {max_diff:.2e}; the model is not traceable as is")

    name = "best" if checkpoint == "best" else ("last" if checkpoint == "last" else Path(checkpoint).stem)
    out = Path(out) if out else logdir / "trace" / f"traced-{name}-forward.pth"
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = metadata(config, model, image_hw, weights)
    save_traced(traced.cpu(), out, meta)
    print(f"traced {meta.model} from {weights} at {image_hw[0]}x{image_hw[1]}: "
          f"max |traced - eager| = {max_diff:.2e} -> {out}")
    if onnx:
        export_onnx(model.cpu(), example.cpu(), check.cpu(), out.with_suffix(".onnx"), meta)
    return out
