"""The forward pass's number format: bfloat16 where the hardware runs it natively, float32 elsewhere.

bf16 autocast halves the general model's forward pass on a CPU with AVX-512 BF16 or AMX (2 cores: 41 -> 25 ms at
320x448) at the same quality (Dice on the real validation photos: studio 0.9911 fp32 / 0.9912 bf16, street 0.9473 /
0.9482, video 0.6145 / 0.6108; benchmarks/README.md). Without those instructions bf16 is emulated and slower, so
``auto`` keeps fp32 there.
"""
from pathlib import Path
from typing import Tuple

import torch

from carseg.errors import CarsegError

PRECISIONS = ("auto", "fp32", "bf16")
CPU_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}  # Linux /proc/cpuinfo names of the native bf16 instructions


def cpu_has_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU computes in bf16 natively (AVX-512 BF16 or AMX); False where it cannot be told."""
    try:
        flags = next((line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")), "")
    except OSError:
        return False
    return bool(CPU_BF16_FLAGS & set(flags.split()))


def choose_precision(precision: str, device: str, backend: str) -> Tuple[str, str]:
    """``precision`` (``auto``, ``fp32`` or ``bf16``) for a model on ``device`` run by ``backend`` -> the format used
    and why, or one error line when it cannot be had."""
    if precision not in PRECISIONS:
        raise CarsegError(f"--precision {precision}: choose one of {', '.join(PRECISIONS)}")
    if backend != "torchscript":
        if precision == "bf16":
            raise CarsegError(f"--precision bf16: the {backend} backend runs fp32 only; use --backend torchscript or --precision fp32")
        return "fp32", f"the {backend} backend runs fp32"
    if precision != "auto":
        return precision, "asked for"
    if device == "cuda":
        native = torch.cuda.is_bf16_supported()
        return ("bf16", "auto: the GPU runs bf16") if native else ("fp32", "auto: the GPU has no bf16")
    return ("bf16", "auto: the CPU has AVX-512 BF16 or AMX") if cpu_has_bf16() else ("fp32", "auto: the CPU has no native bf16")
