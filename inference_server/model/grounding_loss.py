"""Side grounding: "left hand" must align to the left arm, "right leg" to the right leg.

MaxSim's alignment (a word's argmax patch) is what explain and the bone colours show, yet
the contrastive loss only asks that the whole caption score its clip highest: it is just as
happy when "left" and "hand" align to the pelvis. Where a caption names a side and a limb
("waves the left hand", "kicks with the right leg"), this loss asks each of the two words'
best patch per body part (max over time windows) to fall on that limb of that side: a
softmax over the 14 parts, the named limb's parts as the positives. Only words right next
to a limb word count, so "turns left" or "steps to the right" (directions) never do.
"""
from __future__ import annotations

import torch

from inference_server.jami import PART_NAMES, WINDOWS

SIDE_PREFIX = {"left": "l_", "right": "r_"}
ARM_WORDS = frozenset("hand hands arm arms fist fists wrist elbow shoulder".split())
LEG_WORDS = frozenset("leg legs foot feet knee ankle heel toe toes".split())
ARM_PARTS = ("shoulder", "elbow")
LEG_PARTS = ("hip", "knee", "ankle")
# a softness of cosine units: the per-part maxima of one word differ by a few tenths
SOFTNESS = 0.05


def limb_parts(side: str, limb_word: str) -> list[int]:
    """Part indices of `side`'s arm or leg (PART_NAMES order)."""
    names = ARM_PARTS if limb_word in ARM_WORDS else LEG_PARTS
    return [PART_NAMES.index(SIDE_PREFIX[side] + name) for name in names]


def grounding_targets(pieces: list[list[str]], valid: torch.Tensor) -> torch.Tensor:
    """Word pieces of every position (B rows of L) + the scored mask (B, L) -> (B, L, 14) bool:
    for a side word directly followed by a limb word, and for that limb word, the parts of
    that limb on that side; all False elsewhere."""
    targets = torch.zeros(*valid.shape, len(PART_NAMES), dtype=torch.bool)
    for row, words in enumerate(pieces):
        for col in range(len(words) - 1):
            side, limb = words[col].lower(), words[col + 1].lower()
            if side not in SIDE_PREFIX or limb not in ARM_WORDS | LEG_WORDS:
                continue
            for position in (col, col + 1):
                if valid[row, position]:
                    targets[row, position, limb_parts(side, limb)] = True
    return targets


def grounding_loss(text: torch.Tensor, motion: torch.Tensor, targets: torch.Tensor,
                   softness: float = SOFTNESS) -> torch.Tensor | None:
    """text (B, L, d), motion (B, P, d) of the matching pairs, targets (B, L, 14) bool ->
    mean over the grounded words of -log P(the named parts), None when no word is grounded."""
    rows, cols = targets.any(dim=2).nonzero(as_tuple=True)
    if len(rows) == 0:
        return None
    sims = torch.einsum("nd,npd->np", text[rows, cols].float(), motion[rows].float())
    per_part = sims.reshape(len(rows), WINDOWS, len(PART_NAMES)).amax(dim=1) / softness
    wanted = targets[rows, cols].to(per_part.device)
    matched = per_part.masked_fill(~wanted, float("-inf")).logsumexp(dim=1)
    return (per_part.logsumexp(dim=1) - matched).mean()
