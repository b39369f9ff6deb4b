"""Pack a trained checkpoint as the embedded default: fp16 weights (half the size; the
loader casts back to float32) and the text model recorded as the packaged "minilm"."""
import json
import shutil
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file


def pack(checkpoint: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    weights = load_file(checkpoint / "model.safetensors")
    half = {name: (tensor.half() if tensor.is_floating_point() else tensor).contiguous()
            for name, tensor in weights.items()}
    save_file(half, target / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((checkpoint / "config.json").read_text())
    config["model"]["preset"]["text_model"] = "minilm"
    config["text_config"]["_name_or_path"] = "minilm"
    (target / "config.json").write_text(json.dumps(config, indent=1))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(checkpoint / name, target / name)


if __name__ == "__main__":
    pack(Path(sys.argv[1]), Path(sys.argv[2]))
