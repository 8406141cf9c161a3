"""Cutting texts into word-piece windows that fit the encoder, and batching them.

spacy-transformers' ``strided_spans`` cuts by spaCy tokens, which does not bound the number of
word pieces; here the windows are cut in word pieces, so no text is silently truncated by the
tokenizer and every window fits ``max_length`` exactly.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerFast

LONG_TEXT_MODES = ("window", "truncate")


@dataclass
class Windows:
    """Word-piece windows of a batch of texts, each with its special tokens."""

    input_ids: list[list[int]]
    #: For each window, the position of its text in the batch.
    text_index: list[int]


def window_starts(n_pieces: int, size: int, stride: int, long_text: str) -> range:
    """Start offsets of the windows over ``n_pieces`` word pieces.

    Windows of ``size`` pieces start every ``stride`` pieces until one reaches the end, so
    consecutive windows overlap by ``size - stride`` pieces (spacy-transformers' convention).
    """
    if n_pieces <= size or long_text == "truncate":
        return range(0, 1)
    # The last window starts at the first multiple of stride from which it reaches the end.
    last = -(-(n_pieces - size) // stride) * stride
    return range(0, last + 1, stride)


def make_windows(
    tokenizer: PreTrainedTokenizerFast,
    texts: Sequence[str],
    *,
    max_length: int,
    stride: int,
    long_text: str,
) -> Windows:
    """Tokenize ``texts`` and cut each into windows of at most ``max_length`` pieces."""
    size = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    # verbose=False: long texts are expected here; the tokenizer's length warning would only
    # alarm users about a truncation that windowing prevents.
    pieces = tokenizer(
        list(texts),
        add_special_tokens=False,
        truncation=False,
        return_attention_mask=False,
        return_token_type_ids=False,
        verbose=False,
    )["input_ids"]
    input_ids: list[list[int]] = []
    text_index: list[int] = []
    for i, ids in enumerate(pieces):
        for start in window_starts(len(ids), size, stride, long_text):
            input_ids.append(tokenizer.build_inputs_with_special_tokens(ids[start : start + size]))
            text_index.append(i)
    return Windows(input_ids, text_index)


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """Index batches in order of length, so each batch pads to a similar length."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def pad_windows(
    windows: Sequence[list[int]], pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Input ids and attention mask for a batch, padded to its longest window."""
    import torch

    width = max(len(w) for w in windows)
    ids = torch.full((len(windows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(windows), width), dtype=torch.long)
    for row, window in enumerate(windows):
        ids[row, : len(window)] = torch.tensor(window, dtype=torch.long)
        mask[row, : len(window)] = 1
    return ids.to(device), mask.to(device)
