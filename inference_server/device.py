"""Where torch runs: the one reading of the --device option (auto, cpu, cuda, cuda:N)."""
from __future__ import annotations

import torch

from inference_server.errors import ModelError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """"auto" -> the GPU when there is one, else the CPU; a CUDA device without CUDA is refused."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {device} asked for, but CUDA is not available")
    return device


def autocast_enabled(precision: str, device: torch.device) -> bool:
    """Whether training runs the forward pass under bf16 autocast (weights and optimizer stay fp32).

    "auto": on CUDA only (a CPU run keeps fp32 unless asked); "bf16": on CUDA, and on a CPU
    whose oneDNN has native bf16 (AVX512-BF16 / AMX), where it is about 1.5-2x faster;
    elsewhere bf16 would be emulated and slower, so it is refused.
    """
    if precision not in ("auto", "fp32", "bf16"):
        raise ModelError(f"unknown precision {precision!r}; choose auto, fp32 or bf16")
    if precision == "fp32":
        return False
    if device.type == "cuda":
        return True
    if precision == "bf16":
        if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            raise ModelError("--precision bf16: this CPU has no native bf16 (AVX512-BF16 or AMX); use fp32")
        return True
    return False
