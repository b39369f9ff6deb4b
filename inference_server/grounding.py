"""Word grounding on real clips: do a query's side and limb words align to that side's body?

What the bone colours show an artist is each word's argmax patch (MaxSim's alignment). For
the Bandai clips whose action has a side (wave / raise the left or right hand, dataset-1's
"bye" with the right hand, "respond" with the left, "kick" with the right leg), and for their
mirrored copies (the side swapped), the query "a person <phrase>" names the side and the limb;
the check is whether "left"/"right" and "hand"/"arm"/"leg" each align to a patch of a body part
of that side (l_* or r_* in jami.PART_NAMES). Chance: 5 of the 14 parts are on each side.
"""
from __future__ import annotations

import numpy as np

from inference_server.jami import LAYOUT, PART_NAMES
from inference_server.motion import mirror_caption

# content -> (side, limb, query phrase); sides checked on the clips (see data/bandai.py)
SIDED_CONTENTS = {
    "wave-left-hand": ("left", "hand", "waves the left hand"),
    "wave-right-hand": ("right", "hand", "waves the right hand"),
    "raise-up-left-hand": ("left", "hand", "raises the left hand"),
    "raise-up-right-hand": ("right", "hand", "raises the right hand"),
    "bye": ("right", "hand", "waves goodbye with the right hand"),
    "respond": ("left", "hand", "raises the left hand to respond"),
    "kick": ("right", "leg", "kicks with the right leg"),
}
OTHER_SIDE = {"left": "right", "right": "left"}
SIDE_PARTS = {side: [i for i, name in enumerate(PART_NAMES) if name.startswith(side[0] + "_")]
              for side in ("left", "right")}
CHANCE = 100.0 * len(SIDE_PARTS["left"]) / len(PART_NAMES)


def grounding_cases(items) -> list[tuple[object, str, str, str]]:
    """(motion, query, side, limb) for every sided clip and its mirror."""
    cases = []
    for item in items:
        entry = SIDED_CONTENTS.get((item.labels or {}).get("content"))
        if entry is None:
            continue
        side, limb, phrase = entry
        query = f"a person {phrase}"
        cases.append((item.motion, query, side, limb))
        cases.append((item.motion.mirrored(), mirror_caption(query), OTHER_SIDE[side], limb))
    return cases


def word_parts(retriever, motions, queries) -> list[dict[str, int]]:
    """For each (motion, query): word -> body-part index of its argmax patch (whole words only)."""
    patches = retriever.embed_motions(motions)
    texts = retriever.embed_texts(queries)
    found = []
    for text, doc in zip(texts, patches):
        best_patch = (text.vectors @ doc.T).argmax(axis=1)
        found.append({token: LAYOUT.part(int(patch)) for token, patch in zip(text.tokens, best_patch)})
    return found


def side_grounding(retriever, items) -> dict:
    """% of sided clips whose side word / limb word / both align to a part of the named side."""
    cases = grounding_cases(items)
    if not cases:
        return {"clips": 0}
    aligned = word_parts(retriever, [case[0] for case in cases], [case[1] for case in cases])
    side_hits, limb_hits, both = [], [], []
    for (_, _, side, limb), parts in zip(cases, aligned):
        on_side = SIDE_PARTS[side]
        side_ok = parts.get(side) in on_side
        limb_ok = parts.get(limb) in on_side
        side_hits.append(side_ok)
        limb_hits.append(limb_ok)
        both.append(side_ok and limb_ok)
    return {"clips": len(cases), "side_word": 100.0 * float(np.mean(side_hits)),
            "limb_word": 100.0 * float(np.mean(limb_hits)), "both": 100.0 * float(np.mean(both)),
            "chance_per_word": CHANCE, "chance_both": CHANCE ** 2 / 100.0}
