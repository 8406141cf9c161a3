"""The encoder of an optimized pipeline (``bertcls optimize``): an ONNX file run by ONNX Runtime.

An optimized pipeline is the same ``bert_textcat`` component with the same tokenizer, windows,
pooling, window pooling and head; only the encoder's forward pass (word-piece windows in, one
pooled vector per window out) runs in ONNX Runtime instead of PyTorch. The architecture
``spacy_bertcls.OnnxBertClassifier.v1`` takes the settings of ``spacy_bertcls.BertClassifier.v1``
plus ``quantize`` and ``threads``, and predicts only: training it is refused.

Saved layout (``bert_textcat/model/``): ``encoder/`` with ``config.json``, the tokenizer files and
``model.onnx`` (ONNX is protobuf: tensors and a graph of standard operators, no code),
``head.safetensors`` and ``classifier.json``. Before ONNX Runtime sees ``model.onnx`` it is
checked to keep all its weights inside the file and to use only the standard ONNX operators and
ONNX Runtime's built-in ``com.microsoft`` ones, so loading reads no other file and no custom
operator library; the folder is refused, as for a PyTorch encoder, if it holds Python files or an
``auto_map``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import srsly
import torch
from safetensors.torch import load_file, save_file
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model
from thinc.types import Floats2d
from torch import nn

from .architectures import build_bert_classifier, forward
from .encoder import (
    DEFAULT_ENCODER,
    ENCODER_MODEL_TYPES,
    JSON_FILES,
    TOKENIZER_FILES,
    check_safetensors,
    read_json_file,
    refuse_custom_code,
)
from .errors import BertclsError
from .shim import (
    CLASSIFIER_FILE,
    ENCODER_DIR,
    HEAD_FILE,
    SHAPE_SETTINGS,
    BertClassifierShim,
    check_head_fits,
    read_model_dir_info,
)
from .torch_modules import BertClassifierModule

ONNX_FILE = "model.onnx"
QUANTIZE_CHOICES = ("none", "int8")
#: Operator domains an optimized encoder may use: standard ONNX and ONNX Runtime's built-in
#: contrib operators (fused attention, layer norms, int8 matrix products).
ALLOWED_DOMAINS = frozenset({"", "ai.onnx", "com.microsoft"})
INSTALL_HINT = "pip install 'spacy-bertcls[fast]' (onnxruntime and onnx)"
TRAINING_REFUSED = (
    "This pipeline was made by `bertcls optimize` for fast prediction: its encoder is an ONNX "
    "file, which cannot be trained. Train (or update) the original pipeline instead, then run "
    "`bertcls optimize` on it again."
)


@registry.architectures("spacy_bertcls.OnnxBertClassifier.v1")
def build_onnx_bert_classifier(
    encoder: str = DEFAULT_ENCODER,
    pooling: str = "mean",
    layers: list[int] | None = None,
    head: str = "mlp",
    hidden_width: int = 512,
    dropout: float = 0.1,
    max_length: int = 128,
    stride: int = 96,
    long_text: str = "window",
    window_pooling: str = "mean",
    encoder_batch_size: int = 64,
    feature_cache_size: int = 500_000,
    mixed_precision: bool = False,
    grad_scaler_config: dict | None = None,
    quantize: str = "none",
    threads: int = 0,
    nO: int | None = None,
) -> Model[list[Doc], Floats2d]:
    """``spacy_bertcls.BertClassifier.v1`` with its encoder exported to ONNX, for prediction.

    Written by ``bertcls optimize``; the settings up to ``grad_scaler_config`` are the source
    pipeline's (see ``BertClassifier.v1``; ``encoder`` only says where the encoder came from,
    ``mixed_precision`` and ``grad_scaler_config`` are unused: the encoder runs on the CPU).
    quantize: "none" (float32) or "int8" (the encoder's matrix products in int8): what
        ``bertcls optimize --quantize`` wrote; it must match the saved model.
    threads: ONNX Runtime's threads for the encoder; 0 uses as many as torch does
        (``torch.get_num_threads()``, e.g. set by ``OMP_NUM_THREADS``).
    """
    if quantize not in QUANTIZE_CHOICES:
        raise BertclsError(
            f"quantize = {quantize!r} is not one of {', '.join(map(repr, QUANTIZE_CHOICES))}."
        )
    if threads < 0:
        raise BertclsError(f"threads = {threads} must be 0 (as torch) or a positive number.")
    # The settings shared with BertClassifier.v1 are checked by it, with its messages.
    checked = build_bert_classifier(
        encoder=encoder,
        pooling=pooling,
        layers=layers,
        head=head,
        hidden_width=hidden_width,
        dropout=dropout,
        max_length=max_length,
        stride=stride,
        long_text=long_text,
        window_pooling=window_pooling,
        encoder_batch_size=encoder_batch_size,
        feature_cache_size=feature_cache_size,
        mixed_precision=mixed_precision,
        grad_scaler_config=grad_scaler_config,
        nO=nO,
    )
    settings = dict(checked.shims[0].cfg, quantize=quantize, threads=threads)
    return Model(
        "bert_classifier_onnx",
        onnx_forward,
        init=onnx_init,
        dims={"nO": nO},
        shims=[OnnxBertClassifierShim(settings)],
    )


def onnx_forward(model: Model, docs: list[Doc], is_train: bool):
    """``BertClassifier.v1``'s forward pass for prediction; a training step is refused."""
    if is_train:
        raise BertclsError(TRAINING_REFUSED)
    return forward(model, docs, is_train)


def onnx_init(model: Model, X: list[Doc] | None = None, Y: Floats2d | None = None) -> None:
    raise BertclsError(
        f"{TRAINING_REFUSED} (nlp.initialize() would start a new model; an optimized pipeline "
        "only predicts with the model it was made from.)"
    )


class OnnxSession:
    """An ONNX Runtime session over an encoder file, and the file's bytes (to save it again).

    A session only reads its weights, so copies of the model (``nlp.resume_training()`` takes
    one) share it.
    """

    def __init__(self, data: bytes, threads: int, shown_name: str):
        ort = import_onnxruntime()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        # Between encoder batches the tokenizer and the head run: idle ONNX Runtime threads
        # that spin would take the cores from them.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.load_model_format", "ONNX")
        try:
            self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise BertclsError(
                f"ONNX Runtime could not load {shown_name} ({err}). Copy the pipeline again, or "
                "run `bertcls optimize` again."
            ) from err
        self.data = data

    def __deepcopy__(self, memo: dict) -> OnnxSession:
        return self

    def run(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        feeds = {
            "input_ids": input_ids.cpu().numpy(),
            "attention_mask": attention_mask.cpu().numpy(),
        }
        (features,) = self.session.run(["features"], feeds)
        return torch.from_numpy(features).to(input_ids.device)


class OnnxEncoder(nn.Module):
    """Stands where the Hugging Face encoder stands in ``BertClassifierModule``: it has the
    encoder's ``config`` but no parameters, and its weights are in the ONNX session."""

    def __init__(self, config: Any, session: OnnxSession):
        super().__init__()
        self.config = config
        self.session = session


class OnnxBertClassifierModule(BertClassifierModule):
    """``BertClassifierModule`` whose ``encode`` (windows -> pooled vectors, the chosen layers
    concatenated) runs in ONNX Runtime; the head is the same torch head."""

    encoder: OnnxEncoder

    @property
    def encoder_frozen(self) -> bool:
        return True

    def freeze(self, frozen: bool) -> None:
        # Nothing to freeze: the encoder has no torch parameters and is never trained.
        self.train(self.training)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder.session.run(input_ids, attention_mask)


class OnnxBertClassifierShim(BertClassifierShim):
    """``BertClassifierShim`` that loads and saves the encoder as ``encoder/model.onnx``."""

    def build_onnx(self, encoder: OnnxEncoder, tokenizer: Any, n_labels: int) -> None:
        module = self.make_module(OnnxBertClassifierModule, encoder, n_labels)
        # ONNX Runtime runs on the CPU here; the head follows the current device (a GPU after
        # spacy.require_gpu()), and encode() moves the pooled vectors to it.
        from thinc.api import get_torch_default_device

        self._model = module.eval().to(get_torch_default_device())
        self.tokenizer = tokenizer
        self.n_labels = n_labels
        self.feature_cache.clear()
        self._mixed_precision = False
        self._trainable = None

    def begin_update(self, inputs):
        raise BertclsError(TRAINING_REFUSED)

    def to_disk(self, path: Path) -> None:
        module = self.module
        path.mkdir(parents=True, exist_ok=True)
        encoder_dir = path / ENCODER_DIR
        encoder_dir.mkdir(parents=True, exist_ok=True)
        module.encoder.config.save_pretrained(encoder_dir)
        self.tokenizer.save_pretrained(encoder_dir)
        (encoder_dir / ONNX_FILE).write_bytes(module.encoder.session.data)
        head_state = {k: v.detach().cpu().contiguous() for k, v in module.head.state_dict().items()}
        save_file(head_state, str(path / HEAD_FILE))
        srsly.write_json(path / CLASSIFIER_FILE, self.classifier_info())

    def classifier_info(self) -> dict[str, Any]:
        """classifier.json: what the head was built for, and the encoder's format."""
        info = {
            "n_labels": self.n_labels,
            "hidden_size": self.module.encoder.config.hidden_size,
            "encoder_format": "onnx",
            "quantize": self.cfg["quantize"],
        }
        info.update({k: self.cfg[k] for k in SHAPE_SETTINGS})
        return info

    def from_disk(self, path: Path) -> OnnxBertClassifierShim:
        info = read_model_dir_info(
            path,
            what="optimized bert_textcat model",
            fix="Copy the pipeline again, or run `bertcls optimize` again.",
        )
        n_labels = info["n_labels"]
        if info.get("encoder_format") != "onnx":
            raise BertclsError(
                f"{path} holds a PyTorch encoder, but the config's architecture is "
                "spacy_bertcls.OnnxBertClassifier.v1 (written by `bertcls optimize`). Load the "
                "folder that `bertcls optimize --out` wrote, or use BertClassifier.v1."
            )
        for key in (*SHAPE_SETTINGS, "quantize"):
            if info.get(key) != self.cfg[key]:
                raise BertclsError(
                    f"The saved model in {path} has {key} = {info.get(key)!r} but the config "
                    f"says {self.cfg[key]!r}. Use the saved value."
                )
        check_safetensors(path / HEAD_FILE)
        state = load_file(str(path / HEAD_FILE))
        encoder, tokenizer = load_onnx_encoder(path / ENCODER_DIR, threads=self.cfg["threads"])
        max_positions = getattr(encoder.config, "max_position_embeddings", None)
        if max_positions is not None and self.cfg["max_length"] > max_positions:
            raise BertclsError(
                f"max_length = {self.cfg['max_length']} is longer than the encoder accepts "
                f"({max_positions} positions). Set max_length to {max_positions} or less."
            )
        self.build_onnx(encoder, tokenizer, n_labels)
        check_head_fits(path, state, self.module.head.state_dict(), n_labels)
        self.module.head.load_state_dict(state)
        return self


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as err:
        raise BertclsError(
            f"This pipeline's encoder is an ONNX file (made by `bertcls optimize`), which needs "
            f"ONNX Runtime: {INSTALL_HINT}."
        ) from err
    return onnxruntime


def load_onnx_encoder(path: Path, *, threads: int = 0) -> tuple[OnnxEncoder, Any]:
    """The ONNX encoder and fast tokenizer saved in ``path`` (an optimized pipeline's
    ``bert_textcat/model/encoder``), checked as ``check_onnx_model`` says first."""
    from transformers import AutoConfig, AutoTokenizer

    refuse_custom_code(path)
    onnx_path = path / ONNX_FILE
    missing = [name for name in ("config.json", ONNX_FILE) if not (path / name).is_file()]
    if not any((path / f).exists() for f in TOKENIZER_FILES):
        missing.append("tokenizer files (" + ", ".join(TOKENIZER_FILES[:2]) + ", ...)")
    if missing:
        raise BertclsError(
            f"The optimized encoder in {path} lacks {'; '.join(missing)}. Copy the pipeline "
            "again, or run `bertcls optimize` again."
        )
    for name in JSON_FILES:
        if (path / name).exists():
            read_json_file(path / name)
    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(
            path, local_files_only=True, use_fast=True, trust_remote_code=False
        )
    except (OSError, ValueError) as err:
        raise BertclsError(
            f"Could not load the encoder's config or tokenizer in {path}: {err}"
        ) from err
    if config.model_type not in ENCODER_MODEL_TYPES:
        raise BertclsError(
            f"The encoder in {path} is a '{config.model_type}' model, not a BERT-family encoder."
        )
    if not getattr(tokenizer, "is_fast", False):
        raise BertclsError(f"The encoder in {path} has no fast tokenizer (tokenizer.json).")
    data = onnx_path.read_bytes()
    check_onnx_model(data, onnx_path)
    return OnnxEncoder(config, OnnxSession(data, threads, str(onnx_path))), tokenizer


def check_onnx_model(data: bytes, shown_name: Path | str) -> None:
    """Refuse an ONNX model that would make ONNX Runtime read other files or load code.

    Checked: it parses as an ONNX model; no tensor (in the graph or its subgraphs) keeps its
    data in an external file; every operator is a standard ONNX one or one of ONNX Runtime's
    built-in ``com.microsoft`` ones (a custom domain needs a custom-operator library); there
    are no model-local functions; the graph has the inputs and output the component feeds.
    """
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as err:
        raise BertclsError(
            f"{shown_name} is damaged: it is not an ONNX model ({err}). Copy the pipeline "
            "again, or run `bertcls optimize` again."
        ) from err
    problems: list[str] = []
    domains = {o.domain for o in model.opset_import} | {n.domain for n in iter_nodes(model.graph)}
    unknown = sorted(domains - ALLOWED_DOMAINS)
    if unknown:
        problems.append(f"it uses operators of the domains {unknown}")
    if model.functions:
        problems.append(f"it defines {len(model.functions)} local functions")
    external = [t.name for t in iter_tensors(model.graph) if t.data_location == t.EXTERNAL]
    if external:
        problems.append(f"tensors keep their data in other files ({', '.join(external[:3])})")
    inputs = [i.name for i in model.graph.input]
    outputs = [o.name for o in model.graph.output]
    if inputs != ["input_ids", "attention_mask"] or outputs != ["features"]:
        problems.append(
            f"its inputs are {inputs} and outputs {outputs}, not ['input_ids', "
            "'attention_mask'] and ['features']"
        )
    if problems:
        raise BertclsError(
            f"{shown_name} is not an encoder written by `bertcls optimize`: "
            f"{'; '.join(problems)}. It is not loaded. Run `bertcls optimize` on the original "
            "pipeline to make one."
        )


def iter_nodes(graph: Any):
    """Every node of an ONNX graph and of its subgraphs (If, Loop, Scan bodies)."""
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            for sub in (attribute.g, *attribute.graphs):
                if sub is not None and len(sub.node):
                    yield from iter_nodes(sub)


def iter_tensors(graph: Any):
    """Every tensor stored in an ONNX graph and its subgraphs."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            for sub in (attribute.g, *attribute.graphs):
                if sub is not None and len(sub.node):
                    yield from iter_tensors(sub)


def is_onnx_pipeline_model(model: Model) -> bool:
    """Whether a ``bert_textcat`` model runs its encoder in ONNX Runtime."""
    return any(isinstance(shim, OnnxBertClassifierShim) for shim in model.shims)
