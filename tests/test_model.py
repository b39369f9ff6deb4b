"""MotionColBert: tokens, JAMI bands, gradients, MLM masking, checkpoint round trip."""
import json

import pytest
import torch

from inference_server.errors import ModelError
from inference_server.jami import LAYOUT, PART_CHANNEL_INDEX
from inference_server.model import create_checkpoint, get_preset, load_model, read_config, save_checkpoint
from inference_server.model.checkpoint import identity_stats
from inference_server.model.colbert import MotionColBert

torch.set_num_threads(1)  # on a shared 2-core machine 2 threads spin-wait: 1 is faster and steadier


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return MotionColBert.build(get_preset("test"), PART_CHANNEL_INDEX)


def _angles(batch, seed=0):
    return torch.randn(batch, 224, 29, generator=torch.Generator().manual_seed(seed))


def test_valid_tokens_exclude_cls_sep_and_padding(model):
    batch = model.text.tokenize(["A person waves the left hand.", "walk"])
    tokenizer = model.text.tokenizer
    ids = batch.input_ids[batch.valid_mask].tolist()
    assert tokenizer.cls_token_id not in ids and tokenizer.sep_token_id not in ids
    assert tokenizer.pad_token_id not in ids
    assert batch.tokens == [["a", "person", "waves", "the", "left", "hand", "."], ["walk"]]


def test_punctuation_can_be_masked():
    torch.manual_seed(0)
    model = MotionColBert.build(get_preset("test"), PART_CHANNEL_INDEX, mask_punctuation=True)
    assert model.text.tokenize(["jump, then sit."]).tokens == [["jump", "then", "sit"]]


def test_stop_words_can_be_masked_but_side_and_order_words_stay():
    torch.manual_seed(0)
    model = MotionColBert.build(get_preset("test"), PART_CHANNEL_INDEX, mask_stopwords=True)
    batch = model.text.tokenize(["A person waves with the left hand, then the man walks back.", "the person"])
    assert batch.tokens[0] == ["waves", "left", "hand", ",", "then", "walks", "back", "."]
    assert batch.tokens[1] == ["the", "person"]     # nothing but stop words: they are kept
    # a stop word that is only the start of a longer word (a word piece) is kept
    pieces = model.text.tokenizer.tokenize("someoneish")
    assert len(pieces) > 1 and model.text.tokenize(["someoneish"]).tokens == [pieces]


def test_multi_positive_loss_does_not_push_same_label_takes_apart():
    from inference_server.model.loss import contrastive_loss
    log_scale = torch.tensor(0.0)
    # texts 0 and 1 describe two takes of one action: both score both motions equally
    scores = torch.tensor([[0.9, 0.9, 0.1], [0.9, 0.9, 0.1], [0.1, 0.1, 0.9]])
    positives = torch.tensor([[1, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=torch.bool)
    single = contrastive_loss(scores, log_scale)
    multi = contrastive_loss(scores, log_scale, positives)
    # the plain loss pushes the two takes apart; the multi-positive one counts both as correct
    expected = -torch.log_softmax(scores, 1).diagonal().mean()
    assert single == pytest.approx(float(expected))
    assert multi < single
    assert contrastive_loss(scores, log_scale, torch.eye(3, dtype=torch.bool)) == pytest.approx(float(single))


def test_freezing_the_lower_text_layers_leaves_only_the_top_trainable():
    torch.manual_seed(0)
    model = MotionColBert.build(get_preset("test", text_trainable_layers=2), PART_CHANNEL_INDEX)
    layers = model.text.mlm.base_model.encoder.layer
    assert not any(p.requires_grad for p in model.text.mlm.base_model.embeddings.parameters())
    assert not any(p.requires_grad for layer in layers[:-2] for p in layer.parameters())
    assert all(p.requires_grad for layer in layers[-2:] for p in layer.parameters())
    names = [name for name, _ in model.param_groups()["text"]]
    assert names and not any(".embeddings." in name or ".layer.0." in name for name in names)


@torch.no_grad()
def test_special_and_padding_positions_do_not_change_scores(model):
    model.eval()
    batch = model.text.tokenize(["a person walks forward slowly", "walk"])
    text = model.encode_text(batch.input_ids, batch.attention_mask)
    motion = model.encode_motion(_angles(3))
    scores = model.scores(text, batch.valid_mask, motion)
    scrambled = text.clone()
    scrambled[batch.special_mask] = torch.nn.functional.normalize(torch.randn(int(batch.special_mask.sum()), 32), dim=-1)
    assert torch.allclose(model.scores(scrambled, batch.valid_mask, motion), scores)
    # "walk" padded in a batch scores as "walk" alone: padding never reaches the score
    alone = model.text.tokenize(["walk"])
    text_alone = model.encode_text(alone.input_ids, alone.attention_mask)
    assert torch.allclose(model.scores(text_alone, alone.valid_mask, motion)[0], scores[1], atol=1e-5)


def test_motion_patches_follow_the_layout(model):
    model.eval()
    angles = _angles(1)
    with torch.no_grad():
        image = model.motion.jami(angles)
        assert image.shape == (1, 1, 224, 224)
        # a change in the r_elbow channel during window 3 only changes that band/rows of the image
        changed = angles.clone()
        changed[0, 3 * 16:4 * 16, PART_CHANNEL_INDEX[12]] += 5.0
        diff = (model.motion.jami(changed) - image).abs()[0, 0] > 0
        rows, cols = diff.nonzero(as_tuple=True)
        assert set(rows.tolist()) == set(range(48, 64)) and set((cols // 16).tolist()) == {12}
        assert model.encode_motion(angles).shape == (1, LAYOUT.num_patches, 32)


def test_padding_windows_give_zero_patches_unless_disabled(model):
    """A 40-frame clip fills windows 0-2 (16 frames each); windows 3-13 hold only padding."""
    from inference_server.jami import crop_or_pad
    from inference_server.maxsim import maxsim_scores

    model.eval()
    padded, valid = crop_or_pad(torch.randn(40, 29).numpy())
    angles = torch.from_numpy(padded)[None]
    assert valid == 40
    unmasked = MotionColBert.build(get_preset("test"), PART_CHANNEL_INDEX, mask_padding=False).eval()
    unmasked.load_state_dict(model.state_dict())
    with torch.no_grad():
        masked_patches, plain_patches = model.encode_motion(angles)[0], unmasked.encode_motion(angles)[0]
    norms = masked_patches.norm(dim=-1)
    filled = torch.tensor([LAYOUT.window(p) < 3 for p in range(LAYOUT.num_patches)])
    assert torch.allclose(norms[filled], torch.ones(int(filled.sum()))) and (norms[~filled] == 0).all()
    assert torch.allclose(plain_patches.norm(dim=-1), torch.ones(LAYOUT.num_patches))
    assert torch.equal(masked_patches[filled], plain_patches[filled])
    # MaxSim over the masked patches = MaxSim over the clip's own windows alone
    tokens = torch.nn.functional.normalize(plain_patches[filled][:5] + 0.1, dim=-1)
    assert torch.allclose(maxsim_scores(tokens, masked_patches[None]), maxsim_scores(tokens, plain_patches[filled][None]))
    assert model.config.mask_padding and not read_config_default_mask_padding()


@pytest.mark.parametrize("frames", [1, 16, 17, 40, 224, 300])
def test_padding_mask_keeps_the_windows_jami_counts_as_filled(frames):
    from inference_server.jami import PATCH_WINDOWS, crop_or_pad, windows_of_frames
    from inference_server.model.colbert import padding_patch_mask

    padded, valid = crop_or_pad(torch.randn(frames, 29, generator=torch.Generator().manual_seed(frames)).numpy())
    mask = padding_patch_mask(torch.from_numpy(padded)[None])[0]
    assert torch.equal(mask, torch.from_numpy(PATCH_WINDOWS < windows_of_frames(valid)))


def read_config_default_mask_padding() -> bool:
    """Checkpoints written before the option existed load with the paper's unmasked scoring."""
    from inference_server.model.colbert import ModelConfig

    return ModelConfig(preset={}, part_channels=[]).mask_padding


def test_gradients_reach_both_encoders_and_heads(model):
    model.train()
    model.zero_grad()
    batch = model.text.tokenize(["a person jumps", "someone sits down", "waves the left hand"])
    masked, labels = model.text.mask_tokens(batch.input_ids, batch.special_mask, torch.Generator().manual_seed(0))
    out = model(_angles(3), batch.input_ids, batch.attention_mask, batch.valid_mask,
                masked, batch.attention_mask, labels)
    out["loss"].backward()
    assert out["mlm"] is not None and torch.isfinite(out["loss"])
    named = dict(model.named_parameters())
    for name in ["motion.bands.0.weight", "motion.bands.13.weight", "motion.vit.patch_embed.proj.weight",
                 "motion.vit.blocks.1.mlp.fc2.weight", "text.mlm.bert.embeddings.word_embeddings.weight",
                 "text.mlm.bert.encoder.layer.5.output.dense.weight",
                 "text.mlm.cls.predictions.transform.dense.weight", "text_proj.weight", "motion_proj.weight",
                 "log_scale"]:
        grad = named[name].grad
        assert grad is not None and grad.abs().sum() > 0, name
    groups = model.param_groups()
    assert sum(len(g) for g in groups.values()) == len(named)
    assert {n for n, _ in groups["heads"]} == {"text_proj.weight", "text_proj.bias",
                                               "motion_proj.weight", "motion_proj.bias", "log_scale"}


def test_mlm_masking_follows_bert_rule(model):
    texts = ["a person walks forward and then turns around to walk back slowly"] * 64
    batch = model.text.tokenize(texts)
    masked, labels = model.text.mask_tokens(batch.input_ids, batch.special_mask, torch.Generator().manual_seed(1))
    picked = labels != -100
    assert not (picked & batch.special_mask).any()
    assert torch.equal(labels[picked], batch.input_ids[picked])
    assert 0.10 < picked.sum() / (~batch.special_mask).sum() < 0.20
    as_mask = (masked[picked] == model.text.tokenizer.mask_token_id).float().mean()
    assert 0.7 < as_mask < 0.9
    assert torch.equal(masked[~picked], batch.input_ids[~picked])


def test_checkpoint_round_trip_gives_identical_scores(tmp_path):
    path = create_checkpoint(tmp_path / "ckpt", preset="test", seed=3)
    config = read_config(path)
    assert config["model"]["preset"]["name"] == "test" and config["model"]["pooling"] == "maxsim"
    assert len(config["angle_stats"]["mean"]) == 29
    first, second = load_model(path), load_model(path)
    assert first.fingerprint == second.fingerprint and len(first.fingerprint) == 64
    batch = first.text.tokenize(["a person kicks with the right leg", "crouch"])
    angles = _angles(2, seed=5)
    with torch.no_grad():
        scores = [m.scores(m.encode_text(batch.input_ids, batch.attention_mask), batch.valid_mask,
                           m.encode_motion(angles)) for m in (first, second)]
    assert torch.equal(scores[0], scores[1])
    # the tied MLM decoder survives the round trip
    assert first.text.mlm.cls.predictions.decoder.weight.data_ptr() == \
        first.text.mlm.bert.embeddings.word_embeddings.weight.data_ptr()


def test_broken_checkpoints_are_model_errors(tmp_path):
    with pytest.raises(ModelError, match="not a checkpoint"):
        load_model(tmp_path)
    path = create_checkpoint(tmp_path / "ckpt", preset="test")
    config = json.loads((path / "config.json").read_text())
    config["model"]["preset"]["dim"] = 48
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="weights do not fit"):
        load_model(path)
    with pytest.raises(ModelError, match="unknown preset"):
        get_preset("huge")


def test_initial_temperature_sets_the_logit_scale_and_is_stored(tmp_path):
    torch.manual_seed(0)
    model = MotionColBert.build(get_preset("test", dim=24), PART_CHANNEL_INDEX, temperature=0.02)
    assert model.log_scale.exp().item() == pytest.approx(50.0, rel=1e-5)
    assert model.text_proj.out_features == 24 and model.config.temperature == 0.02
    default = MotionColBert.build(get_preset("test"), PART_CHANNEL_INDEX)
    assert default.log_scale.exp().item() == pytest.approx(1 / 0.07, rel=1e-5)
    with pytest.raises(ValueError, match="outside"):
        MotionColBert.build(get_preset("test"), PART_CHANNEL_INDEX, temperature=0.001)
    loaded = load_model(save_checkpoint(model, tmp_path / "ckpt", identity_stats()))
    assert read_config(tmp_path / "ckpt")["model"]["temperature"] == 0.02
    assert torch.equal(loaded.log_scale, model.log_scale) and loaded.config.dim == 24


@torch.no_grad()
def test_the_smooth_max_is_used_only_while_training():
    from inference_server.maxsim import maxsim_scores
    torch.manual_seed(0)
    model = MotionColBert.build(get_preset("test"), PART_CHANNEL_INDEX, train_softness=0.1)
    text, motion = torch.nn.functional.normalize(torch.randn(2, 5, 32), dim=-1), \
        torch.nn.functional.normalize(torch.randn(3, 196, 32), dim=-1)
    mask = torch.ones(2, 5, dtype=torch.bool)
    assert torch.allclose(model.eval().scores(text, mask, motion), maxsim_scores(text, motion, mask))
    assert torch.allclose(model.train().scores(text, mask, motion), maxsim_scores(text, motion, mask, softness=0.1))
