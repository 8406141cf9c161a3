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


def train_frozen_pipeline(
    table: Path, out: Path, *, text_column: str, label_column: str, encoder: str,
    max_epochs: int = 3, hidden_width: int = 16,
) -> Path:  # fmt: skip
    """Train a pipeline the way an analyst does: `bertcls convert` the table into
    ``out/corpus``, then `bertcls train` configs/frozen.cfg on it (the paths as given are
    relative to ``out``, where training runs, as `spacy train` keeps them). Returns
    ``out/training/model-best``."""
    import os

    from typer.testing import CliRunner

    from .cli import app

    config = Path(__file__).resolve().parents[1] / "configs" / "frozen.cfg"
    runner = CliRunner()
    here = Path.cwd()
    out.mkdir(parents=True, exist_ok=True)
    os.chdir(out)
    try:
        steps = [
            ["convert", str(table), "--text-column", text_column, "--label-column",
             label_column, "--output", "corpus", "--test-size", "0"],
            ["train", str(config), "--output", "training", "--encoder", encoder,
             "--paths.train", "corpus/train.spacy", "--paths.dev", "corpus/dev.spacy",
             "--training.max_epochs", str(max_epochs),
             "--components.bert_textcat.model.hidden_width", str(hidden_width)],
        ]  # fmt: skip
        for args in steps:
            result = runner.invoke(app, args)
            if result.exit_code != 0:
                raise RuntimeError(f"bertcls {args[0]} failed: {result.output}") from (
                    result.exception
                )
    finally:
        os.chdir(here)
    return out / "training" / "model-best"
