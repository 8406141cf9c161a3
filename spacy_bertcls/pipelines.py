"""A trained pipeline: loading it, finding its text classifier, and what it is.

`load_pipeline` is how the CLI (`label`, `evaluate`, `info`) and the desktop app load a
pipeline folder; `find_textcat` and `pipeline_labels` find the text classifier and its labels.
`pipeline_info` collects the facts about a pipeline as one `PipelineInfo`, which `bertcls info`
prints and the app's Pipeline tab shows, both with the wording of `PipelineInfo.facts`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import spacy

from .errors import BertclsError
from .fingerprint import training_fingerprint

TEXTCAT_FACTORIES = ("bert_textcat", "textcat", "textcat_multilabel")
SCORES_HEADING = "Dev-split scores of the saved model (nlp.meta['performance'])"
NO_SCORES = "No scores stored with this pipeline."


def load_pipeline(path: str | Path) -> spacy.Language:
    """Load a trained spaCy pipeline directory that contains a text classifier."""
    path = Path(path)
    if not path.exists():
        raise BertclsError(
            f"The pipeline {path} does not exist. Pass the directory `spacy train` wrote, "
            "e.g. training/model-best."
        )
    if not path.is_dir():
        raise BertclsError(
            f"The pipeline {path} is a file; pass the directory that holds config.cfg and "
            "meta.json (e.g. training/model-best)."
        )
    missing = [name for name in ("config.cfg", "meta.json") if not (path / name).is_file()]
    if missing:
        raise BertclsError(
            f"{path} is not a spaCy pipeline: it has no {' and no '.join(missing)}. Pass a "
            "directory saved by `spacy train` (model-best or model-last) or `nlp.to_disk`."
        )
    try:
        nlp = spacy.load(path)
    except (OSError, ValueError) as error:
        # Unknown factories, bad configs and missing weights all surface as these.
        raise BertclsError(f"Could not load the pipeline {path}: {error}") from error
    find_textcat(nlp)
    return nlp


def find_textcat(nlp: spacy.Language) -> tuple[str, Any]:
    """The (name, component) of the pipeline's text classifier (the first, if several)."""
    for name, component in nlp.pipeline:
        meta = nlp.get_pipe_meta(name)
        if meta.factory in TEXTCAT_FACTORIES or "doc.cats" in meta.assigns:
            return name, component
    names = ", ".join(nlp.pipe_names) or "none"
    raise BertclsError(
        f"The pipeline has no text classifier (its components: {names}). Expected one made by "
        f"{', '.join(TEXTCAT_FACTORIES)}; train one with `bertcls train` or `spacy train`."
    )


def exclusive_bert_textcat(
    nlp: spacy.Language, path: str | Path, *, task: str, other_factory: str = ""
) -> tuple[str, Any]:
    """(name, component) of the pipeline's bert_textcat, refusing what ``task`` (e.g. "an
    audit", "a retrain": the work that needs the torch encoder and one label per row) cannot
    use: another text classifier (``other_factory`` says what to do instead), a multi-label
    one, or one `bertcls optimize` made (its encoder is an ONNX graph)."""
    from .onnx_backend import is_onnx_pipeline_model

    name, component = find_textcat(nlp)
    if nlp.get_pipe_meta(name).factory != "bert_textcat":
        raise BertclsError(
            f"The pipeline {path} classifies with {name!r}, not bert_textcat: {task} needs a "
            f"bert_textcat pipeline's encoder.{other_factory}"
        )
    if not component.cfg["exclusive_classes"]:
        raise BertclsError(
            f"The pipeline {path} is multi-label: {task} with multi-label data is not "
            "supported yet; it works on one exclusive label per row."
        )
    if is_onnx_pipeline_model(component.model):
        raise BertclsError(
            f"The pipeline {path} was made by `bertcls optimize` (an ONNX encoder): {task} "
            "needs the pipeline it was optimized from."
        )
    return name, component


def pipeline_labels(nlp: spacy.Language) -> list[str]:
    """The text classifier's labels, in the order of the probability columns."""
    name, component = find_textcat(nlp)
    labels = list(getattr(component, "labels", ()))
    if not labels:
        raise BertclsError(f"The text classifier {name!r} has no labels; was it trained?")
    return labels


@dataclass
class PipelineInfo:
    """What a trained pipeline is: `bertcls info` prints it, the app's Pipeline tab shows it.

    Plain values only (`dataclasses.asdict` gives `bertcls info --json`); `facts`,
    `score_lines` and `setting_lines` word them, once for both.
    """

    #: The folder the pipeline was loaded from; None for one made in memory.
    path: str | None
    #: "<lang>_<name>" from meta.json, e.g. "en_pipeline".
    name: str
    version: str
    spacy_version: str
    components: list[str]
    #: The name of the text classifier in the pipeline, and the factory that made it.
    text_classifier: str
    factory: str
    labels: list[str]
    #: One label per text (True) or any number of them (False, multi-label).
    exclusive_classes: bool
    #: The classifier's `model.encoder` setting; None when it has none.
    encoder: str | None
    #: The classifier's `freeze_encoder` setting; None when it has none.
    freeze_encoder: bool | None
    #: The loss weight of each label as resolved at initialize (`bert_textcat`'s
    #: `class_weights_used`); None when unweighted or the classifier has no class weights.
    class_weights_used: dict[str, float] | None
    #: How many distinct training texts the pipeline keeps a hash of (`fingerprint`), to warn
    #: when it is evaluated on them; None when it keeps none (not `bert_textcat`, or older).
    training_texts: int | None = None
    #: The temperature the classifier's logits are divided by (`spacy_bertcls.calibration`);
    #: None when it is not calibrated.
    temperature: list[float] | None = None
    #: The summary of its calibration fit (data, rows, ECE and NLL before and after on dev).
    calibration: dict[str, Any] | None = None
    #: How a row's label is decided from the probabilities (`DecisionRule.describe`).
    decision: str = ""
    #: nlp.meta["performance"] (the dev-split scores `spacy train` stored), numbers only,
    #: nested keys joined by dots: "cats_f_per_type.<label>.f".
    scores: dict[str, float] = field(default_factory=dict)
    #: The classifier's config block without "factory", nested keys joined by dots:
    #: "model.encoder".
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def settings_heading(self) -> str:
        return f"Settings of {self.text_classifier} (nlp.config)"

    def facts(self) -> list[tuple[str, str]]:
        """(caption, text) pairs, in the order `bertcls info` prints them."""
        return [
            ("Pipeline", f"{self.name} {self.version}".strip()),
            ("Folder", self.path or "— (not loaded from a folder)"),
            ("Components", ", ".join(self.components)),
            ("Text classifier", f"{self.text_classifier} (factory {self.factory})"),
            ("Labels", ", ".join(self.labels)),
            ("exclusive_classes", self._exclusive_text()),
            ("encoder", self.encoder or "— (no encoder setting)"),
            ("freeze_encoder", self._freeze_text()),
            ("class_weights_used", self._weights_text()),
            ("training texts", self._training_texts_text()),
            ("calibration", self._calibration_text()),
            ("decision", self.decision or "—"),
            ("spaCy", self.spacy_version or "—"),
        ]

    def score_lines(self) -> list[tuple[str, str]]:
        """(key, text) of every score, floats with 4 decimals."""
        return [
            (key, f"{value:.4f}" if isinstance(value, float) else str(value))
            for key, value in self.scores.items()
        ]

    def setting_lines(self) -> list[tuple[str, str]]:
        """(key, text) of every setting, written as in config.cfg (true, null, [-1, -2])."""
        return [
            (key, value if isinstance(value, str) else json.dumps(value, default=str))
            for key, value in self.settings.items()
        ]

    def _exclusive_text(self) -> str:
        if self.exclusive_classes:
            return "true (one label per text)"
        return "false (multi-label: any number of labels per text)"

    def _freeze_text(self) -> str:
        if self.freeze_encoder is None:
            return "— (no freeze_encoder setting)"
        if self.freeze_encoder:
            return "true (frozen encoder: only the head was trained)"
        return "false (fine-tuned encoder)"

    def _calibration_text(self) -> str:
        if not self.temperature:
            return "none (the model's raw probabilities; `bertcls calibrate` fits a temperature)"
        text = "temperature " + ", ".join(f"{t:.3f}" for t in self.temperature)
        fit = self.calibration or {}
        if "ece_before" in fit and "ece_after" in fit:
            text += (
                f", fitted on {fit.get('n_examples', 0):,} rows of {fit.get('data') or 'dev data'}"
                f" (ECE {fit['ece_before']:.3f} -> {fit['ece_after']:.3f})"
            )
        return text

    def _training_texts_text(self) -> str:
        if not self.training_texts:
            return "— (no fingerprint: trained-on rows cannot be told)"
        return f"{self.training_texts:,} distinct (64-bit hashes, no text)"

    def _weights_text(self) -> str:
        if "class_weights" not in self.settings:
            return "— (no class_weights setting)"
        if not self.class_weights_used:
            return "none (unweighted)"
        return ", ".join(f"{label}={weight:g}" for label, weight in self.class_weights_used.items())


def pipeline_info(nlp: spacy.Language) -> PipelineInfo:
    """The facts about `nlp` and its text classifier, from its meta.json and config."""
    from .decisions import decision_rule  # it reads pipelines through this module

    name, component = find_textcat(nlp)
    config = dict(nlp.config["components"][name])
    factory = nlp.get_pipe_meta(name).factory
    settings = _flatten({key: value for key, value in config.items() if key != "factory"})
    freeze = config.get("freeze_encoder")
    weights = getattr(component, "class_weights", None)
    encoder = settings.get("model.encoder")
    meta = nlp.meta
    performance = _flatten(dict(meta.get("performance") or {}))
    return PipelineInfo(
        path=None if nlp.path is None else str(nlp.path),
        name=f"{meta.get('lang', nlp.lang)}_{meta.get('name', 'pipeline')}",
        version=str(meta.get("version") or ""),
        spacy_version=str(meta.get("spacy_version") or ""),
        components=list(nlp.pipe_names),
        text_classifier=name,
        factory=factory,
        labels=pipeline_labels(nlp),
        exclusive_classes=bool(config.get("exclusive_classes", factory != "textcat_multilabel")),
        encoder=None if encoder is None else str(encoder),
        freeze_encoder=freeze if isinstance(freeze, bool) else None,
        class_weights_used=dict(weights) if isinstance(weights, dict) else None,
        training_texts=len(training_fingerprint(nlp)) or None,
        temperature=getattr(component, "temperature", None),
        calibration=(getattr(component, "cfg", None) or {}).get("calibration"),
        decision=decision_rule(nlp).describe(),
        scores={
            key: value
            for key, value in performance.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        },
        settings=settings,
    )


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    items: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            items.update(_flatten(value, f"{prefix}{key}."))
        else:
            items[f"{prefix}{key}"] = value
    return items
