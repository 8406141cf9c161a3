"""``bertcls optimize``: a trained pipeline -> the same pipeline with its encoder in ONNX Runtime.

The path: pipeline folder -> ``spacy.load`` -> each ``bert_textcat`` encoder (with its pooling
of the chosen layers) exported to ONNX by torch -> ONNX Runtime's transformer optimizer fuses
attention, GELU and layer norms -> optionally int8 (``--quantize int8``: dynamic quantization
of the matrix products, see ``INT8``) -> ``nlp.to_disk`` with ``encoder/model.onnx`` in place of
``model.safetensors`` and architecture ``spacy_bertcls.OnnxBertClassifier.v1`` -> loaded again
and checked against the source on a few texts -> renamed into ``--out``.

Tokenizer, windows, window pooling, head, labels, thresholds and ``positive_label`` are those
of the source pipeline (see ``spacy_bertcls.onnx_backend``). Needs the ``fast`` extra:
``pip install 'spacy-bertcls[fast]'``.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import spacy
import srsly
import torch
from spacy.util import load_config

from .architectures import get_shim
from .errors import BertclsError
from .onnx_backend import (
    INSTALL_HINT,
    ONNX_FILE,
    QUANTIZE_CHOICES,
    check_onnx_model,
    is_onnx_pipeline_model,
)
from .outputs import check_out_folder, staged_folder
from .shim import CLASSIFIER_FILE, ENCODER_DIR
from .windows import pad_windows

ONNX_ARCHITECTURE = "spacy_bertcls.OnnxBertClassifier.v1"
OPSET = 17
# Largest difference of a probability between the source pipeline and its float32 export on
# the check texts; above it the export is wrong (measured: about 1e-6), not merely rounded.
FLOAT32_TOLERANCE = 1e-3
# Hugging Face model types whose layers ONNX Runtime's "bert" fusions recognize; others are
# exported unfused (ONNX Runtime still applies its generic graph optimizations at load).
FUSED_MODEL_TYPES = frozenset({"bert", "roberta", "xlm-roberta", "camembert", "distilbert"})

#: Texts the optimized pipeline is compared on against the source: short and long (several
#: windows), punctuation, digits, emoji, non-Latin script.
CHECK_TEXTS = (
    "ok",
    "see you at lunch",
    "WIN a free prize!!! call 0800 123 456 now to claim",
    "@united why is my flight delayed AGAIN?? 3 hours on the tarmac #fail",
    "thanks for the great service today, the crew was lovely 😊",
    "Спасибо за отличный полёт",
    "東京行きの便は遅れています",
    " ".join(["the flight was delayed and then cancelled and nobody told us anything at all"] * 20),
)


@dataclass(frozen=True)
class Int8Recipe:
    """How ONNX Runtime's dynamic quantization is applied (``quantize_dynamic``'s options).

    op_types: operator types whose weights become int8 (empty: all that ONNX Runtime can).
    per_channel: one scale per output channel of a weight rather than one per matrix.
    reduce_range: 7-bit weights: on CPUs without VNNI (AVX2 only) the int8 products of
        8-bit weights can saturate in 16 bits; 7 bits cannot.
    exclude_patterns: regular expressions; nodes whose name matches one stay float32.
    """

    op_types: tuple[str, ...] = ("MatMul", "Attention")
    per_channel: bool = True
    reduce_range: bool = True
    exclude_patterns: tuple[str, ...] = ()


#: The recipe of ``--quantize int8`` (chosen by benchmarks/optimize.py; see benchmarks/RESULTS.md).
INT8 = Int8Recipe()


@dataclass
class OptimizeSummary:
    """What ``optimize_pipeline`` wrote, and how close the result is to the source."""

    source: Path
    out: Path
    quantize: str
    #: Names of the converted bert_textcat components.
    components: list[str]
    #: Size in MB of the encoder weights before (safetensors) and after (ONNX), all components.
    size_before_mb: float
    size_after_mb: float
    #: Fused operators per kind (ONNX Runtime's transformer optimizer), all components.
    fused: dict[str, int] = field(default_factory=dict)
    #: The check: texts compared, largest probability difference, share of equal top labels.
    n_check_texts: int = 0
    max_prob_diff: float = 0.0
    agreement: float = 1.0

    def format(self) -> str:
        fused = ", ".join(f"{k} {v}" for k, v in self.fused.items() if v) or "none"
        return "\n".join(
            [
                f"Optimized {self.source} -> {self.out} (quantize: {self.quantize})",
                f"  components: {', '.join(self.components)}",
                f"  encoder: {self.size_before_mb:,.1f} MB (safetensors) -> "
                f"{self.size_after_mb:,.1f} MB (ONNX); fused: {fused}",
                f"  check on {self.n_check_texts} texts: largest probability difference "
                f"{self.max_prob_diff:.2g}, same top label for {self.agreement:.0%}",
                f"  load it with spacy.load('{self.out}') or any bertcls command; measure it on "
                "your data with `bertcls evaluate`",
            ]
        )


def check_optimize_dependencies() -> None:
    """Raise BertclsError unless onnx and onnxruntime (the ``fast`` extra) are installed."""
    missing = []
    for module in ("onnx", "onnxruntime"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise BertclsError(
            f"bertcls optimize needs {' and '.join(missing)}, which are not installed: "
            f"{INSTALL_HINT}."
        )


def optimize_pipeline(
    pipeline: str | Path,
    out: str | Path,
    *,
    quantize: str = "none",
    overwrite: bool = False,
    recipe: Int8Recipe = INT8,
    check_texts: Sequence[str] = CHECK_TEXTS,
) -> OptimizeSummary:
    """Write ``pipeline`` with every ``bert_textcat`` encoder exported to ONNX into ``out``.

    quantize: "none" (float32; predictions equal the source's up to rounding) or "int8"
        (smaller and faster; predictions close to the source's, see ``INT8``).
    overwrite: replace an existing, non-empty ``out``.
    recipe: the int8 quantization (for ``quantize = "int8"``); benchmarks compare others.
    check_texts: texts on which the result is compared with the source.
    """
    from .pipelines import load_pipeline

    if quantize not in QUANTIZE_CHOICES:
        raise BertclsError(
            f"--quantize {quantize!r}: use {' or '.join(map(repr, QUANTIZE_CHOICES))}."
        )
    pipeline, out = Path(pipeline), Path(out)
    check_out_folder(pipeline, out, overwrite=overwrite)
    check_optimize_dependencies()
    nlp = load_pipeline(pipeline)
    names = bert_textcat_names(nlp, pipeline)
    # Written beside --out and renamed into place once checked: never half a pipeline there.
    with staged_folder(out) as stage:
        nlp.to_disk(stage)
        config = load_config(stage / "config.cfg", interpolate=False)
        summary = OptimizeSummary(pipeline, out, quantize, names, 0.0, 0.0)
        for name in names:
            model_dir = stage / name / "model"
            summary.size_before_mb += weights_mb(model_dir / ENCODER_DIR)
            fused = export_encoder(
                nlp.get_pipe(name).model,
                model_dir / ENCODER_DIR / ONNX_FILE,
                quantize=quantize,
                recipe=recipe,
            )
            for kind, count in fused.items():
                summary.fused[kind] = summary.fused.get(kind, 0) + count
            for weights in (model_dir / ENCODER_DIR).glob("model.safetensors*"):
                weights.unlink()
            summary.size_after_mb += (model_dir / ENCODER_DIR / ONNX_FILE).stat().st_size / 1e6
            info = srsly.read_json(model_dir / CLASSIFIER_FILE)
            info.update({"encoder_format": "onnx", "quantize": quantize})
            srsly.write_json(model_dir / CLASSIFIER_FILE, info)
            block = config["components"][name]["model"]
            block["@architectures"] = ONNX_ARCHITECTURE
            block["quantize"] = quantize
            block["threads"] = 0
        config.to_disk(stage / "config.cfg")
        optimized = spacy.load(stage)
        compare_on_texts(nlp, optimized, names, check_texts, summary)
        if summary.quantize == "none" and summary.max_prob_diff > FLOAT32_TOLERANCE:
            raise BertclsError(
                f"The float32 ONNX export of {pipeline} gives probabilities up to "
                f"{summary.max_prob_diff:.3g} away from the pipeline's own (expected below "
                f"{FLOAT32_TOLERANCE:g}); it is not written. Please report this with the "
                "pipeline's encoder name."
            )
        del optimized
    return summary


def bert_textcat_names(nlp: spacy.Language, pipeline: Path) -> list[str]:
    """The pipeline's bert_textcat components; an error if none, or if already optimized."""
    names = [name for name in nlp.pipe_names if nlp.get_pipe_meta(name).factory == "bert_textcat"]
    if not names:
        raise BertclsError(
            f"{pipeline} has no bert_textcat component (its components: "
            f"{', '.join(nlp.pipe_names) or 'none'}); bertcls optimize exports bert_textcat "
            "encoders only."
        )
    done = [name for name in names if is_onnx_pipeline_model(nlp.get_pipe(name).model)]
    if done:
        raise BertclsError(
            f"{pipeline} is already optimized (the encoder of {', '.join(done)} is an ONNX "
            "file). Run bertcls optimize on the original pipeline."
        )
    return names


def weights_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.glob("model.safetensors*")) / 1e6


class PooledEncoder(torch.nn.Module):
    """What the ONNX file computes: word-piece windows -> one pooled vector per window."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.module.encode(input_ids, attention_mask)


def export_encoder(
    model: Any, path: Path, *, quantize: str, recipe: Int8Recipe = INT8
) -> dict[str, int]:
    """Export the encoder (and pooling) of a ``BertClassifier.v1`` model to ``path``: fused by
    ONNX Runtime's transformer optimizer, int8 if ``quantize`` says so. Returns the fused
    operator counts."""
    shim = get_shim(model)
    module = shim.module
    config = module.encoder.config
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        ids, mask = example_inputs(shim)
        wrapper = PooledEncoder(module).eval().cpu()
        with warnings.catch_warnings(), torch.no_grad():
            # The TorchScript exporter (dynamo=False) gives the graph ONNX Runtime's fusions
            # recognize; its deprecation and tracer notes are about other kinds of models.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                (ids, mask),
                str(raw),
                dynamo=False,
                input_names=["input_ids", "attention_mask"],
                output_names=["features"],
                dynamic_axes={
                    "input_ids": {0: "windows", 1: "pieces"},
                    "attention_mask": {0: "windows", 1: "pieces"},
                    "features": {0: "windows"},
                },
                opset_version=OPSET,
                do_constant_folding=True,
            )
        module.to(shim.device)
        fused_path, fused = fuse(raw, config)
        if quantize == "int8":
            quantize_int8(fused_path, path, recipe)
        else:
            shutil.copyfile(fused_path, path)
    check_onnx_model(path.read_bytes(), path)
    return fused


def example_inputs(shim: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Two windows of different lengths (so the mask has padding) to trace the export with."""
    windows = shim.windows(["an example text to trace the encoder with", "short"])
    return pad_windows(windows.input_ids, shim.tokenizer.pad_token_id, torch.device("cpu"))


def fuse(raw: Path, config: Any) -> tuple[Path, dict[str, int]]:
    """ONNX Runtime's transformer fusions (attention, GELU, layer norms, embeddings) where the
    model type has them; the file unchanged otherwise."""
    if config.model_type not in FUSED_MODEL_TYPES:
        return raw, {}
    from onnxruntime.transformers import optimizer

    fused_path = raw.with_name("fused.onnx")
    model_type = "bert"
    optimized = optimizer.optimize_model(
        str(raw),
        model_type=model_type,
        num_heads=config.num_attention_heads,
        hidden_size=config.hidden_size,
        opt_level=0,
    )
    optimized.save_model_to_file(str(fused_path), use_external_data_format=False)
    stats = {k: int(v) for k, v in optimized.get_fused_operator_statistics().items() if v}
    return fused_path, stats


def quantize_int8(source: Path, dest: Path, recipe: Int8Recipe) -> None:
    """ONNX Runtime's dynamic int8 quantization of ``source`` into ``dest``, as ``recipe`` says."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    nodes = [n.name for n in onnx.load(str(source), load_external_data=False).graph.node]
    exclude = [n for n in nodes if any(re.search(p, n) for p in recipe.exclude_patterns)]
    # The quantizer logs a hint about pre-processing (shape inference) for models it cannot
    # infer; the fused graph needs none, so it would only confuse.
    logging.disable(logging.WARNING)
    try:
        quantize_dynamic(
            str(source),
            str(dest),
            op_types_to_quantize=list(recipe.op_types) or None,
            per_channel=recipe.per_channel,
            reduce_range=recipe.reduce_range,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=exclude,
            # The fused operators (com.microsoft) have no shape inference: their outputs are
            # float32, which the quantizer must be told.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        logging.disable(logging.NOTSET)


def compare_on_texts(
    source: spacy.Language,
    optimized: spacy.Language,
    names: list[str],
    texts: Sequence[str],
    summary: OptimizeSummary,
) -> None:
    """Fill the summary's check: probabilities of both pipelines on ``texts``."""
    texts = [t for t in texts if t.strip()]
    diffs, same = [], []
    for name in names:
        before = source.get_pipe(name).predict([source.make_doc(t) for t in texts])
        after = optimized.get_pipe(name).predict([optimized.make_doc(t) for t in texts])
        before, after = np.asarray(before), np.asarray(after)
        diffs.append(float(np.abs(before - after).max()))
        same.extend((before.argmax(axis=1) == after.argmax(axis=1)).tolist())
    summary.n_check_texts = len(texts)
    summary.max_prob_diff = max(diffs)
    summary.agreement = float(np.mean(same))
