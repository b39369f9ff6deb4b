"""Bandai-Namco reader: labels -> captions, deterministic splits, folder layouts."""
import collections
from pathlib import Path

import pytest

from inference_server.data import load_spec
from inference_server.data.bandai import CONTENT_PHRASES, STYLE_PHRASES, captions_for, read_labels, split_for


def link_subset(source: Path, target: Path, stems: list[str]) -> Path:
    """A dataset folder holding only some clips (symlinks, nothing copied)."""
    (target / "data").mkdir(parents=True)
    (target / "cfg").symlink_to(source / "cfg")
    for stem in stems:
        for suffix in (".bvh", ".json"):
            (target / "data" / f"{stem}{suffix}").symlink_to(source / "data" / f"{stem}{suffix}")
    return target


@pytest.fixture(scope="module")
def small_root(bandai_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("bandai")
    takes = [f"dataset-2_wave-left-hand_elderly_{take:03d}" for take in range(1, 6)]
    link_subset(bandai_root / "dataset-2-subset", root / "dataset-2-subset", takes)
    link_subset(bandai_root / "dataset-1", root / "dataset-1",
                ["dataset-1_bye_old_001", "dataset-1_walk-back_happy_001"])
    return root


def test_every_label_of_both_datasets_has_captions(bandai_root):
    for dataset in ("dataset-1", "dataset-2-subset"):
        contents = read_labels(bandai_root / dataset / "cfg" / "content_label.txt")
        styles = read_labels(bandai_root / dataset / "cfg" / "style_label.txt")
        assert len(contents) >= 10 and len(styles) >= 7
        for content in contents:
            for style in styles:
                captions = captions_for(content, style, f"{content}_{style}")
                assert len(captions) >= 3 and len(set(captions)) == len(captions)


def test_captions_name_the_action_and_style():
    captions = captions_for("wave-left-hand", "elderly", "dataset-2_wave-left-hand_elderly_001")
    assert all("left" in text for text in captions)
    assert all("right" not in text for text in captions)
    assert any("elderly" in text or "old" in text or "stiffly" in text for text in captions)
    assert captions == captions_for("wave-left-hand", "elderly", "dataset-2_wave-left-hand_elderly_001")
    assert set(CONTENT_PHRASES) >= {"walk-turn-left", "raise-up-right-hand", "byebye", "dance-long"}
    assert set(STYLE_PHRASES) >= {"chimpira", "giant", "not-confident", "youthful", "exhausted"}


def test_scan_of_a_root_with_two_datasets(small_root):
    dataset = load_spec(f"bandai:{small_root}")
    assert dataset.skipped == []
    by_id = {item.id: item for item in dataset.items}
    assert len(by_id) == 7
    takes = {by_id[f"dataset-2_wave-left-hand_elderly_{take:03d}"].split for take in range(1, 6)}
    assert [by_id[f"dataset-2_wave-left-hand_elderly_{take:03d}"].split for take in range(1, 6)] == \
        ["train", "train", "train", "val", "test"]
    assert takes == {"train", "val", "test"}
    item = by_id["dataset-1_bye_old_001"]
    assert item.labels == {"content": "bye", "style": "old", "dataset": "dataset-1", "take": 1, "rig": "bandai"}
    assert item.motion.fps == 30.0 and len(item.captions) >= 3
    assert item.split == split_for("dataset-1", "dataset-1_bye_old_001", 1)
    assert "backward" in " ".join(by_id["dataset-1_walk-back_happy_001"].captions)
    assert [i.id for i in load_spec(f"bandai:{small_root}@val").items] == ["dataset-2_wave-left-hand_elderly_004"]


def test_one_dataset_folder_and_bad_clips(small_root, tmp_path):
    folder = link_subset(small_root / "dataset-2-subset", tmp_path / "d2", ["dataset-2_wave-left-hand_elderly_001"])
    (folder / "data" / "dataset-2_wave-left-hand_elderly_009.bvh").write_text("HIERARCHY\nROOT Hips\n{\n")
    (folder / "data" / "dataset-2_run_normal_001.bvh").symlink_to(
        folder / "data" / "dataset-2_wave-left-hand_elderly_001.bvh")
    (folder / "data" / "dataset-2_run_normal_001.json").write_text('{"content": 99, "style": 0}')
    dataset = load_spec(f"bandai:{folder}")
    assert [item.id for item in dataset.items] == ["dataset-2_wave-left-hand_elderly_001"]
    errors = {Path(entry["path"]).name: entry["error"] for entry in dataset.skipped}
    assert "truncated" in errors["dataset-2_wave-left-hand_elderly_009.bvh"]
    assert "bad label file" in errors["dataset-2_run_normal_001.bvh"]


def test_dataset1_hash_split_is_about_70_15_15(bandai_root):
    stems = [path.stem for path in (bandai_root / "dataset-1" / "data").glob("*.bvh")]
    counts = collections.Counter(split_for("dataset-1", stem, 1) for stem in stems)
    assert abs(counts["train"] / len(stems) - 0.70) < 0.1
    assert abs(counts["val"] / len(stems) - 0.15) < 0.07 and abs(counts["test"] / len(stems) - 0.15) < 0.07


def test_not_a_bandai_folder(tmp_path):
    from inference_server.errors import DataError
    with pytest.raises(DataError, match="not a Bandai-Namco dataset folder"):
        load_spec(f"bandai:{tmp_path}")
