"""Bandai-Namco Research motion datasets: BVH clips + content/style labels -> captions.

`bandai:DIR` where DIR is one dataset folder (data/*.bvh, data/*.json, cfg/content_label.txt,
cfg/style_label.txt) or a folder holding several of them (dataset-1, dataset-2-subset).
Licence of the data: CC BY-NC 4.0; captions derived from its labels inherit it.

Splits are deterministic: dataset-2 clips by take number (takes 1-3 train, 4 val,
5 test, repeating every 5 takes); dataset-1 (one take per label pair) by a CRC32 hash
of the file stem (70 / 15 / 15).
Side words in captions were checked on the clips (e.g. dataset-1 "bye" waves the right
hand in all 15 styles, "kick" kicks with the right leg).
"""
from __future__ import annotations

import json
import re
import zlib
from pathlib import Path

from inference_server.data import bvh
from inference_server.data.scan import scan_files
from inference_server.errors import DataError
from inference_server.motion import MotionItem

# content -> verb phrases (third person), most literal first
CONTENT_PHRASES: dict[str, list[str]] = {
    "walk": ["walks forward", "walks straight ahead", "is walking forward", "takes a walk"],
    "run": ["runs forward", "jogs forward", "is running", "runs straight ahead"],
    "dash": ["dashes forward", "sprints forward", "runs forward very fast", "makes a short sprint"],
    "walk-back": ["walks backwards", "walks backward", "steps backwards several times", "moves back while walking"],
    "walk-left": ["walks forward and to the left", "walks diagonally to the left", "walks toward the front left",
                  "walks ahead, drifting to the left"],
    "walk-right": ["walks forward and to the right", "walks diagonally to the right",
                   "walks toward the front right", "walks ahead, drifting to the right"],
    "walk-turn-left": ["walks and turns left", "walks forward, then turns to the left",
                       "makes a left turn while walking", "turns left as they walk"],
    "walk-turn-right": ["walks and turns right", "walks forward, then turns to the right",
                        "makes a right turn while walking", "turns right as they walk"],
    "bow": ["bows", "bows politely", "bends forward in a bow", "bows at the waist"],
    "bye": ["waves goodbye with the right hand", "waves bye with one hand", "waves a hand to say goodbye",
            "says goodbye, waving the right hand"],
    "byebye": ["waves goodbye with both hands", "waves both hands to say bye bye", "waves both arms goodbye",
               "says bye bye with both hands"],
    "guide": ["gestures with a hand to guide someone", "shows the way with an open hand",
              "guides someone with a hand gesture", "points the way with a hand"],
    "respond": ["raises a hand to respond", "raises the left hand to answer", "responds by raising a hand",
                "puts a hand up in reply"],
    "call": ["calls out to someone", "calls to someone far away", "shouts to call someone over",
             "calls someone with a gesture"],
    "punch": ["punches", "throws punches", "punches forward", "throws a few punches"],
    "kick": ["kicks with the right leg", "kicks", "does a kick with the right foot", "kicks forward"],
    "slash": ["slashes with a sword", "swings a sword", "makes slashing moves with both hands",
              "cuts through the air with a sword"],
    "dance-long": ["dances", "performs a dance", "dances for a long time", "does a dance routine"],
    "dance-short": ["dances", "performs a short dance", "does a dance routine", "dances around"],
    "wave-both-hands": ["waves both hands", "waves with both hands", "waves both arms", "waves with both arms"],
    "wave-left-hand": ["waves the left hand", "waves with the left hand", "waves their left hand",
                       "waves with the left arm"],
    "wave-right-hand": ["waves the right hand", "waves with the right hand", "waves their right hand",
                        "waves with the right arm"],
    "raise-up-both-hands": ["raises both hands", "lifts both arms up", "raises both hands up high",
                            "puts both hands up"],
    "raise-up-left-hand": ["raises the left hand", "lifts the left arm up", "puts the left hand up",
                           "raises their left hand high"],
    "raise-up-right-hand": ["raises the right hand", "lifts the right arm up", "puts the right hand up",
                            "raises their right hand high"],
}

# style -> (subjects that carry the style, manner phrases that carry it)
STYLE_PHRASES: dict[str, tuple[list[str], list[str]]] = {
    "normal": (["a person", "someone"], ["normally", "in an ordinary way"]),
    "happy": (["a happy person", "a cheerful person"], ["happily", "cheerfully"]),
    "sad": (["a sad person", "someone who is sad"], ["sadly", "with a sad, drooping posture"]),
    "angry": (["an angry person", "someone who is angry"], ["angrily", "in an angry way"]),
    "proud": (["a proud person", "someone proud"], ["proudly", "with a proud, upright posture"]),
    "not-confident": (["a shy person", "an unconfident person"], ["timidly", "without confidence"]),
    "masculinity": (["a masculine person", "a manly person"], ["in a masculine manner", "in a manly way"]),
    "masculine": (["a masculine person", "a manly person"], ["in a masculine manner", "in a manly way"]),
    "feminine": (["a feminine person", "someone feminine"], ["in a feminine manner", "in a feminine way"]),
    "childish": (["a childish person", "someone acting like a child"], ["childishly", "like a child"]),
    "old": (["an old person", "an elderly person"], ["like an old person", "slowly and stiffly"]),
    "elderly": (["an elderly person", "someone old"], ["like an elderly person", "slowly and stiffly"]),
    "tired": (["a tired person", "someone who is tired"], ["wearily", "in a tired way"]),
    "exhausted": (["an exhausted person", "someone worn out"], ["in an exhausted way", "wearily"]),
    "active": (["an energetic person", "a lively person"], ["energetically", "with a lot of energy"]),
    "musical": (["a theatrical person", "someone on a musical stage"],
                ["theatrically, like in a musical", "in an exaggerated musical style"]),
    "giant": (["a giant", "a huge, heavy person"], ["like a giant, with heavy steps", "heavily, like a giant"]),
    "chimpira": (["a thug", "a street punk"], ["like a thug", "with a swaggering, thuggish attitude"]),
    "youthful": (["a young person", "a youthful person"], ["youthfully", "in a youthful, bouncy way"]),
}
NEUTRAL_SUBJECTS = ["a person", "someone", "the person", "a human"]
_STEM = re.compile(r"^(dataset-\d+)_(.+)_([a-z-]+)_(\d+)$")


def captions_for(content: str, style: str, key: str) -> list[str]:
    """4 varied captions for a label pair; `key` (the file stem) picks the variants."""
    if content not in CONTENT_PHRASES or style not in STYLE_PHRASES:
        raise DataError(f"no caption phrases for content {content!r} / style {style!r}")
    phrases = CONTENT_PHRASES[content]
    styled_subjects, manners = STYLE_PHRASES[style]
    pick = zlib.crc32(key.encode())
    neutral = NEUTRAL_SUBJECTS[pick % len(NEUTRAL_SUBJECTS)]
    other = NEUTRAL_SUBJECTS[(pick + 1) % len(NEUTRAL_SUBJECTS)]
    captions = [
        f"{styled_subjects[pick % 2]} {phrases[pick % len(phrases)]}",
        f"{neutral} {phrases[0]} {manners[pick % 2]}",  # the plainest phrase takes the manner words
        f"{other} {phrases[(pick + 2) % len(phrases)]}",
        f"{styled_subjects[(pick + 1) % 2]} {phrases[(pick + 3) % len(phrases)]}",
    ]
    return list(dict.fromkeys(captions))  # drop exact repeats, keep order


def split_for(dataset: str, stem: str, take: int) -> str:
    if dataset == "dataset-1":
        bucket = zlib.crc32(stem.encode()) % 100
        return "train" if bucket < 70 else "val" if bucket < 85 else "test"
    position = (take - 1) % 5
    return "train" if position < 3 else "val" if position == 3 else "test"


def dataset_folders(root: Path) -> list[Path]:
    """The dataset folders at or directly below root (each with cfg/ and data/)."""
    if (root / "cfg" / "content_label.txt").is_file():
        return [root]
    folders = sorted(child for child in root.iterdir() if (child / "cfg" / "content_label.txt").is_file()) \
        if root.is_dir() else []
    if not folders:
        raise DataError(f"{root}: not a Bandai-Namco dataset folder (no cfg/content_label.txt here or one level down)")
    return folders


def read_labels(path: Path) -> list[str]:
    """cfg/*_label.txt: one 'dataset-N_name' per line; the line number is the JSON id."""
    if not path.is_file():
        raise DataError(f"{path}: label file not found")
    return [re.sub(r"^dataset-\d+_", "", line.strip())
            for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def clip_labels(bvh_path: Path, contents: list[str], styles: list[str]) -> tuple[str, str, str, int]:
    """(dataset, content, style, take) from the clip's JSON ids, checked against its file name."""
    match = _STEM.match(bvh_path.stem)
    if not match:
        raise DataError(f"{bvh_path}: file name is not dataset-N_content_style_take")
    dataset, content, style, take = match.group(1), match.group(2), match.group(3), int(match.group(4))
    json_path = bvh_path.with_suffix(".json")
    if json_path.is_file():
        try:
            ids = json.loads(json_path.read_text(encoding="utf-8"))
            content, style = contents[int(ids["content"])], styles[int(ids["style"])]
        except (ValueError, KeyError, IndexError, TypeError) as error:
            raise DataError(f"{json_path}: bad label file ({error})") from None
    return dataset, content, style, take


def read_folder_item(bvh_path: Path, contents: list[str], styles: list[str]) -> MotionItem:
    dataset, content, style, take = clip_labels(bvh_path, contents, styles)
    item = bvh.read_item(bvh_path)
    item.name = f"{content} ({style}) #{take}"
    item.captions = captions_for(content, style, bvh_path.stem) + item.captions
    item.split = split_for(dataset, bvh_path.stem, take)
    item.labels = {"content": content, "style": style, "dataset": dataset, "take": take, "rig": item.labels["rig"]}
    return item


def scan(arg: str | None, progress: bool = False):
    if not arg:
        raise DataError("bandai: needs a folder, e.g. bandai:../shared/data/bandai-namco")
    items, skipped = [], []
    for folder in dataset_folders(Path(arg)):
        contents = read_labels(folder / "cfg" / "content_label.txt")
        styles = read_labels(folder / "cfg" / "style_label.txt")
        paths = sorted((folder / "data").glob("*.bvh"))
        found, bad = scan_files(paths, lambda p: read_folder_item(p, contents, styles), progress, folder.name)
        items += found
        skipped += bad
    return items, skipped
