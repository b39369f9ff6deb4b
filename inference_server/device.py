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
