"""inference_server.preview: stick-figure strips as PNG bytes, and their LRU cache."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from inference_server.data.synthetic import motion_for
from inference_server.errors import DataError
from inference_server.preview import (
    BACKGROUND, PNG_SIGNATURE, SIDE_COLOURS, PreviewCache, encode_png, render_strip)


@pytest.fixture(scope="module")
def motions() -> dict[str, np.ndarray]:
    keys = ["walk", "wave_right", "sit_down", "jump"]
    return {key: motion_for([key], seed=index, seconds=3).positions for index, key in enumerate(keys)}


def decode(png: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.mode == "RGB"
    return np.asarray(image)


def pixels_near(image: np.ndarray, colour, tolerance: float = 40.0) -> np.ndarray:
    """(rows, columns) of the pixels within `tolerance` of `colour`."""
    distance = np.linalg.norm(image.astype(float) - np.array(colour, dtype=float), axis=-1)
    return np.nonzero(distance < tolerance)


def test_a_valid_png_of_the_asked_size(motions):
    png = render_strip(motions["walk"])
    assert png.startswith(PNG_SIGNATURE)
    assert decode(png).shape == (64, 256, 3)
    assert decode(render_strip(motions["walk"], (128, 48))).shape == (48, 128, 3)
    assert decode(render_strip(motions["walk"], (40, 40), poses=1)).shape == (40, 40, 3)


def test_encode_png_round_trips_exactly():
    image = np.random.default_rng(0).integers(0, 256, (7, 13, 3), dtype=np.uint8)
    np.testing.assert_array_equal(decode(encode_png(image)), image)


def test_left_and_right_in_their_colours_on_their_sides(motions):
    image = decode(render_strip(motions["wave_right"], poses=1, size=(128, 128)))
    left_rows, left_columns = pixels_near(image, SIDE_COLOURS["left"])
    right_rows, right_columns = pixels_near(image, SIDE_COLOURS["right"])
    assert len(left_columns) > 50 and len(right_columns) > 50
    assert len(pixels_near(image, SIDE_COLOURS["centre"])[0]) > 20
    # Seen from the front, the body's left is on the picture's right.
    assert left_columns.mean() > right_columns.mean()
    assert (image == BACKGROUND).all(axis=-1).mean() > 0.5  # mostly dark background


def test_the_strip_shows_poses_over_time(motions):
    image = decode(render_strip(motions["wave_right"]))  # 5 poses by default at 256 x 64
    cells = np.array_split(image, 5, axis=1)
    for cell in cells:
        assert len(pixels_near(cell, SIDE_COLOURS["left"])[0]) > 5  # a figure in every cell
    assert not np.array_equal(cells[0], cells[2])  # the arm moved


def test_distinct_motions_give_distinct_images(motions):
    images = {key: decode(render_strip(positions)) for key, positions in motions.items()}
    keys = list(images)
    for index, first in enumerate(keys):
        for second in keys[index + 1:]:
            differing = np.any(images[first] != images[second], axis=-1).mean()
            assert differing > 0.01, (first, second)
    assert render_strip(motions["walk"]) == render_strip(motions["walk"])  # deterministic


def test_a_jump_rises_above_the_standing_poses(motions):
    # All cells share one scale and one floor, so the figure's head goes up in the air.
    strip = decode(render_strip(motions["jump"], (64 * 8, 64), poses=8))
    heads = [pixels_near(cell, SIDE_COLOURS["centre"])[0].min() for cell in np.array_split(strip, 8, axis=1)]
    assert max(heads) - min(heads) >= 3


@pytest.mark.parametrize("positions, message", [
    (np.zeros((0, 22, 3)), "no frames"),
    (np.zeros((10, 21, 3)), r"must be \(frames, 22, 3\)"),
    (np.zeros((10, 22)), r"must be \(frames, 22, 3\)"),
    (np.full((10, 22, 3), np.nan), "NaN or infinite values \\(first at frame 0\\)"),
])
def test_bad_positions_are_a_clear_error(positions, message):
    with pytest.raises(DataError, match=message):
        render_strip(positions)


def test_one_bad_frame_is_named(motions):
    walk = motions["walk"].copy()
    walk[7, 3, 0] = np.inf
    with pytest.raises(DataError, match="first at frame 7"):
        render_strip(walk)


@pytest.mark.parametrize("size", [(0, 64), (256, 4096), (256.5, 64), "big", (256,), None])
def test_bad_sizes_are_a_clear_error(motions, size):
    with pytest.raises(DataError, match="size must be"):
        render_strip(motions["walk"], size)


def test_bad_pose_count_is_a_clear_error(motions):
    with pytest.raises(DataError, match="poses must be 1 to 8"):
        render_strip(motions["walk"], poses=0)


def test_cache_hits_skip_loading_and_rendering(motions):
    cache = PreviewCache(capacity=2)
    loads = []

    def positions_of(motion_id):
        loads.append(motion_id)
        return motions[motion_id]

    first = cache.preview("walk", (256, 64), positions_of)
    assert cache.preview("walk", [256, 64], positions_of) is first
    assert loads == ["walk"] and (cache.hits, cache.misses) == (1, 1)
    larger = cache.preview("walk", (512, 128), positions_of)  # the size is part of the key
    assert decode(larger).shape == (128, 512, 3) and loads == ["walk", "walk"]
    cache.preview("walk", (256, 64), positions_of)             # refresh: now most recent
    cache.preview("sit_down", (256, 64), positions_of)         # evicts the 512 x 128 walk
    assert len(cache) == 2
    cache.preview("walk", (256, 64), positions_of)
    assert loads == ["walk", "walk", "sit_down"]
    cache.preview("walk", (512, 128), positions_of)
    assert loads[-1] == "walk" and len(loads) == 4


def test_cache_checks_its_arguments(motions):
    with pytest.raises(ValueError, match="capacity must be at least 1"):
        PreviewCache(capacity=0)
    cache = PreviewCache()
    with pytest.raises(DataError, match="size must be"):
        cache.preview("walk", (1, 1), lambda _: motions["walk"])
    with pytest.raises(DataError, match="no frames"):
        cache.preview("empty", (256, 64), lambda _: np.zeros((0, 22, 3)))
    assert len(cache) == 0
