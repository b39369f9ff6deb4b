"""Write any Dataset as a HumanML3D folder: new_joints/*.npy (20 fps), texts/*.txt, split files.

Caption lines are `caption#word/POS word/POS ...#0.0#0.0` (every exported item is a whole
clip; cropped items were already cut). The tags come from a small rule-based tagger
(lexicon + suffixes, Universal POS tags, words lower-cased and roughly lemmatised like
HumanML3D's spaCy tokens): enough for the format and for readers that use the tokens
only as text. Items without captions get no text file (HumanML3D readers skip them).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from tqdm import tqdm

from inference_server.data import SPLITS, Dataset
from inference_server.errors import DataError

FPS = 20.0
_LEXICON = {
    "DET": "a an the this that these those each every some another".split(),
    "PRON": "he she it they them their his her its someone somebody person's themselves himself herself one".split(),
    "ADP": "with to in on of at into onto from toward towards over under around across through behind "
           "by up down off out like as near above below".split(),
    "CCONJ": "and or but".split(),
    "SCONJ": "while before after until because if when".split(),
    "ADV": "then forward forwards backward backwards back again slowly quickly fast away sideways "
           "first finally also very together twice once here there still".split(),
    "ADJ": "left right both other slow quick big small high low".split(),
    "AUX": "is are was were be been being do does did has have had can will".split(),
    "NUM": "one two three four five six seven eight nine ten".split(),
}
_TAG_OF = {word: tag for tag, words in _LEXICON.items() for word in words}
_NOUN_ENDINGS = ("hand", "hands", "arm", "arms", "leg", "legs", "foot", "feet", "head", "man", "woman", "person",
                 "body", "circle", "step", "steps", "chair", "floor", "ground", "kick", "punch", "jump", "squat",
                 "lunge", "bow", "fist", "air", "chest", "knee", "knees", "figure", "waist")
_IRREGULAR_LEMMAS = {"does": "do", "goes": "go", "feet": "foot", "is": "be", "are": "be", "was": "be",
                     "ran": "run", "sat": "sit", "stood": "stand", "took": "take", "threw": "throw"}


def tag_caption(text: str) -> str:
    """'a man walks forward.' -> 'a/DET man/NOUN walk/VERB forward/ADV ./PUNCT'."""
    tokens = re.findall(r"[A-Za-z']+|\d+|[^\sA-Za-z\d]", text)
    tagged = []
    for index, token in enumerate(tokens):
        word = token.lower()
        tag = _tag(word, tokens[index - 1].lower() if index else "")
        tagged.append(f"{_lemma(word, tag)}/{tag}")
    return " ".join(tagged)


def _tag(word: str, previous: str) -> str:
    if word in _TAG_OF:
        return _TAG_OF[word]
    if word.isdigit():
        return "NUM"
    if not word[0].isalpha():
        return "PUNCT"
    if word in _NOUN_ENDINGS or previous in _LEXICON["DET"] or previous in ("their", "his", "her", "its"):
        return "NOUN"
    if word.endswith("ly"):
        return "ADV"
    return "VERB" if word.endswith(("s", "ing", "ed")) else "NOUN"


def _lemma(word: str, tag: str) -> str:
    if word in _IRREGULAR_LEMMAS:
        return _IRREGULAR_LEMMAS[word]
    if tag == "VERB":
        for suffix, replacement in (("ies", "y"), ("shes", "sh"), ("ches", "ch"), ("sses", "ss"), ("s", "")):
            if word.endswith(suffix) and not word.endswith("ss") and len(word) > len(suffix) + 1:
                return word[: -len(suffix)] + replacement
    if tag == "NOUN" and word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


def file_stem(motion_id: str) -> str:
    """A motion id as a safe file name (BVH ids may hold folders: a/b -> a__b)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", motion_id.replace("/", "__"))


def export_humanml3d(dataset: Dataset, out: Path, progress: bool = False) -> dict:
    """Write the folder; returns {"motions", "captions", "splits"} of what was written."""
    out = Path(out)
    joints_dir, texts_dir = out / "new_joints", out / "texts"
    try:
        joints_dir.mkdir(parents=True, exist_ok=True)
        texts_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"{out}: cannot create the export folder ({error.strerror or error})") from None
    split_ids: dict[str, list[str]] = {name: [] for name in SPLITS}
    stems: set[str] = set()
    captions = 0
    for item in tqdm(dataset.items, desc="export", unit="motion", disable=not progress, leave=False):
        stem = file_stem(item.id)
        if stem in stems:
            raise DataError(f"{out}: two motions export to the same file name {stem!r}")
        stems.add(stem)
        positions = item.motion.resample(FPS).positions.astype(np.float32)
        np.save(joints_dir / f"{stem}.npy", positions, allow_pickle=False)
        if item.captions:
            lines = [f"{text.strip()}#{tag_caption(text)}#0.0#0.0" for text in item.captions]
            (texts_dir / f"{stem}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
            captions += len(item.captions)
        if item.split in split_ids:
            split_ids[item.split].append(stem)
    for name, ids in split_ids.items():
        (out / f"{name}.txt").write_text("".join(f"{stem}\n" for stem in ids), encoding="utf-8")
    (out / "all.txt").write_text("".join(f"{file_stem(item.id)}\n" for item in dataset.items), encoding="utf-8")
    return {"motions": len(dataset.items), "captions": captions,
            "splits": {name: len(ids) for name, ids in split_ids.items()}}
