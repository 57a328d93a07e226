"""Engines: GPU when present, CPU otherwise, with an ``fp16`` switch that works on accelerate 0.34.

Catalyst 22.04's ``GPUEngine(fp16=True)`` passes ``fp16`` to ``accelerate.Accelerator``, which
accelerate >= 0.16 rejects (TypeError); here it becomes ``mixed_precision="fp16"``.
"""
import torch
from catalyst import dl


def _precision(fp16: bool, kwargs: dict) -> dict:
    if fp16:
        kwargs.setdefault("mixed_precision", "fp16")
    return kwargs


class GPUEngine(dl.GPUEngine):
    """Single-GPU engine; ``fp16=True`` trains with automatic mixed precision."""

    def __init__(self, *args, fp16: bool = False, **kwargs):
        super().__init__(*args, **_precision(fp16, kwargs))


class DataParallelEngine(dl.DataParallelEngine):
    """Multi-GPU DataParallel engine; ``fp16=True`` for mixed precision."""

    def __init__(self, *args, fp16: bool = False, **kwargs):
        super().__init__(*args, **_precision(fp16, kwargs))


class AutoEngine:
    """The engine for this machine: one GPU (or DataParallel over several) when CUDA is present, else CPU.

    ``fp16`` applies on GPU only; CPU training stays in fp32. A class whose ``__new__`` returns
    the chosen engine, because the config factory treats plain functions as partials.
    """

    def __new__(cls, fp16: bool = False) -> dl.Engine:
        if not torch.cuda.is_available():
            return dl.CPUEngine()
        if torch.cuda.device_count() > 1:
            return DataParallelEngine(fp16=fp16)
        return GPUEngine(fp16=fp16)
