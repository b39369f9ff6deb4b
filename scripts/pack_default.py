"""Pack a trained checkpoint as an embedded model: fp16 weights (half the size; the loader
casts back to float32), the text model recorded as the packaged "minilm", and the model's
name and one-line licence in config.json (shown by `t2m serve` and the add-on).

Usage: scripts/pack_default.py CHECKPOINT TARGET --name NAME --licence "LINE"
"""
import argparse
import json
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file


def pack(checkpoint: Path, target: Path, name: str, licence: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    weights = load_file(checkpoint / "model.safetensors")
    half = {key: (tensor.half() if tensor.is_floating_point() else tensor).contiguous()
            for key, tensor in weights.items()}
    save_file(half, target / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((checkpoint / "config.json").read_text())
    config["model"]["preset"]["text_model"] = "minilm"
    config["text_config"]["_name_or_path"] = "minilm"
    config.update(name=name, licence=licence)
    (target / "config.json").write_text(json.dumps(config, indent=1))
    for file in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(checkpoint / file, target / file)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--licence", required=True, help="one line: the licence of the weights")
    args = parser.parse_args()
    pack(args.checkpoint, args.target, args.name, args.licence)
