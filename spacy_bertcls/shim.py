"""The thinc shim that holds the torch network, its tokenizer and the frozen-feature cache.

thinc's ``PyTorchShim`` already handles devices, mixed precision, gradient scaling and the
optimizer step; this subclass adds what a BERT classifier needs on top:

- serialization as a Hugging Face directory (``encoder/`` with ``model.safetensors`` and the
  tokenizer, ``head.safetensors``), so a saved pipeline needs neither the hub nor the package
  it was trained from, and no pickle is ever loaded;
- a separate learning-rate scale for the encoder's parameters;
- the cache of pooled features of a frozen encoder.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import srsly
import torch
from safetensors.torch import load_file, save_file
from thinc.api import (
    ArgsKwargs,
    Optimizer,
    PyTorchGradScaler,
    PyTorchShim,
    get_torch_default_device,
)
from thinc.util import torch2xp, xp2torch
from torch import nn

from .encoder import check_safetensors, load_pretrained, read_json_file
from .errors import BertclsError
from .torch_modules import BertClassifierModule, make_head
from .windows import Windows, make_windows

ENCODER_DIR = "encoder"
HEAD_FILE = "head.safetensors"
CLASSIFIER_FILE = "classifier.json"
# Settings that decide the shape or meaning of the head's weights: a saved head only fits them.
SHAPE_SETTINGS = ("head", "hidden_width", "pooling", "layers")
# What a model saved before a shape setting existed was built with.
SHAPE_SETTINGS_BEFORE = {"layers": [-1]}


class BertClassifierShim(PyTorchShim):
    """A ``PyTorchShim`` whose module is built at initialization or loading, not before."""

    def __init__(self, settings: dict[str, Any]):
        # The real module is created by ``build`` or ``from_disk``; until then the placeholder
        # has no parameters, so creating a pipeline from its config stays cheap.
        super().__init__(nn.Module(), config=dict(settings))
        self.tokenizer: Any = None
        self.n_labels = 0
        self.feature_cache: dict[str, torch.Tensor] = {}
        self._trainable: list[tuple[str, torch.Tensor]] | None = None
        # Set by the first training step; never saved, so a loaded pipeline does not cache.
        self.cache_active = False
        # Set by architectures.features_from_store for a scoring run: inference then reads
        # and fills the disk store of frozen features, as a frozen training does.
        self.store_at_inference = False

    @property
    def module(self) -> BertClassifierModule:
        if not isinstance(self._model, BertClassifierModule):
            raise ValueError(
                "The bert_textcat model is not initialized: call nlp.initialize() to train a "
                "new one, or spacy.load() a trained pipeline."
            )
        return self._model

    @property
    def is_built(self) -> bool:
        return isinstance(self._model, BertClassifierModule)

    def build(self, encoder: nn.Module, tokenizer: Any, n_labels: int) -> None:
        """Put a (new or loaded) encoder under a fresh head for ``n_labels`` labels."""
        cfg = self.cfg
        max_positions = getattr(encoder.config, "max_position_embeddings", None)
        if max_positions is not None and cfg["max_length"] > max_positions:
            raise BertclsError(
                f"max_length = {cfg['max_length']} is longer than the encoder accepts "
                f"({max_positions} positions). Set max_length to {max_positions} or less."
            )
        n_layers = encoder.config.num_hidden_layers
        bad = [i for i in cfg["layers"] if not -(n_layers + 1) <= i <= n_layers]
        if bad:
            raise BertclsError(
                f"layers = {cfg['layers']} names {bad}, but the encoder has {n_layers} layers "
                f"(0 is the embeddings, {n_layers} or -1 the last layer)."
            )
        module = self.make_module(BertClassifierModule, encoder, n_labels)
        module.freeze(cfg["freeze_encoder"])
        device = get_torch_default_device()
        self._model = module.to(device)
        self.tokenizer = tokenizer
        self.n_labels = n_labels
        self.feature_cache.clear()
        # Mixed precision only means something on CUDA; thinc's grad scaler is CUDA-only too.
        self._mixed_precision = bool(cfg["mixed_precision"]) and device.type == "cuda"
        self._grad_scaler = PyTorchGradScaler(
            enabled=self._mixed_precision, **(cfg.get("grad_scaler_config") or {})
        )
        self._grad_scaler.to_(device)
        self._trainable = None

    def make_module(self, module_class: type, encoder: Any, n_labels: int) -> Any:
        """``module_class`` (the PyTorch or the ONNX classifier module) over ``encoder`` with a
        fresh head for ``n_labels`` labels, shaped by the config."""
        cfg = self.cfg
        width = encoder.config.hidden_size * len(cfg["layers"])
        head = make_head(cfg["head"], width, n_labels, cfg["hidden_width"], cfg["dropout"])
        return module_class(
            encoder,
            head,
            pooling=cfg["pooling"],
            layers=cfg["layers"],
            window_pooling=cfg["window_pooling"],
        )

    @property
    def mixed_precision(self) -> bool:
        """Whether the encoder runs under CUDA autocast (asked for, and on a GPU)."""
        return self._mixed_precision

    def windows(self, texts: Sequence[str]) -> Windows:
        """The texts' word-piece windows, as the model settings say to cut them."""
        cfg = self.cfg
        return make_windows(
            self.tokenizer,
            texts,
            max_length=cfg["max_length"],
            stride=cfg["stride"],
            long_text=cfg["long_text"],
        )

    def set_freeze_encoder(self, freeze: bool) -> None:
        """Freeze or unfreeze the encoder: ``cfg`` holds the setting until the module is built
        (and for ``forward``), the encoder's ``requires_grad`` follows it."""
        self.cfg["freeze_encoder"] = freeze
        if self.is_built:
            self.module.freeze(freeze)
        self.feature_cache.clear()
        self._trainable = None

    def trainable_parameters(self) -> list[tuple[str, torch.Tensor]]:
        """(name, parameter) of every parameter that training updates, computed once.

        With a frozen encoder that is the head alone: walking the encoder's ~100 frozen
        tensors on every step would cost more than the head's whole update.
        """
        if self._trainable is None:
            named = self._model.named_parameters()
            self._trainable = [(name, p) for name, p in named if p.requires_grad]
        return self._trainable

    def begin_update(self, inputs: ArgsKwargs):
        """thinc's PyTorchShim.begin_update, but touching only the trainable parameters.

        The inputs here (token ids, cached features) need no gradient, so backprop returns
        none for them.
        """
        self._model.train()
        with torch.autocast("cuda", enabled=self._mixed_precision):
            output = self._model(*inputs.args, **inputs.kwargs)

        def backprop(grads: ArgsKwargs) -> None:
            # Scaling the output gradient scales every parameter gradient alike (the loss is
            # computed outside torch, so this is where loss scaling can happen).
            grads.kwargs["grad_tensors"] = self._grad_scaler.scale(
                grads.kwargs["grad_tensors"], inplace=True
            )
            torch.autograd.backward(*grads.args, **grads.kwargs)
            params = [p.grad for _, p in self.trainable_parameters() if p.grad is not None]
            if self._grad_scaler.unscale(params):
                for grad in params:
                    grad.zero_()

        return output, backprop

    def finish_update(self, optimizer: Optimizer) -> None:
        scale = float(self.cfg.get("encoder_learn_rate_scale", 1.0))
        # spaCy's Language.rehearse passes a plain function that collects (weights, gradient)
        # and applies the real optimizer after every component: it takes no lr_scale, and it
        # must get a copy of the gradient, which is zeroed here before it is used.
        collecting = not isinstance(optimizer, Optimizer)
        for name, param in self.trainable_parameters():
            if param.grad is None:
                continue
            lr_scale = scale if name.startswith("encoder.") else 1.0
            if collecting and not self._grad_scaler.found_inf:
                # Without lr_scale the encoder would move at the head's rate: it stays as is.
                if lr_scale == 1.0:
                    optimizer((self.id, name), torch2xp(param.data), torch2xp(param.grad).copy())
            elif not self._grad_scaler.found_inf:
                weights, _ = optimizer(
                    (self.id, name), torch2xp(param.data), torch2xp(param.grad), lr_scale=lr_scale
                )
                update_in_place(param, weights)
            param.grad.zero_()
        self._grad_scaler.update()

    def to_device(self, device_type: str, device_id: int) -> None:
        super().to_device(device_type, device_id)
        self.feature_cache.clear()

    # Serialization -------------------------------------------------------------------------

    def to_disk(self, path: Path) -> None:
        """Write ``encoder/`` (Hugging Face format, safetensors) and the head's weights."""
        module = self.module
        path.mkdir(parents=True, exist_ok=True)
        module.encoder.save_pretrained(path / ENCODER_DIR, safe_serialization=True)
        self.tokenizer.save_pretrained(path / ENCODER_DIR)
        head_state = {k: v.detach().cpu().contiguous() for k, v in module.head.state_dict().items()}
        save_file(head_state, str(path / HEAD_FILE))
        info = {"n_labels": self.n_labels, "hidden_size": module.encoder.config.hidden_size}
        info.update({k: self.cfg[k] for k in SHAPE_SETTINGS})
        srsly.write_json(path / CLASSIFIER_FILE, info)

    def from_disk(self, path: Path) -> BertClassifierShim:
        """Rebuild encoder, tokenizer and head from a directory written by ``to_disk``."""
        info = read_model_dir_info(
            path, what="bert_textcat model", fix="Copy the pipeline again, or save it again."
        )
        n_labels = info["n_labels"]
        for key in SHAPE_SETTINGS:
            saved = info.get(key, SHAPE_SETTINGS_BEFORE.get(key))
            if saved != self.cfg[key]:
                raise BertclsError(
                    f"The saved model in {path} has {key} = {saved!r} but the config says "
                    f"{self.cfg[key]!r}; a trained head cannot change shape. Use the saved value."
                )
        check_safetensors(path / HEAD_FILE)
        state = load_file(str(path / HEAD_FILE))
        encoder, tokenizer = load_pretrained(
            str(path / ENCODER_DIR), shown_name=str(path), in_pipeline=True
        )
        self.build(encoder, tokenizer, n_labels)
        check_head_fits(path, state, self.module.head.state_dict(), n_labels)
        self.module.head.load_state_dict(state)
        return self

    def to_bytes(self) -> bytes:
        with tempfile.TemporaryDirectory() as tmp:
            self.to_disk(Path(tmp))
            files = {
                str(f.relative_to(tmp)): f.read_bytes() for f in Path(tmp).rglob("*") if f.is_file()
            }
        return srsly.msgpack_dumps({"cfg": self.cfg, "files": files})

    def from_bytes(self, bytes_data: bytes) -> BertClassifierShim:
        msg = srsly.msgpack_loads(bytes_data)
        with tempfile.TemporaryDirectory() as tmp:
            for name, data in msg["files"].items():
                target = Path(tmp) / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            return self.from_disk(Path(tmp))


def check_head_fits(
    path: Path, saved: dict[str, torch.Tensor], built: dict[str, torch.Tensor], n_labels: int
) -> None:
    """Refuse a head.safetensors whose weights do not have the shapes classifier.json asks for
    (files from two different models), naming both files rather than torch's size mismatch."""
    saved_shapes = {k: tuple(v.shape) for k, v in saved.items()}
    built_shapes = {k: tuple(v.shape) for k, v in built.items()}
    if saved_shapes == built_shapes:
        return
    head, info = path / HEAD_FILE, path / CLASSIFIER_FILE
    # The last weight matrix of either head kind has one row per label.
    last = [k for k in built_shapes if k.endswith("weight")][-1]
    rows = (saved_shapes.get(last) or (None,))[0]
    if rows is not None and rows != n_labels:
        raise BertclsError(
            f"{head} has {rows} outputs (one per label) but {info} says n_labels = {n_labels}. "
            "The two files come from different models: copy the pipeline again."
        )
    raise BertclsError(
        f"{head} does not fit {info}: the saved weights have shapes {saved_shapes}, the head "
        f"described in {info.name} (with the encoder's hidden size) needs {built_shapes}. The "
        "files come from different models: copy the pipeline again."
    )


def update_in_place(param: torch.Tensor, weights: Any) -> None:
    """Make ``param`` hold ``weights`` without giving it a new tensor.

    thinc's optimizers update the array they are given in place and return a view of it. The
    usual ``param.data = xp2torch(weights)`` would give the parameter a tensor whose memory is
    owned by that view, whose base is the tensor the parameter held before: a chain that grows
    by one link per step and keeps every earlier tensor (and whatever memory they own) alive.
    """
    new = xp2torch(weights, device=param.device)
    if new.data_ptr() != param.data_ptr():
        with torch.no_grad():
            param.copy_(new)


def read_model_dir_info(path: Path, *, what: str, fix: str) -> dict[str, Any]:
    """``classifier.json`` of a saved model directory, once the directory is complete and
    ``n_labels`` a positive whole number; ``what`` names the directory, ``fix`` says what to
    do otherwise. The PyTorch shim and the ONNX one read their directories alike."""
    for needed in (ENCODER_DIR, HEAD_FILE, CLASSIFIER_FILE):
        if not (path / needed).exists():
            raise BertclsError(
                f"The {what} directory {path} is incomplete: {needed} is missing. {fix}"
            )
    info = read_json_file(path / CLASSIFIER_FILE)
    n_labels = info.get("n_labels") if isinstance(info, dict) else None
    if type(n_labels) is not int or n_labels < 1:
        raise BertclsError(
            f"{path / CLASSIFIER_FILE} is damaged: it has no n_labels (a positive whole number) "
            f"but {n_labels!r}. {fix}"
        )
    return info
