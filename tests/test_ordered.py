"""Order-aware scoring: monotone spans, the DP's choice, and plain scoring for one step."""
import pytest
import torch
import torch.nn.functional as F

from inference_server.jami import NUM_PATCHES, PART_NAMES, WINDOWS
from inference_server.maxsim import global_scores, pooled_scores
from inference_server.ordered import order_penalty, ordered_alignment, span_global, span_scores

PARTS = len(PART_NAMES)
DIM = 8


def clip(first: int, second: int, switch: int = 5) -> torch.Tensor:
    """(196, d) patches: windows before `switch` point along axis `first`, the rest along `second`,
    with a little noise so no two cosines tie."""
    generator = torch.Generator().manual_seed(first * 10 + second)
    patches = 0.05 * torch.randn(NUM_PATCHES, DIM, generator=generator)
    for patch in range(NUM_PATCHES):
        patches[patch, first if patch // PARTS < switch else second] += 1.0
    return F.normalize(patches, dim=1)


def step(axis: int) -> torch.Tensor:
    return F.one_hot(torch.tensor([axis, axis]), DIM).float()


@pytest.mark.parametrize("pooling", ["maxsim", "global", "hybrid"])
def test_a_then_b_prefers_the_clip_where_a_comes_first(pooling):
    docs = torch.stack([clip(0, 1), clip(1, 0)])
    scores, free, spans = ordered_alignment([step(0), step(1)], docs, pooling)
    assert scores[0] > scores[1]
    swapped, _, _ = ordered_alignment([step(1), step(0)], docs, pooling)
    assert swapped[1] > swapped[0]
    # order ignored, both clips hold both steps equally well; only the wrong order pays
    penalty, _ = order_penalty([step(0), step(1)], docs, pooling)
    assert free[0] == pytest.approx(float(free[1]), abs=0.02)
    assert penalty[0] == pytest.approx(0.0, abs=1e-6) and penalty[1] < -0.1
    # the spans follow each other, the first holds a window before the switch (5), the second one after
    first, second = spans[0].tolist()
    assert first[0] < first[1] <= second[0] < second[1]
    assert first[0] < 5 < second[1]


@pytest.mark.parametrize("pooling", ["maxsim", "global", "hybrid"])
def test_the_score_is_the_mean_of_the_chosen_spans(pooling):
    docs = torch.stack([clip(0, 1), clip(2, 3, switch=9), clip(1, 2, switch=3)])
    steps = [step(0), step(1), step(2)]
    scores, free, spans = ordered_alignment(steps, docs, pooling)
    assert (free >= scores - 1e-6).all()
    for row in range(len(docs)):
        tables = [span_scores(tokens, docs[row:row + 1], pooling)[0] for tokens in steps]
        again = sum(float(table[a, b]) for table, (a, b) in zip(tables, spans[row].tolist())) / len(steps)
        assert scores[row] == pytest.approx(again, abs=1e-5)
        ends = [end for _, end in spans[row].tolist()]
        assert all(end <= start for end, (start, _) in zip(ends, spans[row, 1:].tolist()))


@pytest.mark.parametrize("pooling", ["maxsim", "global", "hybrid"])
def test_one_step_costs_nothing(pooling):
    docs = torch.stack([clip(0, 1), clip(3, 2)])
    tokens = F.normalize(torch.randn(3, DIM, generator=torch.Generator().manual_seed(2)), dim=1)
    penalty, spans = order_penalty([tokens], docs, pooling)
    assert penalty.tolist() == [0.0, 0.0]
    assert spans.tolist() == [[[0, WINDOWS]], [[0, WINDOWS]]]
    ordered, free, _ = ordered_alignment([tokens], docs, pooling)
    torch.testing.assert_close(ordered, free)


def test_maxsim_on_the_whole_clip_is_plain_maxsim():
    docs = torch.stack([clip(0, 1), clip(3, 2)])
    tokens = F.normalize(torch.randn(3, DIM, generator=torch.Generator().manual_seed(2)), dim=1)
    torch.testing.assert_close(span_scores(tokens, docs, "maxsim")[:, 0, WINDOWS],
                               pooled_scores(tokens, docs, pooling="maxsim")[0])


def test_the_whole_clip_span_is_the_global_score():
    docs = torch.stack([clip(0, 1), clip(3, 2)])
    tokens = F.normalize(torch.randn(3, DIM, generator=torch.Generator().manual_seed(3)), dim=1)
    torch.testing.assert_close(span_global(tokens, docs)[:, 0, WINDOWS], global_scores(tokens, docs)[0])


def test_no_steps_is_an_error():
    with pytest.raises(ValueError, match="at least one step"):
        ordered_alignment([], torch.zeros(1, NUM_PATCHES, DIM), "maxsim")
