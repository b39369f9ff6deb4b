"""The side-grounding loss: which words it grounds, to which parts, and that it teaches them."""
import pytest
import torch
import torch.nn.functional as F

from inference_server.jami import NUM_PATCHES, PART_CHANNEL_INDEX, PART_NAMES, WINDOWS
from inference_server.model.colbert import MotionColBert
from inference_server.model.grounding_loss import grounding_loss, grounding_targets
from inference_server.model.presets import get_preset

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return MotionColBert.build(get_preset("test"), PART_CHANNEL_INDEX, grounding_weight=1.0)


def grounded(model, text: str) -> dict[str, list[str]]:
    tokens = model.text.tokenize([text])
    pieces = [model.text.tokenizer.convert_ids_to_tokens(row) for row in tokens.input_ids.tolist()]
    targets = grounding_targets(pieces, tokens.valid_mask)[0]
    return {pieces[0][col]: [PART_NAMES[p] for p in targets[col].nonzero().flatten().tolist()]
            for col in targets.any(dim=1).nonzero().flatten().tolist()}


def test_a_side_next_to_a_limb_grounds_both_words_to_that_limb(model):
    assert grounded(model, "a person waves the left hand") == {"left": ["l_shoulder", "l_elbow"],
                                                               "hand": ["l_shoulder", "l_elbow"]}
    assert grounded(model, "kicks with the right leg, then walks") == {"right": ["r_hip", "r_knee", "r_ankle"],
                                                                       "leg": ["r_hip", "r_knee", "r_ankle"]}


def test_directions_and_bare_limbs_are_not_grounded(model):
    assert grounded(model, "a person turns left and steps to the right") == {}
    assert grounded(model, "someone claps both hands") == {}


def one_hot_patches(part: int) -> torch.Tensor:
    """(1, 196, 14) patches: every window's `part` patch along axis `part`, the rest along axis 13."""
    patches = torch.zeros(1, NUM_PATCHES, len(PART_NAMES))
    for window in range(WINDOWS):
        for other in range(len(PART_NAMES)):
            patches[0, window * len(PART_NAMES) + other, part if other == part else 13] = 1.0
    return patches


def test_the_loss_is_low_on_the_named_limb_and_high_elsewhere():
    left_arm = [PART_NAMES.index("l_shoulder"), PART_NAMES.index("l_elbow")]
    targets = torch.zeros(1, 1, len(PART_NAMES), dtype=torch.bool)
    targets[0, 0, left_arm] = True
    word = F.one_hot(torch.tensor([[left_arm[0]]]), len(PART_NAMES)).float()   # the word points at l_shoulder
    right = PART_NAMES.index("r_shoulder")
    on_left = grounding_loss(word, one_hot_patches(left_arm[0]), targets)
    on_right = grounding_loss(F.one_hot(torch.tensor([[right]]), len(PART_NAMES)).float(),
                              one_hot_patches(right), targets)
    assert on_left < 0.05 < 5.0 < on_right
    assert grounding_loss(word, one_hot_patches(0), torch.zeros_like(targets)) is None


def test_training_steps_move_the_side_word_to_its_limb(model):
    """Gradient steps on the forward's loss raise the share of "left" on the left arm."""
    texts = ["a person waves the left hand"] * 4
    tokens = model.text.tokenize(texts)
    pieces = [model.text.tokenizer.convert_ids_to_tokens(row) for row in tokens.input_ids.tolist()]
    targets = grounding_targets(pieces, tokens.valid_mask)
    angles = torch.randn(4, 224, 29, generator=torch.Generator().manual_seed(1))
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for _ in range(12):
        out = model(angles, tokens.input_ids, tokens.attention_mask, tokens.valid_mask, grounding_targets=targets)
        losses.append(float(out["grounding"]))
        out["loss"].backward()
        optimizer.step()
        optimizer.zero_grad()
    assert losses[-1] < 0.5 * losses[0]
