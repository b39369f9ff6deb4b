"""Training objective: symmetric InfoNCE over the batch score matrix + 0.2 x masked-LM loss."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MAX_LOGIT_SCALE = math.log(100.0)   # the temperature never goes below 0.01


def initial_log_scale(temperature: float) -> float:
    """The learnable log scale's starting value for an initial temperature in [0.01, 1]."""
    if not 0.01 <= temperature <= 1.0:
        raise ValueError(f"initial temperature {temperature} is outside [0.01, 1] (the scale is capped at 100)")
    return math.log(1 / temperature)


def logit_scale_value(log_scale: torch.Tensor) -> torch.Tensor:
    """exp of the learnable log scale, capped at 100."""
    return log_scale.clamp(max=MAX_LOGIT_SCALE).exp()


def contrastive_loss(scores: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """scores (B, B) text x motion, pair (i, i) matching -> 0.5 CE(t2m) + 0.5 CE(m2t)."""
    logits = scores.float() * logit_scale_value(log_scale)
    target = torch.arange(scores.shape[0], device=scores.device)
    return 0.5 * F.cross_entropy(logits, target) + 0.5 * F.cross_entropy(logits.T, target)


def total_loss(contrastive: torch.Tensor, mlm: torch.Tensor | None, mlm_weight: float) -> torch.Tensor:
    return contrastive if mlm is None else contrastive + mlm_weight * mlm
