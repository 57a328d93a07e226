"""The engine for this machine (``AutoEngine``, the default runtime's); the engines it picks from are Catalyst's,
patched in :mod:`carseg.compat.engines` (``fp16``/``bf16`` switches, CPU DDP metrics)."""
import torch
from catalyst import dl

from carseg.compat.engines import CPUEngine, DataParallelEngine, GPUEngine


class AutoEngine:
    """One GPU (or DataParallel over several) when CUDA is present, else CPU.

    ``fp16`` applies on GPU only (CPUs have no fast fp16); ``bf16`` on either. A class whose ``__new__``
    returns the chosen engine, because the config factory treats plain functions as partials.
    """

    def __new__(cls, fp16: bool = False, bf16: bool = False) -> dl.Engine:
        if not torch.cuda.is_available():
            return CPUEngine(bf16=bf16)
        if torch.cuda.device_count() > 1:
            return DataParallelEngine(fp16=fp16, bf16=bf16)
        return GPUEngine(fp16=fp16, bf16=bf16)
