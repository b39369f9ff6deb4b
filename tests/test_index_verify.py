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
