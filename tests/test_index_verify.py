"""Issue 16: an index is checked when it is opened, never trusted as it is on disk.

Each corruption found by the probe (garbled offsets, NaN patches, a wrong dim, a 0-byte
array, duplicate ids) is refused with a one-line ModelError naming the file.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from inference_server.errors import ModelError
from inference_server.index import MotionIndex
from inference_server.index.build import atomic_folder, write_index
from inference_server.index.store import MANIFEST, MOTIONS, file_records
from inference_server.index.synthetic import ClusteredSpace

SPACE = ClusteredSpace(dim=32, concepts=64)
ROWS = 40


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    folder = tmp_path_factory.mktemp("verify") / "index"
    embeddings = SPACE.embeddings(ROWS)
    metas = [{"motion_id": f"m{row:03d}", "name": f"motion {row}", "duration": 2.0, "fps": 20.0,
              "frames": row % 4 + 2} for row in range(ROWS)]
    positions = [np.full((row % 4 + 2, 22, 3), row, np.float32) for row in range(ROWS)]
    with atomic_folder(folder) as tmp:
        write_index(tmp, embeddings, metas, positions, {"name": "syn", "fingerprint": "f" * 64, "dim": 32}, "fp16")
        manifest = json.loads((tmp / MANIFEST).read_text())
        manifest["files"] = file_records(tmp)  # what a build records for `verify`
        (tmp / MANIFEST).write_text(json.dumps(manifest))
    return folder


@pytest.fixture
def copy(good, tmp_path):
    folder = tmp_path / "index"
    shutil.copytree(good, folder)
    return folder


def refused(folder, full=False) -> str:
    with pytest.raises(ModelError) as caught:
        index = MotionIndex.load(folder, device="cpu")
        if full:
            index.verify()
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_good_index_passes_the_full_check(good):
    index = MotionIndex.load(good, device="cpu")
    checked = index.verify()
    assert checked["motions"] == ROWS and checked["hashed"] == checked["files"] - 1  # all but the manifest
    assert index.motion(3).num_frames == 5


def _manifest(folder) -> dict:
    return json.loads((folder / MANIFEST).read_text())


def _drop_records(folder) -> None:
    manifest = _manifest(folder)
    manifest.pop("files")
    (folder / MANIFEST).write_text(json.dumps(manifest))


def test_garbled_offsets_are_refused_not_served_as_an_empty_motion(copy):
    _drop_records(copy)  # the structural check alone, as for an index built before hashes
    offsets = np.load(copy / "position_offsets.npy")
    offsets[3] = offsets[2]
    np.save(copy / "position_offsets.npy", offsets)
    message = refused(copy)
    assert "position_offsets.npy" in message and "'m002'" in message


def test_offsets_that_do_not_rise_are_refused(copy):
    _drop_records(copy)
    offsets = np.load(copy / "position_offsets.npy")
    offsets[5] = 10 ** 9
    np.save(copy / "position_offsets.npy", offsets)
    assert "position_offsets.npy" in refused(copy)


def test_nan_patches_are_refused_by_the_full_check(copy):
    _drop_records(copy)
    patches = np.load(copy / "patches.npy")
    patches[7, 3, 1] = np.nan
    np.save(copy / "patches.npy", patches)
    message = refused(copy, full=True)
    assert "patches.npy" in message and "NaN" in message and "row 7" in message


def test_a_wrong_dim_in_the_manifest_is_refused(copy):
    manifest = _manifest(copy)
    manifest["dim"] = 64
    (copy / MANIFEST).write_text(json.dumps(manifest))
    assert "manifest.json" in refused(copy) or "patches.npy" in refused(copy)


def test_a_zero_byte_array_is_refused(copy):
    _drop_records(copy)
    (copy / "centroids.npy").write_bytes(b"")
    assert "centroids.npy" in refused(copy)


def test_a_truncated_array_is_refused(copy):
    _drop_records(copy)
    data = (copy / "patches.npy").read_bytes()
    (copy / "patches.npy").write_bytes(data[:-100])
    assert "patches.npy" in refused(copy)


def test_duplicate_motion_ids_are_refused(copy):
    metas = json.loads((copy / MOTIONS).read_text())
    metas[9]["motion_id"] = metas[4]["motion_id"]
    (copy / MOTIONS).write_text(json.dumps(metas))
    _drop_records(copy)
    message = refused(copy)
    assert MOTIONS in message and "m004" in message and "more than once" in message


def test_a_file_of_another_size_than_recorded_is_refused(copy):
    with open(copy / "ivf_rows.npy", "ab") as handle:
        handle.write(b"\0" * 8)
    assert "ivf_rows.npy" in refused(copy)


def test_a_changed_byte_is_found_by_its_sha256(copy):
    data = bytearray((copy / "patches.npy").read_bytes())
    data[-2] ^= 0x01  # the lowest mantissa bit of the last fp16: same size, still finite
    (copy / "patches.npy").write_bytes(bytes(data))
    MotionIndex.load(copy, device="cpu")  # the fast check cannot see it
    message = refused(copy, full=True)
    assert "patches.npy" in message and "sha256" in message


def test_codes_out_of_range_are_refused_by_the_full_check(copy):
    _drop_records(copy)
    codes = np.load(copy / "centroid_codes.npy")
    codes[2, 5] = 30000
    np.save(copy / "centroid_codes.npy", codes)
    assert "centroid_codes.npy" in refused(copy, full=True)


# ------------------------------------------------------------------ `t2m index verify`

@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """An index written by `t2m index build` with a test-preset checkpoint (it records sha256s)."""
    import torch

    from inference_server.cli import main as t2m_main
    from inference_server.model import create_checkpoint

    torch.set_num_threads(2)
    folder = tmp_path_factory.mktemp("cli-verify")
    model = create_checkpoint(folder / "ckpt", preset="test", seed=0)
    assert t2m_main(["index", "build", "synthetic:6:3", "--model", str(model), "--out", str(folder / "index"),
                     "--device", "cpu", "--json"]) == 0
    return folder / "index"


@pytest.mark.timeout(240)
def test_cli_verify_passes_a_built_index_and_checks_its_hashes(built, capsys):
    from inference_server.cli import main as t2m_main

    capsys.readouterr()
    assert t2m_main(["index", "verify", str(built), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"motions", "files", "bytes", "hashed"}
    assert result["motions"] == 6 and result["hashed"] > 0 and result["bytes"] > 0
    assert t2m_main(["index", "verify", str(built), "--no-hashes", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["hashed"] == 0
    assert t2m_main(["index", "verify", str(built)]) == 0  # plain output: one "key: value" line each
    assert "hashed: " in capsys.readouterr().out


@pytest.mark.timeout(240)
def test_cli_verify_fails_in_one_line_naming_a_changed_file(built, tmp_path, capsys):
    from inference_server.cli import main as t2m_main

    folder = tmp_path / "index"
    shutil.copytree(built, folder)
    data = bytearray((folder / "patches.npy").read_bytes())
    data[-2] ^= 0x01  # the lowest mantissa bit of the last fp16: same size, still finite
    (folder / "patches.npy").write_bytes(bytes(data))
    capsys.readouterr()
    assert t2m_main(["index", "verify", str(folder), "--json"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert "patches.npy" in captured.err and "sha256" in captured.err
    # without hashes the same-size, finite change goes unseen: that is what --no-hashes trades away
    assert t2m_main(["index", "verify", str(folder), "--no-hashes", "--json"]) == 0
