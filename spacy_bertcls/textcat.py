"""The ``bert_textcat`` pipeline component: a text categorizer on a BERT-family encoder.

Read top to bottom: the default model config, the scorer, the factory (whose keyword arguments
are the component's settings), and the component class. The network itself is registered in
``spacy_bertcls.architectures``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Sequence
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

from .architectures import (
    configure_training,
    is_built,
    load_model,
    model_from_bytes,
    model_to_bytes,
    n_outputs,
    save_model,
    set_dropout,
)
from .decisions import check_thresholds
from .errors import BertclsError
from .explain import DEFAULT_METHOD, DEFAULT_STEPS, Explanation, explain_doc
from .fingerprint import (
    FINGERPRINT_FILE,
    hashes_from_bytes,
    hashes_to_bytes,
    load_hashes,
    save_hashes,
    sorted_hashes,
    text_hashes,
)
from .loss import (
    TINY,
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
SAVED_CFG_KEYS = (
    "labels",
    "class_weights_used",
    "positive_label",
    "temperature",
    "logit_bias",
    "decision_thresholds",
    "calibration",
)


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
            # spaCy's textcat option: the label whose F-score is cats_score (binary tasks).
            "positive_label": None,
            # Fitted after training on dev data (spacy_bertcls.calibration): the temperature
            # the logits are divided by in predict (one value, or one per label for
            # multi-label), the decision thresholds {label: threshold} of
            # spacy_bertcls.decisions, and a summary of the fit (data, ECE before/after).
            "temperature": None,
            # Multi-label only: per label, the bias added after the temperature (Platt scaling).
            "logit_bias": None,
            "decision_thresholds": {},
            "calibration": None,
        }
        # Set by nlp.resume_training(): the model whose predictions rehearse() keeps.
        self._rehearsal_model: Model | None = None
        # Hashes of the texts update() trained on (see spacy_bertcls.fingerprint). A set, so
        # that the second epoch adds nothing: its size is the number of distinct texts.
        self._training_texts: set[int] = set()
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
    def training_text_hashes(self) -> numpy.ndarray:
        """The sorted uint64 hashes of the distinct texts ``update`` trained this component on
        (``spacy_bertcls.fingerprint.trained_on`` looks texts up in them)."""
        return sorted_hashes(self._training_texts)

    @property
    def class_weights(self) -> dict[str, float] | None:
        """The loss weight of each label, as resolved at initialize (None: unweighted)."""
        return self.cfg["class_weights_used"]

    # Prediction ----------------------------------------------------------------------------

    def predict(self, docs: Iterable[Doc]):
        """Label probabilities of each doc (rows) for each label (columns), calibrated by the
        fitted temperature when there is one (the most probable label never changes)."""
        docs = list(docs)
        if not docs:
            return self.model.ops.alloc2f(0, len(self.labels))
        return self._probabilities(self._scaled(self.model.predict(docs)))

    def logits(self, docs: Iterable[Doc], *, batch_size: int = 64) -> numpy.ndarray:
        """The head's raw outputs (docs x labels, before temperature, softmax or sigmoid), for
        fitting the temperature (spacy_bertcls.calibration)."""
        docs = list(docs)
        rows = [
            self.model.ops.to_numpy(self.model.predict(batch))
            for batch in batched(docs, batch_size)
        ]
        return numpy.concatenate(rows) if rows else numpy.zeros((0, len(self.labels)), "f")

    @property
    def temperature(self) -> list[float] | None:
        """The fitted temperature (None: not calibrated; probabilities are the raw ones)."""
        return self.cfg["temperature"]

    def set_calibration(
        self,
        temperature: Sequence[float] | None,
        decision_thresholds: dict[str, float] | None = None,
        summary: dict[str, Any] | None = None,
        *,
        bias: Sequence[float] | None = None,
    ) -> None:
        """Set the temperature (and, multi-label, the per-label bias), the decision thresholds
        and the fit's summary (see spacy_bertcls.calibration.calibrate, which fits them)."""
        self.cfg.update(
            check_calibration(
                {
                    "temperature": None if temperature is None else list(temperature),
                    "logit_bias": None if bias is None else list(bias),
                    "decision_thresholds": dict(decision_thresholds or {}),
                    "calibration": summary,
                },
                self.labels,
                exclusive=self.cfg["exclusive_classes"],
            )
        )

    @property
    def logit_bias(self) -> list[float] | None:
        """Multi-label: the per-label bias added after the temperature (None: none)."""
        return self.cfg["logit_bias"]

    def _scaled(self, logits):
        temperature, bias = self.cfg["temperature"], self.cfg["logit_bias"]
        if temperature:
            logits = logits / self.model.ops.asarray1f(temperature)
        if bias:
            logits = logits + self.model.ops.asarray1f(bias)
        return logits

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

    def explain(
        self,
        doc: Doc,
        label: str | None = None,
        *,
        method: str = DEFAULT_METHOD,
        n_steps: int = DEFAULT_STEPS,
    ) -> Explanation:
        """How much each token of ``doc`` pushed the calibrated probability of ``label``
        (None: the predicted label) up or down; see ``spacy_bertcls.explain``."""
        return explain_doc(self, doc, label, method=method, n_steps=n_steps)

    # Training ------------------------------------------------------------------------------

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optimizer | None = None,
        losses: dict[str, float] | None = None,
    ) -> dict[str, float]:
        """Learn from a batch of examples.

        drop: the head's dropout rate for this update, as spaCy's own components take it
            (``spacy train`` passes ``[training] dropout``). A frozen encoder never drops out
            (its features are cached); a fine-tuned one keeps its own configured dropout.

        The examples' texts are added to the training-text fingerprint (their hashes), so that
        evaluation can tell the rows trained on from held-out ones.
        """
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, "BertTextCategorizer.update")
        self._validate_categories(examples)
        if not examples:
            return losses
        set_dropout(self.model, drop)
        docs = [eg.predicted for eg in examples]
        logits, backprop = self.model.begin_update(docs)
        loss, d_logits = self.get_loss(examples, self._probabilities(logits))
        backprop(d_logits)
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        self._training_texts.update(text_hashes(doc.text for doc in docs).tolist())
        return losses

    def rehearse(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optimizer | None = None,
        losses: dict[str, float] | None = None,
    ) -> dict[str, float]:
        """Teach the model to keep the predictions of the model it had at
        ``nlp.resume_training()`` (spaCy's rehearsal against catastrophic forgetting).

        The loss is the cross-entropy between the earlier model's probabilities and the current
        ones; gold labels are not used. Without ``resume_training()`` there is no earlier model
        and, as in spaCy's textcat, nothing happens. Rehearsal texts are not added to the
        training-text fingerprint: the model learns no labels from them.
        """
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, "BertTextCategorizer.rehearse")
        if self._rehearsal_model is None or not examples:
            return losses
        docs = [eg.predicted for eg in examples]
        set_dropout(self.model, drop)
        target = self._probabilities(self._rehearsal_model.predict(docs))
        logits, backprop = self.model.begin_update(docs)
        probs = self._probabilities(logits)
        xp = self.model.ops.xp
        n = len(docs)
        loss = -(target * xp.log(xp.maximum(probs, TINY))).sum() / n
        if not self.cfg["exclusive_classes"]:
            loss -= ((1 - target) * xp.log(xp.maximum(1 - probs, TINY))).sum() / n
        # For softmax and for sigmoid cross-entropy the gradient wrt the logits is p - target.
        backprop(((probs - target) / n).astype("f"))
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += float(loss)
        return losses

    def get_loss(self, examples: Iterable[Example], scores) -> tuple[float, Any]:
        """Class-weighted cross-entropy (exclusive) or binary cross-entropy (multi-label).

        ``scores`` are probabilities, as ``predict`` returns them; the gradient returned is
        with respect to the model's output, the logits (softmax or sigmoid included).
        Labels the component does not have are ignored, as in spaCy's textcat. Exclusive
        classes: a label missing from ``doc.cats`` counts as 0, and an example without any
        positive label adds no loss (spaCy's squared error would push all scores to 0; a
        cross-entropy has no target then). Multi-label: a missing label adds no loss.
        """
        examples = list(examples)
        validate_examples(examples, "BertTextCategorizer.get_loss")
        self._validate_categories(examples)
        truths, not_missing = self._examples_to_truth(examples)
        ops = self.model.ops
        xp = ops.xp
        scores = ops.asarray2f(scores)
        weights = self.class_weights
        weight_array = ops.asarray1f([weights[label] for label in self.labels]) if weights else None
        if self.cfg["exclusive_classes"]:
            return softmax_cross_entropy(scores, ops.asarray2f(truths), weight_array, xp=xp)
        return sigmoid_binary_cross_entropy(
            scores, ops.asarray2f(truths), ops.asarray2f(not_missing), weight_array, xp=xp
        )

    def _examples_to_truth(self, examples: list[Example]) -> tuple[numpy.ndarray, numpy.ndarray]:
        """Gold values (examples x labels) and which of them are known, as spaCy's textcat
        reads them: labels not in ``doc.cats`` are 0 for exclusive classes and missing for
        multi-label; labels the component does not have are ignored."""
        truths = numpy.zeros((len(examples), len(self.labels)), dtype="f")
        not_missing = numpy.ones_like(truths)
        multi_label = not self.cfg["exclusive_classes"]
        for i, eg in enumerate(examples):
            cats = eg.reference.cats
            for j, label in enumerate(self.labels):
                if label in cats:
                    truths[i, j] = cats[label]
                elif multi_label:
                    not_missing[i, j] = 0.0
        return truths, not_missing

    def _validate_categories(self, examples: Iterable[Example]) -> None:
        """Gold values must be 0 or 1, and at most one 1 for exclusive classes.

        Once the labels are known, only they are checked for exclusivity, so that
        ``doc.cats`` can also hold another component's labels (spaCy's textcat counts all)."""
        exclusive = self.cfg["exclusive_classes"]
        own = set(self.labels)
        for i, eg in enumerate(examples):
            cats = eg.reference.cats
            for label, value in cats.items():
                if value not in (0.0, 1.0):
                    raise BertclsError(
                        f"Training example {i} ({snippet(eg.reference.text)}) gives label "
                        f"{label!r} the value {value!r}; gold values must be 0.0 or 1.0."
                    )
            positives = [
                label for label, value in cats.items() if value == 1.0 and (not own or label in own)
            ]
            if exclusive and len(positives) > 1:
                raise BertclsError(
                    f"Training example {i} ({snippet(eg.reference.text)}) has "
                    f"{len(positives)} gold labels ({', '.join(map(repr, positives))}) but "
                    "the classes are exclusive. Keep one, or set exclusive_classes = false."
                )

    def add_label(self, label: str) -> int:
        """Add a label before initialization; returns 0 if it was there already, else 1."""
        if not isinstance(label, str):
            raise BertclsError(f"A label must be a string, not {label!r}.")
        if label in self.labels:
            return 0
        if is_built(self.model):
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
        positive_label: str | None = None,
    ) -> None:
        """Add the labels (``labels``, else those of the examples), resolve the class weights,
        load the encoder and build the head.

        Labels given earlier by ``add_label`` stay, so ``nlp.initialize()`` without examples
        works once the labels are known, as with spaCy's textcat. ``positive_label``: for two
        exclusive classes, the label whose F-score is ``cats_score`` (spaCy's option).

        The training-text fingerprint starts empty: the model starts afresh, and ``update``
        records the texts it is then trained on (``get_examples`` may hold texts it never is).
        """
        validate_get_examples(get_examples, "BertTextCategorizer.initialize")
        if positive_label is not None and not self.cfg["exclusive_classes"]:
            raise BertclsError(
                f"positive_label = {positive_label!r} is for two exclusive classes; this "
                "component is multi-label (exclusive_classes = false). Leave it unset."
            )
        for label in labels if labels is not None else self._labels_in(get_examples()):
            self.add_label(label)
        self._validate_categories(get_examples())
        minimum = 2 if self.cfg["exclusive_classes"] else 1
        if len(self.labels) < minimum:
            raise BertclsError(
                f"bert_textcat needs at least {minimum} labels to train, found "
                f"{list(self.labels)}. Check the label column of the training data, or add "
                "the labels with add_label() or [initialize.components.<name>] labels."
            )
        self._set_positive_label(positive_label)
        # A new model: a temperature and thresholds fitted to the old one no longer apply.
        self.set_calibration(None)
        self.cfg["class_weights_used"] = self._resolve_class_weights(get_examples)
        sample = [eg.reference for eg in islice(get_examples(), 10)]
        self.model.set_dim("nO", len(self.labels), force=True)
        self.model.initialize(X=sample)
        self._training_texts = set()

    def _set_positive_label(self, positive_label: str | None) -> None:
        if positive_label is not None:
            if positive_label not in self.labels:
                raise BertclsError(
                    f"positive_label = {positive_label!r} is not one of the labels "
                    f"({', '.join(map(repr, self.labels))})."
                )
            if len(self.labels) != 2:
                raise BertclsError(
                    f"positive_label = {positive_label!r} needs exactly two labels, found "
                    f"{len(self.labels)} ({', '.join(map(repr, self.labels))})."
                )
        self.cfg["positive_label"] = positive_label

    def _resolve_class_weights(
        self, get_examples: Callable[[], Iterable[Example]]
    ) -> dict[str, float] | None:
        """The loss weights, from the setting and the examples that have gold labels."""
        truths, known = [], []
        for batch in batched(get_examples()):
            labeled = [eg for eg in batch if set(eg.reference.cats) & set(self.labels)]
            if labeled:
                batch_truths, batch_known = self._examples_to_truth(labeled)
                truths.append(batch_truths)
                known.append(batch_known)
        if not truths and self.cfg["class_weights"] == "balanced":
            # spaCy's `nlp.initialize()` without examples (e.g. `spacy assemble`) passes one
            # example without labels: there is nothing to balance yet.
            warnings.warn(
                'class_weights = "balanced" needs labeled examples, and bert_textcat was '
                "initialized without any: the loss is unweighted. Initialize with the "
                "training examples to balance it.",
                stacklevel=3,
            )
            return None
        n_labels = len(self.labels)
        empty = numpy.zeros((0, n_labels), dtype="f")
        return resolve_class_weights(
            self.cfg["class_weights"],
            self.labels,
            numpy.concatenate(truths) if truths else empty,
            numpy.concatenate(known) if known else empty,
            exclusive_classes=self.cfg["exclusive_classes"],
        )

    @staticmethod
    def _labels_in(examples: Iterable[Example]) -> list[str]:
        return list(dict.fromkeys(label for eg in examples for label in eg.reference.cats))

    # Serialization -------------------------------------------------------------------------

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = tuple()) -> None:
        """Write ``cfg``, the training-text fingerprint ``training_texts.npy`` (left out with
        ``exclude=["training_texts"]``) and, once the model is built, ``model/`` (a component
        that is not initialized yet has no weights to save, as spaCy's own textcat)."""
        path = ensure_path(path)
        path.mkdir(parents=True, exist_ok=True)
        srsly.write_json(path / "cfg", self.cfg)
        if "training_texts" not in exclude:
            save_hashes(path / FINGERPRINT_FILE, self.training_text_hashes)
        if is_built(self.model):
            save_model(self.model, path / "model")

    def from_disk(
        self, path: str | Path, *, exclude: Iterable[str] = tuple()
    ) -> BertTextCategorizer:
        path = ensure_path(path)
        if not (path / "cfg").exists():
            raise BertclsError(
                f"{path} is not a saved bert_textcat component: the file 'cfg' is missing."
            )
        try:
            saved = srsly.read_json(path / "cfg")
        except ValueError as err:
            raise BertclsError(
                f"{path / 'cfg'} is damaged: it is not valid JSON ({err}). Copy the pipeline "
                "again, or save it again."
            ) from err
        self._restore_cfg(saved)
        if "training_texts" not in exclude:
            # Pipelines saved before fingerprints have no file: nothing is known to be trained on.
            fingerprint = path / FINGERPRINT_FILE
            hashes = load_hashes(fingerprint) if fingerprint.exists() else numpy.zeros(0)
            self._training_texts = set(hashes.tolist())
        if (path / "model").exists():
            load_model(self.model, path / "model")
            self._check_labels_fit_model(f"{path / 'cfg'}", f"{path / 'model'}")
        return self

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        model_bytes = model_to_bytes(self.model) if is_built(self.model) else None
        msg = {"cfg": self.cfg, "model": model_bytes}
        if "training_texts" not in exclude:
            msg["training_texts"] = hashes_to_bytes(self.training_text_hashes)
        return srsly.msgpack_dumps(msg)

    def from_bytes(
        self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()
    ) -> BertTextCategorizer:
        msg = srsly.msgpack_loads(bytes_data)
        self._restore_cfg(msg["cfg"])
        if "training_texts" not in exclude:
            data = msg.get("training_texts")
            hashes = hashes_from_bytes(data) if data is not None else numpy.zeros(0)
            self._training_texts = set(hashes.tolist())
        if msg["model"] is not None:
            model_from_bytes(self.model, msg["model"])
            self._check_labels_fit_model("the saved cfg", "the saved model")
        return self

    def _restore_cfg(self, saved: dict[str, Any]) -> None:
        labels = saved.get("labels", []) if isinstance(saved, dict) else None
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise BertclsError(
                f"The saved bert_textcat cfg is damaged: 'labels' should be a list of names, "
                f"found {labels!r}. Copy the pipeline again, or save it again."
            )
        restored = {key: saved[key] for key in SAVED_CFG_KEYS if key in saved}
        try:
            restored.update(
                check_calibration(
                    {key: restored.get(key) for key in CALIBRATION_KEYS},
                    labels,
                    exclusive=self.cfg["exclusive_classes"],
                )
            )
        except BertclsError as error:
            raise BertclsError(
                f"The saved bert_textcat cfg is damaged: {error} Calibrate the pipeline again "
                "(bertcls calibrate), or copy it again."
            ) from error
        self.cfg.update(restored)
        self.model.set_dim("nO", len(self.labels), force=True)

    def _check_labels_fit_model(self, cfg: str, model: str) -> None:
        """The head has one output per label: cfg and model files that disagree would give
        shifted or empty probability columns, so they are refused."""
        outputs = n_outputs(self.model)
        if outputs != len(self.labels):
            raise BertclsError(
                f"{cfg} lists {len(self.labels)} labels ({', '.join(map(repr, self.labels))}) "
                f"but the classifier in {model} (classifier.json, head.safetensors) has "
                f"{outputs} outputs. The files come from different pipelines: copy the "
                f'pipeline again, or fix "labels" in {cfg}.'
            )


CALIBRATION_KEYS = ("temperature", "logit_bias", "decision_thresholds", "calibration")


def check_calibration(
    values: dict[str, Any], labels: Sequence[str], *, exclusive: bool
) -> dict[str, Any]:
    """The calibration cfg values, checked: a pipeline folder from elsewhere must not bring a
    temperature or thresholds that would silently give nonsense probabilities or labels."""
    temperature = values.get("temperature")
    if temperature is not None:
        size = 1 if exclusive else len(labels)
        if (
            not isinstance(temperature, list | tuple)
            or len(temperature) != size
            or not all(
                isinstance(t, int | float) and not isinstance(t, bool) and 0 < t < math.inf
                for t in temperature
            )
        ):
            raise BertclsError(
                f"temperature = {temperature!r} should be a list of {size} positive number(s)."
            )
        temperature = [float(t) for t in temperature]
    bias = values.get("logit_bias")
    if bias is not None:
        if (
            exclusive
            or not isinstance(bias, list | tuple)
            or len(bias) != len(labels)
            or not all(
                isinstance(b, int | float) and not isinstance(b, bool) and math.isfinite(b)
                for b in bias
            )
        ):
            raise BertclsError(
                f"logit_bias = {bias!r} should be null, or for a multi-label classifier a list "
                f"of {len(labels)} finite numbers."
            )
        bias = [float(b) for b in bias]
    thresholds = values.get("decision_thresholds") or {}
    if not isinstance(thresholds, dict):
        raise BertclsError(f"decision_thresholds = {thresholds!r} should be {{label: threshold}}.")
    check_thresholds(thresholds, labels, exclusive=exclusive)
    summary = values.get("calibration")
    if summary is not None and not isinstance(summary, dict):
        raise BertclsError(f"calibration = {summary!r} should be a summary mapping or null.")
    return {
        "temperature": temperature,
        "logit_bias": bias,
        "decision_thresholds": thresholds,
        "calibration": summary,
    }


def batched(items: Iterable[Any], size: int = 1024) -> Iterable[list[Any]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def snippet(text: str, width: int = 60) -> str:
    """A short quote of a text for error messages."""
    text = " ".join(text.split())
    return repr(text if len(text) <= width else text[: width - 3] + "...")
