"""`t2m search` with prompts of several steps and --previews: in-process (--index) and through a
real server on loopback (--server), with a test-preset checkpoint and a small synthetic index."""
from __future__ import annotations

import io
import json
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from bridge.sequence import split_steps
from inference_server.cli import main as t2m_main
from inference_server.engine import Engine
from inference_server.index import MotionIndex, build_index
from inference_server.model import create_checkpoint
from inference_server.retriever import Retriever
from inference_server.server import Server

pytestmark = pytest.mark.timeout(300)
SEQUENCE = "a person walks forward, then waves with the right hand, then sits down"


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    torch.set_num_threads(2)
    folder = tmp_path_factory.mktemp("search_cli")
    retriever = Retriever.load(create_checkpoint(folder / "model", preset="test"), device="cpu")
    build_index("synthetic:12:2", retriever, folder / "index", storage="fp32", progress=False)
    return {"index": folder / "index", "engine": Engine(retriever, MotionIndex.load(folder / "index", retriever))}


@pytest.fixture(scope="module")
def address(library):
    server = Server(library["engine"], bind="tcp://127.0.0.1:*")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    assert server.ready.wait(10), "the server did not start"
    yield server.address
    server.stop()
    thread.join(10)


def search(capsys, *argv: str) -> str:
    assert t2m_main(["search", *argv, "--no-progress"]) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def test_json_shows_segments_and_spans_only_for_several_steps(library, capsys):
    result = json.loads(search(capsys, SEQUENCE, "-k", "3", "--index", str(library["index"]), "--json"))
    expected = json.loads(json.dumps(library["engine"].search(SEQUENCE, 3)[0]))
    assert [hit["motion_id"] for hit in result["results"]] == [hit["motion_id"] for hit in expected["results"]]
    assert [segment["text"] for segment in result["segments"]] == split_steps(SEQUENCE)
    assert all(len(hit["spans"]) == 3 for hit in result["results"])
    assert [[hit["motion_id"] for hit in segment["results"]] for segment in result["segments"]] == \
        [[hit["motion_id"] for hit in segment["results"]] for segment in expected["segments"]]
    single = json.loads(search(capsys, "a person sits down", "-k", "3", "--index", str(library["index"]), "--json"))
    assert "segments" not in single and all("spans" not in hit for hit in single["results"])


def test_human_output_lists_each_segment_under_the_whole_prompt(library, capsys):
    out = search(capsys, SEQUENCE, "-k", "2", "--index", str(library["index"]))
    lines = out.splitlines()
    headings = [number for number, line in enumerate(lines) if line.startswith("segment ")]
    assert [lines[number] for number in headings] == [f"segment {n}: {text}"
                                                      for n, text in enumerate(split_steps(SEQUENCE), 1)]
    whole = [line for line in lines[:headings[0]] if line.strip()[:1].isdigit()]
    assert len(whole) == 2 and all(" s]" in line for line in whole)  # each hit with its step spans
    for start, end in zip(headings, headings[1:] + [len(lines)]):
        assert len([line for line in lines[start + 1:end] if line.strip()[:1].isdigit()]) == 2


def decode_png(path) -> np.ndarray:
    image = Image.open(io.BytesIO(path.read_bytes()))
    assert image.format == "PNG"
    return np.asarray(image)


@pytest.mark.parametrize("where", ["index", "server"])
def test_previews_are_written_for_every_hit(library, address, capsys, tmp_path, where):
    folder = tmp_path / "previews"
    source = ["--index", str(library["index"])] if where == "index" else ["--server", address]
    result = json.loads(search(capsys, SEQUENCE, "-k", "2", *source, "--previews", str(folder), "--json"))
    expected = [f"{rank:03d}_{hit['motion_id']}.png" for rank, hit in enumerate(result["results"], 1)]
    expected += [f"step{number}_{rank:03d}_{hit['motion_id']}.png"
                 for number, segment in enumerate(result["segments"], 1) for rank, hit in enumerate(segment["results"], 1)]
    assert result["previews"] == {"dir": str(folder), "files": [str(folder / name) for name in expected]}
    assert sorted(path.name for path in folder.iterdir()) == sorted(expected) and len(expected) == 2 + 3 * 2
    for name in expected:
        assert decode_png(folder / name).shape == (64, 256, 3)
    first = result["results"][0]["motion_id"]
    png = library["engine"].preview(first)[1]["png"].tobytes()
    assert (folder / expected[0]).read_bytes() == png
    said = search(capsys, "a person sits down", "-k", "1", *source, "--previews", str(tmp_path / "single"))
    assert f"previews: 1 PNG file in {tmp_path / 'single'}" in said


def test_previews_into_a_file_is_a_one_line_error(library, capsys, tmp_path):
    blocker = tmp_path / "taken"
    blocker.write_text("not a folder")
    assert t2m_main(["search", SEQUENCE, "--index", str(library["index"]), "--previews", str(blocker)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--previews" in err and str(blocker) in err


def test_help_documents_sequences_and_previews(capsys):
    for command, words in (("search", ["several steps", "segments", "--previews"]),
                           ("batch", ["several steps", "segments", "whole_motion_id", "blend_frames"])):
        with pytest.raises(SystemExit):
            t2m_main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert all(word in text for word in words), command
