"""bridge.sequence: prompts with several steps -> ordered standalone segment texts."""
from __future__ import annotations

import pytest

from bridge.sequence import is_sequence, split_steps

# (prompt, expected segments); one step comes back as the trimmed prompt.
CASES = [
    # "then" and its friends
    ("a person walks forward, then waves, then sits down",
     ["a person walks forward", "a person waves", "a person sits down"]),
    ("a person walks forward then waves", ["a person walks forward", "a person waves"]),
    ("a man jumps and then spins around", ["a man jumps", "a man spins around"]),
    ("someone claps, and then bows", ["someone claps", "someone bows"]),
    ("a person squats. Then they stand up.", ["a person squats", "they stand up"]),
    ("Then the woman waves", ["Then the woman waves"]),
    ("the man kicks with the right leg, after that he punches",
     ["the man kicks with the right leg", "he punches"]),
    ("a person runs in a circle; afterwards they rest", ["a person runs in a circle", "they rest"]),
    ("walk forward, after which turn around", ["walk forward", "turn around"]),
    ("a person walks forward followed by a jump", ["a person walks forward", "a jump"]),
    ("someone crouches followed by jumping", ["someone crouches", "someone jumping"]),
    ("a person waves and finally sits down", ["a person waves", "a person sits down"]),
    ("first walk forward, next turn left, finally sit down", ["walk forward", "turn left", "sit down"]),
    ("first, a person stretches; next, they jog", ["a person stretches", "they jog"]),
    ("the person bows, subsequently walks away", ["the person bows", "the person walks away"]),
    ("a person jumps and later sits", ["a person jumps", "a person sits"]),
    ("wave, lastly bow", ["wave", "bow"]),
    # before / after
    ("a person waves before sitting down", ["a person waves", "a person sitting down"]),
    ("Before sitting down, the man waves", ["the man waves", "the man sitting down"]),
    ("a person bows after jumping", ["a person jumping", "a person bows"]),
    ("after a jump, a person bows", ["a jump", "a person bows"]),
    ("he waves after he sits down", ["he sits down", "he waves"]),
    ("a person claps just before jumping", ["a person claps", "a person jumping"]),
    ("a person runs after the ball", ["a person runs after the ball"]),
    ("a person walks the same way as before", ["a person walks the same way as before"]),
    ("a person turns around before walking back, then waves",
     ["a person turns around", "a person walking back", "a person waves"]),
    # comma lists
    ("a person walks forward, waves, sits down",
     ["a person walks forward", "a person waves", "a person sits down"]),
    ("crouches, jumps and lands", ["crouches", "jumps", "lands"]),
    ("a person walks forward, turns around and walks back",
     ["a person walks forward", "a person turns around", "a person walks back"]),
    ("a person waves with the left hand, slowly", ["a person waves with the left hand, slowly"]),
    ("slowly, a person walks in a circle", ["slowly, a person walks in a circle"]),
    ("a person, standing still, waves", ["a person, standing still, waves"]),
    ("a person walks, swinging the arms", ["a person walks, swinging the arms"]),
    ("a person jumps, twice", ["a person jumps, twice"]),
    ("a person walks forward, jumps up and down", ["a person walks forward", "a person jumps up and down"]),
    ("a person waves with the left hand, slowly, then bows",
     ["a person waves with the left hand, slowly", "a person bows"]),
    # plain "and", "while", "until": one step
    ("a person walks left and right", ["a person walks left and right"]),
    ("a person jumps up and down", ["a person jumps up and down"]),
    ("a person walks and waves", ["a person walks and waves"]),
    ("a person walks while waving", ["a person walks while waving"]),
    ("a person walks until reaching the wall", ["a person walks until reaching the wall"]),
    ("every now and then a person jumps", ["every now and then a person jumps"]),
    ("a person walks next to the wall", ["a person walks next to the wall"]),
    ("a person walks to the next room, then sits",
     ["a person walks to the next room", "a person sits"]),
    ("the person is athletic and strong", ["the person is athletic and strong"]),
    # numbered steps and lines
    ("1. walk forward 2. wave 3. sit down", ["walk forward", "wave", "sit down"]),
    ("1) a person kneels 2) they pray", ["a person kneels", "they pray"]),
    ("step 1: jog step 2: stop", ["jog", "stop"]),
    ("walk forward\nwave\nsit down", ["walk forward", "wave", "sit down"]),
    ("- squat\n- jump\n", ["squat", "jump"]),
    ("a person walks 2. 5 metres", ["a person walks 2. 5 metres"]),
    ("a person walks 2.5 metres, then stops", ["a person walks 2.5 metres", "a person stops"]),
    ("walks 3 steps 1. then waves", ["walks 3 steps 1", "waves"]),
    # verb-less steps borrow the previous verb
    ("a person walks forward then backward", ["a person walks forward", "a person walks backward"]),
    ("a person walks forward, then back, then forward again",
     ["a person walks forward", "a person walks back", "a person walks forward again"]),
    ("waves the left hand, then the right hand", ["waves the left hand", "waves the right hand"]),
    ("a person slowly turns left, then to the right",
     ["a person slowly turns left", "a person turns to the right"]),
    # one step: the prompt, trimmed, unchanged
    ("  a person waves  ", ["a person waves"]),
    ("A person does a cartwheel.", ["A person does a cartwheel."]),
    ("first, a person walks", ["first, a person walks"]),
]


@pytest.mark.parametrize("prompt, expected", CASES, ids=[case[0][:40] for case in CASES])
def test_split_steps(prompt, expected):
    assert split_steps(prompt) == expected


def test_the_table_is_large_enough():
    assert len(CASES) >= 40
    assert sum(len(expected) > 1 for _, expected in CASES) >= 30


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t"])
def test_blank_prompt_has_no_steps(prompt):
    assert split_steps(prompt) == []
    assert not is_sequence(prompt)


def test_is_sequence():
    assert is_sequence("a person walks, then sits")
    assert not is_sequence("a person walks and sits")


def test_a_non_string_is_a_clear_error():
    with pytest.raises(TypeError, match="prompt must be a string"):
        split_steps(None)


def test_deterministic_and_idempotent_on_its_segments():
    prompt = "a person walks forward, then waves with the right hand, then sits down"
    segments = split_steps(prompt)
    assert segments == split_steps(prompt)
    for segment in segments:  # a segment is one step on its own
        assert split_steps(segment) == [segment]
