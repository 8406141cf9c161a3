"""The ``bert_textcat`` pipeline component: a text categorizer on a BERT-family encoder.

Read top to bottom: the default model config, the scorer, the factory (whose keyword arguments
are the component's settings), and the component class. The network itself is registered in
``spacy_bertcls.architectures``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import islice
from pathlib import Path
from typing import Any, Dict, List, Union  # noqa: UP035 - spaCy validates these

import numpy
import srsly
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.scorer import Scorer
from spacy.tokens import Doc
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.util import ensure_path, registry
from spacy.vocab import Vocab
from thinc.api import Config, Model, Optimizer

from .architectures import configure_training, get_shim
from .errors import BertclsError
from .loss import (
    check_class_weights,
    resolve_class_weights,
    sigmoid_binary_cross_entropy,
    softmax_cross_entropy,
)

DEFAULT_MODEL_CONFIG = """
[model]
@architectures = "spacy_bertcls.BertClassifier.v1"
encoder = "sentence-transformers/all-MiniLM-L6-v2"
pooling = "mean"
layers = [-1]
head = "mlp"
hidden_width = 512
dropout = 0.1
max_length = 128
stride = 96
long_text = "window"
window_pooling = "mean"
encoder_batch_size = 64
feature_cache_size = 500000
mixed_precision = false
grad_scaler_config = {}
nO = null
"""
DEFAULT_MODEL = Config().from_str(DEFAULT_MODEL_CONFIG)["model"]

# Settings restored from a saved pipeline; the others come from its config.cfg, so that a
# config override at spacy.load (say, freeze_encoder for further training) takes effect.
SAVED_CFG_KEYS = ("labels", "class_weights_used")


def bert_textcat_score(examples: Iterable[Example], **kwargs: Any) -> dict[str, Any]:
    """spaCy's standard textcat scores (cats_score, cats_macro_f, cats_macro_auc, ...)."""
    multi_label = not kwargs.pop("exclusive_classes", True)
    return Scorer.score_cats(examples, "cats", multi_label=multi_label, **kwargs)


@registry.scorers("spacy_bertcls.textcat_scorer.v1")
def make_textcat_scorer() -> Callable[..., dict[str, Any]]:
    return bert_textcat_score


@Language.factory(
    "bert_textcat",
    assigns=["doc.cats"],
    default_config={
        "model": DEFAULT_MODEL,
        "exclusive_classes": True,
        "threshold": 0.5,
        "freeze_encoder": False,
        "encoder_learn_rate_scale": 1.0,
        "class_weights": None,
        "scorer": {"@scorers": "spacy_bertcls.textcat_scorer.v1"},
    },
    default_score_weights={
        "cats_score": 1.0,
        "cats_score_desc": None,
        "cats_micro_p": None,
        "cats_micro_r": None,
        "cats_micro_f": None,
        "cats_macro_p": None,
        "cats_macro_r": None,
        "cats_macro_f": None,
        "cats_macro_auc": None,
        "cats_f_per_type": None,
    },
)
def make_bert_textcat(
    nlp: Language,
    name: str,
    model: Model[List[Doc], Any],  # noqa: UP006
    exclusive_classes: bool,
    threshold: float,
    freeze_encoder: bool,
    encoder_learn_rate_scale: float,
    class_weights: Union[str, Dict[str, float]] | None,  # noqa: UP006, UP007
    scorer: Callable | None,  # noqa: UP007
) -> BertTextCategorizer:
    """Create a ``bert_textcat`` component.

    exclusive_classes: one label per text (softmax; doc.cats sums to 1), or independent labels
        (sigmoids; a label applies when its probability reaches ``threshold``).
    threshold: decision threshold of multi-label scoring; unused for exclusive classes.
    freeze_encoder: train only the head. The encoder then runs without autograd, never
        changes, and its features are cached so it runs once per distinct training text.
    encoder_learn_rate_scale: with a trainable encoder, its learning rate is the optimizer's
        times this (e.g. 0.05 with learn_rate 1e-3 gives the encoder 5e-5).
    class_weights: "balanced" (computed from the training data at initialize, as scikit-learn's
        compute_class_weight), a {label: weight} mapping (labels not named weigh 1), or null.
    """
    return BertTextCategorizer(
        nlp.vocab,
        model,
        name,
        exclusive_classes=exclusive_classes,
        threshold=threshold,
        freeze_encoder=freeze_encoder,
        encoder_learn_rate_scale=encoder_learn_rate_scale,
        class_weights=class_weights,
        scorer=scorer,
    )


class BertTextCategorizer(TrainablePipe):
    """Assigns ``doc.cats`` with a fine-tuned or frozen BERT-family encoder and a head."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "bert_textcat",
        *,
        exclusive_classes: bool = True,
        threshold: float = 0.5,
        freeze_encoder: bool = False,
        encoder_learn_rate_scale: float = 1.0,
        class_weights: str | dict[str, float] | None = None,
        scorer: Callable | None = bert_textcat_score,
    ) -> None:
        check_class_weights(class_weights)
        if not 0.0 < threshold < 1.0:
            raise BertclsError(f"threshold = {threshold} must be between 0 and 1.")
        if encoder_learn_rate_scale < 0:
            raise BertclsError(
                f"encoder_learn_rate_scale = {encoder_learn_rate_scale} must not be negative."
            )
        self.vocab = vocab
        self.model = model
        self.name = name
        self.scorer = scorer
        self.cfg: dict[str, Any] = {
            "labels": [],
            "exclusive_classes": exclusive_classes,
            "threshold": threshold,
            "freeze_encoder": freeze_encoder,
            "encoder_learn_rate_scale": encoder_learn_rate_scale,
            "class_weights": class_weights,
            # The weights actually used, resolved at initialize (e.g. from "balanced").
            "class_weights_used": None,
        }
        configure_training(
            model,
            freeze_encoder=freeze_encoder,
            encoder_learn_rate_scale=encoder_learn_rate_scale,
        )

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.cfg["labels"])

    @property
    def label_data(self) -> list[str]:
        return list(self.labels)

    @property
    def class_weights(self) -> dict[str, float] | None:
        """The loss weight of each label, as resolved at initialize (None: unweighted)."""
        return self.cfg["class_weights_used"]

    # Prediction ----------------------------------------------------------------------------

    def predict(self, docs: Iterable[Doc]):
        """Label probabilities of each doc (rows) for each label (columns)."""
        docs = list(docs)
        if not docs:
            return self.model.ops.alloc2f(0, len(self.labels))
        return self._probabilities(self.model.predict(docs))

    def set_annotations(self, docs: Iterable[Doc], scores) -> None:
        scores = self.model.ops.to_numpy(scores)
        for doc, row in zip(docs, scores):
            doc.cats.update({label: float(p) for label, p in zip(self.labels, row)})

    def _probabilities(self, logits):
        xp = self.model.ops.xp
        if self.cfg["exclusive_classes"]:
            shifted = xp.exp(logits - logits.max(axis=1, keepdims=True))
            return shifted / shifted.sum(axis=1, keepdims=True)
        return 1.0 / (1.0 + xp.exp(-logits))

    # Training ------------------------------------------------------------------------------

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optimizer | None = None,
        losses: dict[str, float] | None = None,
    ) -> dict[str, float]:
        """Learn from a batch of examples. ``drop`` is unused: the head has its own dropout."""
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, "BertTextCategorizer.update")
        if not examples:
            return losses
        logits, backprop = self.model.begin_update([eg.predicted for eg in examples])
        loss, d_logits = self.get_loss(examples, logits)
        backprop(d_logits)
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses

    def get_loss(self, examples: Iterable[Example], logits) -> tuple[float, Any]:
        """Class-weighted cross-entropy (exclusive) or binary cross-entropy (multi-label),
        and its gradient with respect to the logits."""
        examples = list(examples)
        truths, not_missing = self._examples_to_truth(examples)
        ops = self.model.ops
        xp = ops.xp
        weights = self.class_weights
        weight_array = ops.asarray1f([weights[label] for label in self.labels]) if weights else None
        if self.cfg["exclusive_classes"]:
            targets = ops.asarray1i(truths.argmax(axis=1))
            return softmax_cross_entropy(logits, targets, weight_array, xp=xp)
        return sigmoid_binary_cross_entropy(
            logits, ops.asarray2f(truths), ops.asarray2f(not_missing), weight_array, xp=xp
        )

    def _examples_to_truth(self, examples: list[Example]) -> tuple[numpy.ndarray, numpy.ndarray]:
        """Gold values (examples x labels) and which of them are known, after validation."""
        truths = numpy.zeros((len(examples), len(self.labels)), dtype="f")
        not_missing = numpy.ones_like(truths)
        index = {label: j for j, label in enumerate(self.labels)}
        exclusive = self.cfg["exclusive_classes"]
        for i, eg in enumerate(examples):
            cats = eg.reference.cats
            for label, value in cats.items():
                if label not in index:
                    raise BertclsError(
                        f"Training example {i} ({snippet(eg.reference.text)}) has the label "
                        f"{label!r}, which the component does not know (labels: "
                        f"{', '.join(map(repr, self.labels))}). Fix the data, or add the label "
                        "before nlp.initialize()."
                    )
                if value not in (0.0, 1.0):
                    raise BertclsError(
                        f"Training example {i} ({snippet(eg.reference.text)}) gives label "
                        f"{label!r} the value {value!r}; gold values must be 0.0 or 1.0."
                    )
                truths[i, index[label]] = value
            positives = [label for label, value in cats.items() if value == 1.0]
            if not cats or (exclusive and not positives):
                raise BertclsError(
                    f"Training example {i} ({snippet(eg.reference.text)}) has no gold label. "
                    "Give every training text a label, or drop it from the training data."
                )
            if exclusive and len(positives) > 1:
                raise BertclsError(
                    f"Training example {i} ({snippet(eg.reference.text)}) has "
                    f"{len(positives)} gold labels ({', '.join(map(repr, positives))}) but "
                    "the classes are exclusive. Keep one, or set exclusive_classes = false."
                )
            if not exclusive:
                not_missing[i] = [1.0 if label in cats else 0.0 for label in self.labels]
        return truths, not_missing

    def add_label(self, label: str) -> int:
        """Add a label before initialization; returns 0 if it was there already, else 1."""
        if not isinstance(label, str):
            raise BertclsError(f"A label must be a string, not {label!r}.")
        if label in self.labels:
            return 0
        if get_shim(self.model).is_built:
            raise BertclsError(
                f"Cannot add label {label!r}: the model is already built for "
                f"{len(self.labels)} labels. Add all labels before nlp.initialize()."
            )
        self.cfg["labels"].append(label)
        self.vocab.strings.add(label)
        return 1

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Language | None = None,
        labels: Iterable[str] | None = None,
    ) -> None:
        """Take labels from the examples (or ``labels``), resolve the class weights, load the
        encoder and build the head."""
        validate_get_examples(get_examples, "BertTextCategorizer.initialize")
        for label in labels if labels is not None else self._labels_in(get_examples()):
            self.add_label(label)
        minimum = 2 if self.cfg["exclusive_classes"] else 1
        if len(self.labels) < minimum:
            raise BertclsError(
                f"bert_textcat needs at least {minimum} labels to train, found "
                f"{list(self.labels)}. Check the label column of the training data."
            )
        truths = [self._examples_to_truth(list(batch))[0] for batch in batched(get_examples())]
        if not truths:
            raise BertclsError("bert_textcat.initialize got no training examples.")
        self.cfg["class_weights_used"] = resolve_class_weights(
            self.cfg["class_weights"],
            self.labels,
            numpy.concatenate(truths),
            exclusive_classes=self.cfg["exclusive_classes"],
        )
        sample = [eg.reference for eg in islice(get_examples(), 10)]
        self.model.set_dim("nO", len(self.labels), force=True)
        self.model.initialize(X=sample)

    @staticmethod
    def _labels_in(examples: Iterable[Example]) -> list[str]:
        return list(dict.fromkeys(label for eg in examples for label in eg.reference.cats))

    # Serialization -------------------------------------------------------------------------

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = tuple()) -> None:
        path = ensure_path(path)
        path.mkdir(parents=True, exist_ok=True)
        srsly.write_json(path / "cfg", self.cfg)
        get_shim(self.model).to_disk(path / "model")

    def from_disk(
        self, path: str | Path, *, exclude: Iterable[str] = tuple()
    ) -> BertTextCategorizer:
        path = ensure_path(path)
        if not (path / "cfg").exists():
            raise BertclsError(
                f"{path} is not a saved bert_textcat component: the file 'cfg' is missing."
            )
        self._restore_cfg(srsly.read_json(path / "cfg"))
        get_shim(self.model).from_disk(path / "model")
        return self

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        shim_bytes = get_shim(self.model).to_bytes()
        return srsly.msgpack_dumps({"cfg": self.cfg, "model": shim_bytes})

    def from_bytes(
        self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()
    ) -> BertTextCategorizer:
        msg = srsly.msgpack_loads(bytes_data)
        self._restore_cfg(msg["cfg"])
        get_shim(self.model).from_bytes(msg["model"])
        return self

    def _restore_cfg(self, saved: dict[str, Any]) -> None:
        self.cfg.update({key: saved[key] for key in SAVED_CFG_KEYS if key in saved})
        self.model.set_dim("nO", len(self.labels), force=True)


def batched(items: Iterable[Any], size: int = 1024) -> Iterable[list[Any]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def snippet(text: str, width: int = 60) -> str:
    """A short quote of a text for error messages."""
    text = " ".join(text.split())
    return repr(text if len(text) <= width else text[: width - 3] + "...")
