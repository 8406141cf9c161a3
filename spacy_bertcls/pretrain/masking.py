"""Texts -> masked batches: word-piece sequences and Hugging Face's masking collators."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import BertclsError
from .settings import PretrainSettings

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerFast

TOKENIZE_BATCH = 1000


@dataclass
class Pieces:
    """Word-piece sequences, special tokens included, stored flat (small for many texts)."""

    ids: np.ndarray  # int64, all sequences one after the other
    offsets: np.ndarray  # int64, sequence i is ids[offsets[i]:offsets[i + 1]]
    special: np.ndarray  # bool, per id: a special token ([CLS], [SEP]), never masked

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def features(self, rows: Iterable[int], *, whole_word: bool) -> list[dict[str, list[int]]]:
        """The collator's input for these sequences."""
        found = []
        for row in rows:
            start, end = self.offsets[row], self.offsets[row + 1]
            feature = {"input_ids": self.ids[start:end].tolist()}
            if not whole_word:  # the whole-word collator finds special tokens itself
                feature["special_tokens_mask"] = self.special[start:end].astype(int).tolist()
            found.append(feature)
        return found


def tokenize(tokenizer: PreTrainedTokenizerFast, texts: Sequence[str], max_length: int) -> Pieces:
    """Cut texts into word-piece sequences of at most ``max_length`` (a long text gives several
    sequences, so no text is truncated)."""
    parts: list[np.ndarray] = []
    lengths: list[int] = []
    for start in range(0, len(texts), TOKENIZE_BATCH):
        encoded = tokenizer(
            list(texts[start : start + TOKENIZE_BATCH]),
            truncation=True,
            max_length=max_length,
            return_overflowing_tokens=True,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        for ids in encoded["input_ids"]:
            parts.append(np.asarray(ids, dtype=np.int64))
            lengths.append(len(ids))
    ids = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    special = np.isin(ids, np.asarray(tokenizer.all_special_ids, dtype=np.int64))
    return Pieces(ids=ids, offsets=offsets, special=special)


def make_collator(tokenizer: PreTrainedTokenizerFast, settings: PretrainSettings, seed: int):
    """Hugging Face's masking collator (15 % chosen; 80 % [MASK], 10 % random, 10 % kept),
    with its own random generator so that masking is reproducible and resumable."""
    import torch
    from transformers import DataCollatorForLanguageModeling, DataCollatorForWholeWordMask

    kind = DataCollatorForWholeWordMask if settings.whole_word else DataCollatorForLanguageModeling
    # A seed (not None) also makes the whole-word collator shuffle with the generator rather
    # than Python's global random module.
    collator = kind(tokenizer, mlm=True, mlm_probability=settings.mlm_probability, seed=seed + 1)
    collator.generator = torch.Generator().manual_seed(seed + 1)
    return collator


def masked_batch(
    collator,
    tokenizer: PreTrainedTokenizerFast,
    pieces: Pieces,
    rows: Sequence[int],
    *,
    whole_word: bool,
) -> dict[str, torch.Tensor]:
    """Pad and mask the sequences ``rows``: input_ids, attention_mask, labels (-100 where
    nothing is predicted)."""
    import torch

    with warnings.catch_warnings():
        # Checked by check_whole_word: the tokenizer is a "##" WordPiece one, whatever its class.
        warnings.filterwarnings("ignore", message="DataCollatorForWholeWordMask is only")
        batch = collator(pieces.features(rows, whole_word=whole_word))
    lengths = torch.as_tensor([pieces.offsets[r + 1] - pieces.offsets[r] for r in rows])
    width = batch["input_ids"].shape[1]
    positions = torch.arange(width)[None, :]
    # From the lengths rather than from pad ids: a random replacement can be the pad id.
    if tokenizer.padding_side == "left":
        attention = positions >= (width - lengths)[:, None]
    else:
        attention = positions < lengths[:, None]
    return {
        "input_ids": batch["input_ids"],
        "attention_mask": attention.long(),
        "labels": batch["labels"],
    }


def check_whole_word(tokenizer: PreTrainedTokenizerFast, shown_name: str) -> None:
    """Whole-word masking finds words by the "##" of WordPiece continuations and skips the
    [CLS] and [SEP] tokens by name; other tokenizers would get single pieces masked."""
    model = tokenizer.backend_tokenizer.model
    wordpiece = type(model).__name__ == "WordPiece"
    prefix = getattr(model, "continuing_subword_prefix", None)
    named = (tokenizer.cls_token, tokenizer.sep_token) == ("[CLS]", "[SEP]")
    if not (wordpiece and prefix == "##" and named):
        raise BertclsError(
            f"--whole-word needs a WordPiece tokenizer that marks continued words with '##' "
            f"(BERT, MiniLM, ELECTRA); the tokenizer of {shown_name} is a "
            f"{type(model).__name__} one. Leave out --whole-word to mask word pieces."
        )


def batch_rows(step: int, size: int, batch_size: int, seed: int) -> list[int]:
    """The sequences of step ``step`` (0-based): a fresh shuffle every epoch, decided by the
    seed and the step alone, so a resumed run sees the batches it would have seen."""
    import torch

    per_epoch = -(-size // batch_size)
    epoch, position = divmod(step, per_epoch)
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(size, generator=generator)
    return order[position * batch_size : (position + 1) * batch_size].tolist()
