"""ONNX export of a traced model, checked against eager PyTorch before it is written."""
import warnings
from pathlib import Path

import numpy as np
import torch

from carseg.atomic import atomic_path
from carseg.errors import CarsegError
from carseg.metadata import METADATA_FILE, ModelMetadata

ONNX_TOLERANCE = 1e-3  # logits; a difference this small does not move a 0.5 threshold visibly


def export_onnx(model: torch.nn.Module, example: torch.Tensor, check: torch.Tensor, out: Path, meta: ModelMetadata) -> Path:
    """Export with Catalyst's ``onnx_export`` (dynamic batch, height, width), store the metadata in the
    model's properties, and check onnxruntime against eager at another size."""
    import onnx
    import onnxruntime
    from catalyst.utils.onnx import onnx_export

    axes = {0: "batch", 2: "height", 3: "width"}
    with atomic_path(out) as tmp:  # renamed into place only once onnxruntime agrees with eager
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            onnx_export(model, example, str(tmp), input_names=["image"], output_names=["logits"],
                        dynamic_axes={"image": axes, "logits": axes}, opset_version=18, do_constant_folding=True)
        proto = onnx.load(str(tmp))
        onnx.helper.set_model_props(proto, {METADATA_FILE: meta.to_json()})
        onnx.save(proto, str(tmp))
        session = onnxruntime.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        with torch.no_grad():
            max_diff = float(np.abs(session.run(None, {"image": check.numpy()})[0] - model(check).numpy()).max())
        if max_diff > ONNX_TOLERANCE:
            raise CarsegError(f"{out}: ONNX and eager outputs differ by {max_diff:.2e} (> {ONNX_TOLERANCE}); use the TorchScript file")
    print(f"exported ONNX: max |onnxruntime - eager| = {max_diff:.2e} at {check.shape[2]}x{check.shape[3]} -> {out}")
    return out
