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


def contrastive_loss(scores: torch.Tensor, log_scale: torch.Tensor,
                     positives: torch.Tensor | None = None) -> torch.Tensor:
    """scores (B, B) text x motion, pair (i, i) matching -> 0.5 CE(t2m) + 0.5 CE(m2t).

    `positives` (B, B) bool, diagonal included, marks other pairs that match too (two takes
    of one labelled action): their probability mass counts as correct (multi-positive
    InfoNCE), so a batch holding two takes of "a tired person bows" does not teach the model
    to tell them apart."""
    logits = scores.float() * logit_scale_value(log_scale)
    if positives is None:
        target = torch.arange(scores.shape[0], device=scores.device)
        return 0.5 * F.cross_entropy(logits, target) + 0.5 * F.cross_entropy(logits.T, target)
    return 0.5 * _multi_positive(logits, positives) + 0.5 * _multi_positive(logits.T, positives.T)


def _multi_positive(logits: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """mean over rows of -log(sum of the softmax over the row's positive columns)."""
    matched = logits.masked_fill(~positives, float("-inf")).logsumexp(dim=1)
    return (logits.logsumexp(dim=1) - matched).mean()


def total_loss(contrastive: torch.Tensor, mlm: torch.Tensor | None, mlm_weight: float) -> torch.Tensor:
    return contrastive if mlm is None else contrastive + mlm_weight * mlm
