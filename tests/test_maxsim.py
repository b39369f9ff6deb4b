"""MaxSim / global scores against brute-force loops; relevance layout."""
import pytest
import torch
import torch.nn.functional as F

from inference_server.jami import LAYOUT
from inference_server.maxsim import (PackedQueries, best_patches, global_scores, maxsim_alignment, maxsim_scores,
                                     pooled_scores, token_patch_relevance)


def _unit(*shape, seed=0):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def _reference_maxsim(queries, mask, docs):
    scores = torch.zeros(len(queries), len(docs))
    for b, (query, keep) in enumerate(zip(queries, mask)):
        for n, doc in enumerate(docs):
            best = [max(float(token @ patch) for patch in doc) for token, k in zip(query, keep) if k]
            scores[b, n] = sum(best) / len(best)
    return scores


def test_maxsim_matches_python_loops_with_masks():
    queries, docs = _unit(3, 5, 8, seed=1), _unit(4, 7, 8, seed=2)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 0, 1, 1, 1], [0, 0, 0, 0, 1]], dtype=torch.bool)
    expected = _reference_maxsim(queries, mask, docs)
    assert torch.allclose(maxsim_scores(queries, docs, mask), expected, atol=1e-5)
    # tiny chunks give the same answer as one block
    assert torch.allclose(maxsim_scores(queries, docs, mask, chunk_elements=1), expected, atol=1e-5)


def test_masked_positions_never_count():
    queries, docs = _unit(2, 6, 8, seed=3), _unit(5, 7, 8, seed=4)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0]], dtype=torch.bool)
    changed = queries.clone()
    changed[~mask] = _unit(int((~mask).sum()), 8, seed=5)
    assert torch.allclose(maxsim_scores(queries, docs, mask), maxsim_scores(changed, docs, mask))
    assert torch.allclose(global_scores(queries, docs, mask), global_scores(changed, docs, mask))


def test_single_query_gives_one_row_and_alignment_agrees():
    query, docs = _unit(4, 8, seed=6), _unit(3, 196, 8, seed=7)
    scores = maxsim_scores(query, docs)
    assert scores.shape == (1, 3)
    best, patch = maxsim_alignment(query, docs[1])
    assert torch.allclose(best.mean(), scores[0, 1])
    assert torch.allclose(best, (query @ docs[1].T)[torch.arange(4), patch])


def test_global_pooling_is_cosine_of_means():
    queries, docs = _unit(2, 4, 8, seed=8), _unit(3, 5, 8, seed=9)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    text = F.normalize(torch.stack([queries[0, :2].mean(0), queries[1].mean(0)]), dim=-1)
    expected = text @ F.normalize(docs.mean(1), dim=-1).T
    assert torch.allclose(pooled_scores(queries, docs, mask, "global"), expected, atol=1e-6)
    with pytest.raises(ValueError):
        pooled_scores(queries, docs, mask, "sum")


def test_relevance_follows_the_patch_layout():
    query, doc = _unit(3, 8, seed=10), _unit(196, 8, seed=11)
    relevance = token_patch_relevance(query, doc)
    assert relevance.shape == (3, 14, 14)
    part, window = 9, 4
    patch = LAYOUT.patch(window, part)
    assert torch.allclose(relevance[:, part, window], query @ doc[patch])
    assert torch.allclose(relevance.amax(dim=(1, 2)), maxsim_alignment(query, doc)[0])


def test_no_valid_token_scores_zero_not_nan():
    queries, docs = _unit(1, 3, 8, seed=12), _unit(2, 5, 8, seed=13)
    scores = maxsim_scores(queries, docs, torch.zeros(1, 3, dtype=torch.bool))
    assert torch.equal(scores, torch.zeros(1, 2))


def test_hybrid_is_the_mean_of_maxsim_and_global():
    queries, docs = _unit(3, 5, 8, seed=1), _unit(4, 196, 8, seed=2)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.bool)
    expected = 0.5 * (maxsim_scores(queries, docs, mask) + global_scores(queries, docs, mask))
    assert torch.allclose(pooled_scores(queries, docs, mask, "hybrid"), expected)


def test_smooth_max_tends_to_the_max_and_spreads_the_gradient():
    queries, docs = _unit(2, 4, 8, seed=3), _unit(3, 196, 8, seed=4)
    hard = maxsim_scores(queries, docs)
    assert torch.allclose(maxsim_scores(queries, docs, softness=1e-4), hard, atol=1e-4)
    assert (maxsim_scores(queries, docs, softness=0.5) < hard).all()    # a mean never exceeds the max
    docs = docs.clone().requires_grad_(True)
    maxsim_scores(queries, docs, softness=0.1).sum().backward()
    assert (docs.grad.abs().sum(-1) > 0).float().mean() > 0.9            # nearly every patch gets a gradient


def test_packed_queries_of_a_list_score_as_the_padded_batch():
    """Index search packs a list of queries, the model pads a batch: the same scores."""
    queries, docs = _unit(3, 6, 8, seed=14), _unit(5, 196, 8, seed=15)
    lengths = [6, 2, 4]
    mask = torch.arange(6)[None, :] < torch.tensor(lengths)[:, None]
    packed = PackedQueries.from_list([query[:length] for query, length in zip(queries, lengths)])
    for pooling in ("maxsim", "global", "hybrid"):
        assert torch.allclose(packed.scores(docs, pooling), pooled_scores(queries, docs, mask, pooling), atol=1e-6)


def test_best_patches_are_each_tokens_alignment_in_each_motion():
    query, docs = _unit(4, 8, seed=16), _unit(3, 196, 8, seed=17)
    best, patch = best_patches(query, docs)
    assert best.shape == patch.shape == (3, 4)
    for row in range(3):
        sims = query @ docs[row].T
        assert torch.equal(patch[row], sims.argmax(dim=1))
        assert torch.allclose(best[row].mean(), maxsim_scores(query, docs[row:row + 1])[0, 0])
