"""Minimal pairs of synthetic clips for fine-grained evaluation.

Each pair is two clips made with the same body and timings that differ in one detail only:
- side: the left and the right version of an action ("waves the left hand" / "... right hand"),
  alone or on top of a gait;
- order: A then B against B then A ("walks forward, then jumps" / "jumps, then walks forward").
A model understands the detail when each caption scores its own clip above the twin (and each
clip its own caption above the twin's): chance is 50 %. Unlike R@10 over a pool, this does not
saturate when the pool is small, and it isolates exactly what token-patch matching is for.
"""
from __future__ import annotations

import itertools

import numpy as np

from inference_server.data.synthetic import motion_for
from inference_server.data.synthetic_actions import LIBRARY
from inference_server.motion import MotionItem

SUBJECT = "a person"
GAITS = ("walk", "jog")
# one-segment actions that read clearly in either order (no sitting down: it only ends a clip)
ORDER_ACTIONS = ("walk", "jog", "walk_backwards", "bow", "squat", "jump", "clap", "wave_both", "raise_both",
                 "wave_left", "punch_right", "kick_left", "sidestep_right", "turn_left", "stand")


def side_keys() -> list[tuple[str, str]]:
    """(left key, right key) of every sided action, plus each sided arm action while walking or jogging."""
    pairs = [(key, key[:-len("left")] + "right") for key in LIBRARY if key.endswith("_left")]
    on_gaits = [(f"{left}+{gait}", f"{right}+{gait}") for left, right in pairs if LIBRARY[left].kind == "arms"
                for gait in GAITS]
    return pairs + on_gaits


def _phrase(key: str) -> str:
    actions = [LIBRARY[name] for name in key.split("+")]
    if len(actions) == 1:
        return actions[0].phrases[0]
    arm, gait = actions
    return f"{arm.phrases[0]} while {gait.gerunds[0]}"


def _item(kind: str, number: int, keys: list[str], seed: int) -> MotionItem:
    caption = f"{SUBJECT} " + ", then ".join(_phrase(key) for key in keys)
    return MotionItem(id=f"contrast_{kind}_{number:04d}", name=", then ".join(keys),
                      motion=motion_for(keys, seed=seed), captions=[caption], source=f"contrast:{kind}:{seed}",
                      split="test", labels={"kind": kind, "actions": keys, "seed": seed})


def contrast_pairs(seeds: int = 3, order_pairs: int = 40, seed: int = 1000) -> list[tuple[MotionItem, MotionItem]]:
    """side pairs for every body seed in seed..seed+seeds-1, then `order_pairs` random order pairs."""
    pairs = []
    for body in range(seed, seed + seeds):
        for left, right in side_keys():
            number = len(pairs)
            pairs.append((_item("side", 2 * number, [left], body), _item("side", 2 * number + 1, [right], body)))
    rng = np.random.default_rng([seed])
    combos = list(itertools.combinations(ORDER_ACTIONS, 2))
    for index in rng.choice(len(combos), size=min(order_pairs, len(combos)), replace=False):
        first, second = combos[int(index)]
        body, number = seed + int(rng.integers(seeds)), len(pairs)
        pairs.append((_item("order", 2 * number, [first, second], body),
                      _item("order", 2 * number + 1, [second, first], body)))
    return pairs


def pair_accuracy(scores: np.ndarray, kinds: list[str]) -> dict:
    """scores (2P, 2P) of captions x motions for items laid out pair by pair (2p, 2p + 1)
    -> {kind: {"t2m": %, "m2t": %, "pairs": P}}; a tie counts half."""
    def wins(own: np.ndarray, twin: np.ndarray) -> np.ndarray:
        return (own > twin) + 0.5 * (own == twin)

    first, second = np.arange(0, len(scores), 2), np.arange(1, len(scores), 2)
    t2m = (wins(scores[first, first], scores[first, second]) + wins(scores[second, second], scores[second, first])) / 2
    m2t = (wins(scores[first, first], scores[second, first]) + wins(scores[second, second], scores[first, second])) / 2
    kinds_array = np.array(kinds)
    result = {}
    for kind in dict.fromkeys(kinds):
        chosen = kinds_array == kind
        result[kind] = {"t2m": round(100 * float(t2m[chosen].mean()), 2),
                        "m2t": round(100 * float(m2t[chosen].mean()), 2), "pairs": int(chosen.sum())}
    return result
