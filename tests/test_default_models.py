"""The embedded models: names, licences, packing, and how --model/--index resolve."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from inference_server import default
from inference_server.errors import ModelError
from inference_server.index.build import atomic_folder, write_index
from inference_server.model import create_checkpoint, fingerprint
from inference_server.retriever import Retriever

ROOT = Path(__file__).resolve().parents[1]


def test_both_embedded_models_ship_with_a_licence_line():
    assert set(default.EMBEDDED) == {"default", "permissive"}
    for name, folder in default.EMBEDDED.items():
        assert (folder / "model.safetensors").is_file() and (folder / "MODEL_CARD.md").is_file(), name
        assert (folder / "model.safetensors").stat().st_size <= 60 * 2**20
    assert "non-commercial" in default.licence(default.EMBEDDED["default"])
    assert "CC BY-NC" in default.licence(default.EMBEDDED["default"])
    assert "commercial use allowed" in default.licence(default.EMBEDDED["permissive"])


def test_the_permissive_model_was_trained_on_no_non_commercial_source():
    """Its card promises commercial use: no Bandai-Namco (CC BY-NC 4.0) spec in what it
    trained on, as its config records it; the default's record does hold one."""
    def trained_on(name):
        config = json.loads((default.EMBEDDED[name] / "config.json").read_text())
        return config["training"]["options"]["data"]
    assert trained_on("permissive") and not any(spec.startswith("bandai") for spec in trained_on("permissive"))
    assert any(spec.startswith("bandai") for spec in trained_on("default"))


def test_model_and_index_options_resolve_or_say_what_is_missing(tmp_path):
    index = tmp_path / "index"
    permissive = default.EMBEDDED["permissive"]
    with atomic_folder(index) as tmp:  # the manifest is all resolve reads
        write_index(tmp, np.zeros((1, 196, 8), np.float32), [{"motion_id": "m", "name": "m", "duration": 1.0,
                                                               "fps": 20.0}], None,
                    {"name": "p", "fingerprint": fingerprint(permissive), "dim": 8}, "fp32")
    assert default.resolve("permissive", index) == (permissive, index)
    assert default.resolve(None, index) == (permissive, index)  # the embedded model with the index's fingerprint
    with pytest.raises(ModelError, match="was built with model"):
        default.resolve("default", index)
    with pytest.raises(ModelError, match="needs --index"):
        default.resolve(str(tmp_path / "ckpt"), None)
    with pytest.raises(ModelError, match="does not exist"):
        default.resolve(None, tmp_path / "none")


def test_packing_writes_half_weights_name_and_licence(tmp_path):
    checkpoint = create_checkpoint(tmp_path / "ckpt", preset="test")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "pack_default.py"), str(checkpoint), str(tmp_path / "packed"),
                    "--name", "unit-model", "--licence", "CC0 for the test"], check=True)
    config = json.loads((tmp_path / "packed" / "config.json").read_text())
    assert config["name"] == "unit-model" and config["licence"] == "CC0 for the test"
    assert (tmp_path / "packed" / "model.safetensors").stat().st_size < 0.6 * (checkpoint / "model.safetensors").stat().st_size
    retriever = Retriever.load(tmp_path / "packed", device="cpu")
    assert retriever.licence == "CC0 for the test" and retriever.name == "unit-model"
    assert default.licence(tmp_path / "packed") == "CC0 for the test" and default.licence(tmp_path) == ""
