"""Helpers for tests and benchmarks that need a BERT encoder without downloading one.

``make_tiny_bert`` writes a randomly initialized, very small BERT (Hugging Face format,
safetensors) and a WordPiece tokenizer made from the given texts: training and labeling with it
take seconds, so unit tests and memory benchmarks can exercise the real code paths.
"""

from __future__ import annotations

import re
from pathlib import Path


def make_tiny_bert(
    path: Path,
    texts: list[str],
    *,
    hidden: int = 32,
    layers: int = 2,
    max_positions: int = 128,
    seed: int = 0,
) -> Path:
    """Save a randomly initialized 2-layer BERT and a WordPiece tokenizer whose vocabulary is
    the words of ``texts`` plus single characters, so any text tokenizes."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = sorted({w for t in texts for w in re.findall(r"\w+|[^\w\s]", t.lower())})
    chars = [chr(c) for c in range(33, 127)]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += list(dict.fromkeys(words + chars + ["##" + c for c in chars]))
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf8")
    tokenizer = BertTokenizerFast(vocab_file=str(path / "vocab.txt"), do_lower_case=True)
    tokenizer.model_max_length = max_positions
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=max_positions,
    )
    BertModel(config).save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path
