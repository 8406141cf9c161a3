"""Retraining a pipeline's head on its own training corpus plus the analyst's corrections.

The path of the data (the app's Label > Retrain calls `retrain_pipeline`):

    pipeline folder -> its config.cfg: paths.train and paths.dev (`find_corpus`, or corpora
        the caller chooses)
    -> train.spacy with the corrections merged in (`merge_corrections`): a doc whose text was
       corrected gets the corrected label, a corrected text the corpus lacks is added
    -> spaCy's own training (`spacy.training.initialize.init_nlp` and `spacy.training.loop
       .train`, what `spacy train` and `bertcls train` run) with the pipeline's own config,
       its own copy of the encoder, frozen: the features come from the disk store
       (`feature_store`) that the first training or an audit filled, so only the head trains
    -> calibrated on the dev corpus, as `bertcls train` calibrates
    -> a NEW pipeline folder beside the old one (`next_version_folder`: model-best-v2, -v3,
       ...), written atomically (`outputs.staged_folder`); the old folder is only read.
       The new folder keeps its training data in corpus/, and its config.cfg points there,
       so a later retrain starts from it.

Scores before and after, on the dev corpus and on rows the caller passes (the open file's
gold column), are computed with the features from the disk store too
(`architectures.features_from_store`).

Only exclusive labels (one per row) are retrained here; the corrections are single labels.
"""

from __future__ import annotations

import io
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from spacy.util import registry

from .errors import BertclsError

#: Where the new pipeline folder keeps the data it was trained and calibrated on.
CORPUS_DIR = "corpus"
TRAIN_FILE = "train.spacy"
DEV_FILE = "dev.spacy"
#: The stages a retrain reports progress in, in order.
STAGES = ("corpus", "initialize", "train", "calibrate", "score")


class RetrainCancelled(BertclsError):
    """A retrain stopped because its caller asked (``should_stop``); nothing new was written."""


@dataclass
class RetrainProgress:
    """Where a retrain stands: its stage (one of `STAGES`) and, while training, the step."""

    stage: str
    done: int = 0
    total: int | None = None


@dataclass
class Scores:
    """Scores of a pipeline on some labeled texts (spaCy's textcat scorer)."""

    rows: int
    macro_f: float
    accuracy: float  # micro F of exclusive labels: the share of rows labeled right

    def format(self) -> str:
        return f"macro F1 {self.macro_f:.3f}, accuracy {self.accuracy:.3f} ({self.rows:,} rows)"


@dataclass
class RetrainResult:
    """What a retrain did: the new pipeline, its data, and the scores before and after."""

    previous: Path
    pipeline: Path
    train: Path  # the original training corpus
    dev: Path
    train_docs: int  # docs in the original corpus
    relabeled: int  # of them, given a corrected label
    added: int  # corrected texts the corpus did not have
    dev_before: Scores | None = None
    dev_after: Scores | None = None
    rows_before: Scores | None = None  # the caller's rows (the open file's gold column)
    rows_after: Scores | None = None
    rows_trained_on: int = 0  # of the caller's rows, those whose text the new pipeline trained on
    seconds: float = 0.0
    calibration: str = ""
    log: str = ""
    notes: list[str] = field(default_factory=list)

    def format(self) -> str:
        """A readable multi-line summary."""
        lines = [
            f"New pipeline: {self.pipeline} (the previous one, {self.previous}, is unchanged)",
            f"Trained on {self.train} ({self.train_docs:,} texts) with {self.relabeled:,} "
            f"relabeled and {self.added:,} added by corrections, in {self.seconds:.1f} s",
        ]
        for what, before, after in (
            (f"dev split {self.dev}", self.dev_before, self.dev_after),
            ("the file's gold column", self.rows_before, self.rows_after),
        ):
            if before is not None and after is not None:
                lines.append(f"{what}: macro F1 {before.macro_f:.3f} -> {after.macro_f:.3f}, "
                             f"accuracy {before.accuracy:.3f} -> {after.accuracy:.3f} "
                             f"({after.rows:,} rows)")  # fmt: skip
        if self.rows_after is not None and self.rows_trained_on:
            lines.append(
                f"  {self.rows_trained_on:,} of the file's rows are in the training data now: "
                "their scores flatter the model"
            )
        if self.calibration:
            lines.append(f"calibration: {self.calibration}")
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)


# Finding the corpus and the new folder --------------------------------------------------------


def find_corpus(pipeline: str | Path, name: str) -> Path | None:
    """The corpus that the pipeline's config.cfg names as ``paths.<name>`` ("train", "dev"),
    or None when it names none or it no longer exists.

    `spacy train` keeps the path as it was given, often relative to the folder training ran
    in, which is not known: it is looked for as given, in the pipeline folder (where a
    retrain keeps its corpus) and in each folder above it.
    """
    from spacy.util import load_config

    pipeline = Path(pipeline)
    config = pipeline / "config.cfg"
    if not config.is_file():
        raise BertclsError(f"{pipeline} has no config.cfg: is it a pipeline folder?")
    value = load_config(config, interpolate=False).get("paths", {}).get(name)
    if value is None or str(value).strip() in ("", "null", "None") or "${" in str(value):
        return None
    given = Path(str(value))
    candidates = [given] if given.is_absolute() else [given, pipeline / given]
    if not given.is_absolute():
        candidates += [folder / given for folder in pipeline.resolve().parents]
    return next((path for path in candidates if path.is_file()), None)


def next_version_folder(pipeline: str | Path) -> Path:
    """The first free ``<name>-v2``, ``-v3``, ... beside ``pipeline`` (a pipeline called
    ``x-v2`` is followed by ``x-v3``)."""
    pipeline = Path(pipeline)
    match = re.fullmatch(r"(.*)-v(\d+)", pipeline.name)
    stem, version = (match.group(1), int(match.group(2))) if match else (pipeline.name, 1)
    while True:
        version += 1
        folder = pipeline.parent / f"{stem}-v{version}"
        if not folder.exists():
            return folder


# The training data ---------------------------------------------------------------------------


@dataclass
class MergedCorpus:
    docs: int
    relabeled: int
    added: int
    conflicts: int  # texts corrected to different labels in different rows (the last one kept)


def merge_corrections(
    train: Path, corrections: pd.DataFrame, labels: Sequence[str], out: Path, lang: str = "en"
) -> MergedCorpus:
    """Write ``train`` (a .spacy file) to ``out`` with the corrections (columns ``text`` and
    ``label``, as `session.Session.corrections` gives them) merged in: a doc whose exact text
    was corrected gets the corrected label, a corrected text it lacks is added."""
    import spacy
    from spacy.tokens import DocBin

    missing = {"text", "label"} - set(corrections.columns)
    if missing:
        raise BertclsError(f"The corrections lack the column(s) {sorted(missing)}.")
    wanted: dict[str, str] = {}
    conflicts = 0
    for text, label in zip(corrections["text"].tolist(), corrections["label"].tolist()):
        if label not in labels:
            raise BertclsError(
                f"The correction {label!r} is not a label of the pipeline: {list(labels)}."
            )
        if not str(text).strip():
            continue  # an empty text teaches nothing
        conflicts += text in wanted and wanted[text] != label
        wanted[text] = label

    def cats(label: str) -> dict[str, float]:
        return {name: float(name == label) for name in labels}

    nlp = spacy.blank(lang)
    source = DocBin().from_disk(train)
    merged = DocBin(store_user_data=False)
    relabeled = docs = 0
    seen = set()
    for doc in source.get_docs(nlp.vocab):
        docs += 1
        label = wanted.get(doc.text)
        if label is not None:
            seen.add(doc.text)
            if doc.cats != cats(label):
                relabeled += 1
            doc.cats = cats(label)
        merged.add(doc)
    added = 0
    for text, label in wanted.items():
        if text not in seen:
            doc = nlp.make_doc(text)
            doc.cats = cats(label)
            merged.add(doc)
            added += 1
    out.parent.mkdir(parents=True, exist_ok=True)
    merged.to_disk(out)
    return MergedCorpus(docs, relabeled, added, conflicts)


# Progress and cancel inside spaCy's training loop --------------------------------------------

# spaCy resolves its training loop's callbacks from the config, so a function cannot be passed
# in directly: the config names this registered callback and a key, and the key finds the
# retrain's own function here (a retrain removes it from the config it saves).
_HOOKS: dict[str, Callable[[Any, dict[str, Any]], None]] = {}
_HOOKS_LOCK = threading.Lock()


@registry.callbacks("spacy_bertcls.retrain_hook.v1")
def make_retrain_hook(key: str) -> Callable[[Any, dict[str, Any]], None]:
    """The ``training.before_update`` callback of a running retrain: reports each step and
    stops the training when asked. Does nothing when no retrain of this process has ``key``."""

    def before_update(nlp: Any, info: dict[str, Any]) -> None:
        hook = _HOOKS.get(key)
        if hook is not None:
            hook(nlp, info)

    return before_update


@contextmanager
def _hook(function: Callable[[Any, dict[str, Any]], None]) -> Iterator[str]:
    key = uuid.uuid4().hex
    with _HOOKS_LOCK:
        _HOOKS[key] = function
    try:
        yield key
    finally:
        with _HOOKS_LOCK:
            _HOOKS.pop(key, None)


# Scores --------------------------------------------------------------------------------------


def score(nlp: Any, texts: Sequence[str], labels: Sequence[str]) -> Scores:
    """spaCy's textcat scores of ``nlp`` on ``texts`` with one gold label each, features from
    the disk store (`architectures.features_from_store`) when the encoder is frozen."""
    from spacy.training import Example

    from .pipelines import find_textcat

    name, component = find_textcat(nlp)
    names = list(component.labels)
    examples = [
        Example.from_dict(nlp.make_doc(text), {"cats": {n: float(n == label) for n in names}})
        for text, label in zip(texts, labels)
    ]
    with _store_features(component):
        values = nlp.evaluate(examples)
    return Scores(len(examples), float(values["cats_macro_f"]), float(values["cats_micro_f"]))


@contextmanager
def _store_features(component: Any) -> Iterator[None]:
    from .architectures import features_from_store, get_shim

    shim = getattr(getattr(component, "model", None), "shims", None)
    if not shim or not get_shim(component.model).cfg.get("freeze_encoder"):
        yield
        return
    with features_from_store(component.model):
        yield


def corpus_texts(path: Path, labels: Sequence[str], lang: str = "en") -> tuple[list, list]:
    """The texts of a .spacy corpus and each one's label (the highest cat), for `score`."""
    import spacy
    from spacy.tokens import DocBin

    texts, gold = [], []
    for doc in DocBin().from_disk(path).get_docs(spacy.blank(lang).vocab):
        if doc.cats and doc.text.strip():
            label = max(doc.cats, key=doc.cats.get)
            if label in labels:
                texts.append(doc.text)
                gold.append(label)
    return texts, gold


# Retraining ----------------------------------------------------------------------------------


def retrain_pipeline(
    pipeline: str | Path,
    corrections: pd.DataFrame,
    *,
    out: str | Path | None = None,
    train: str | Path | None = None,
    dev: str | Path | None = None,
    score_texts: Sequence[str] | None = None,
    score_labels: Sequence[str] | None = None,
    progress: Callable[[RetrainProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RetrainResult:
    """Train the head of ``pipeline`` again on its training corpus plus ``corrections``
    (columns ``text`` and ``label``) and write the result to ``out`` (default:
    `next_version_folder`), a new folder; ``pipeline`` is only read.

    train, dev: the .spacy corpora (default: those the pipeline's config names, `find_corpus`).
    score_texts, score_labels: more labeled rows to score before and after (the open file's
        gold column); labels that are not the pipeline's are left out.
    should_stop: asked before each training step and between stages; True raises
        `RetrainCancelled` and leaves nothing new on disk.
    """
    from spacy.training.initialize import init_nlp
    from spacy.training.loop import train as train_nlp
    from spacy.util import load_config

    from .calibration import TooFewRows, calibrate_from_file
    from .fingerprint import trained_on
    from .outputs import check_out_folder, disk_full_errors, staged_folder
    from .pipelines import exclusive_bert_textcat, find_textcat, load_pipeline
    from .training import bert_textcat_sections, eval_frequency_for_short_runs

    started = time.perf_counter()
    pipeline = Path(pipeline)

    def report(stage: str, done: int = 0, total: int | None = None) -> None:
        if should_stop is not None and should_stop():
            raise RetrainCancelled(f"Retrain cancelled ({stage}); {pipeline} is as it was.")
        if progress is not None:
            progress(RetrainProgress(stage, done, total))

    # Everything that can be refused is checked before any work.
    old = load_pipeline(pipeline)
    name, component = exclusive_bert_textcat(old, pipeline, task="a retrain")
    labels = list(component.labels)
    config_file = pipeline / "config.cfg"
    sections = [s for s in bert_textcat_sections(config_file) if s == f"components.{name}"]
    if not sections:
        raise BertclsError(f"{config_file} has no [components.{name}] made by bert_textcat.")
    train = Path(train) if train is not None else find_corpus(pipeline, "train")
    dev = Path(dev) if dev is not None else find_corpus(pipeline, "dev")
    for what, path in (("training", train), ("dev", dev)):
        if path is None:
            raise BertclsError(
                f"The {what} corpus of {pipeline} is not known (its config.cfg names none, "
                f"or it was moved). Choose the {what} .spacy file it was trained with (`bertcls "
                "convert` writes train.spacy and dev.spacy)."
            )
        if path.suffix != ".spacy" or not path.is_file():
            raise BertclsError(
                f"The {what} corpus {path} is not a .spacy file. Make one from a labeled table "
                "with `bertcls convert TABLE --text-column ... --label-column ...`."
            )
    if corrections.empty:
        raise BertclsError("There are no corrections to retrain with: correct some rows first.")
    out = Path(out) if out is not None else next_version_folder(pipeline)
    check_out_folder(pipeline, out, overwrite=False)
    if out.exists():
        raise BertclsError(f"{out} exists already: choose a new folder for the new pipeline.")
    encoder_copy = pipeline / name / "model" / "encoder"
    lang = old.lang

    result = RetrainResult(pipeline, out, train, dev, 0, 0, 0)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.retrain.", dir=out.parent))
    log = io.StringIO()
    try:
        report("corpus")
        merged = merge_corrections(train, corrections, labels, work / CORPUS_DIR / TRAIN_FILE, lang)
        shutil.copyfile(dev, work / CORPUS_DIR / DEV_FILE)
        result.train_docs, result.relabeled = merged.docs, merged.relabeled
        result.added = merged.added
        if merged.conflicts:
            result.notes.append(
                f"{merged.conflicts:,} text(s) were corrected to different labels in different "
                "rows; the last row's label was used"
            )
        dev_texts, dev_gold = corpus_texts(dev, labels, lang)
        in_dev = len(set(dev_texts) & set(map(str, corrections["text"])))
        if in_dev:
            result.notes.append(
                f"{in_dev:,} corrected text(s) are in the dev split too, which keeps its labels"
            )
        report("score")
        result.dev_before = score(old, dev_texts, dev_gold)
        rows_texts, rows_gold = _known(score_texts, score_labels, labels)
        if rows_texts:
            result.rows_before = score(old, rows_texts, rows_gold)
        del old, component  # the copy for scoring; the caller has its own

        overrides: dict[str, Any] = {
            "paths.train": str(work / CORPUS_DIR / TRAIN_FILE),
            "paths.dev": str(work / CORPUS_DIR / DEV_FILE),
            f"components.{name}.freeze_encoder": True,
        }
        if encoder_copy.is_dir():
            # The pipeline's own copy: the same weights as the encoder it was trained with
            # (so the disk store has their features) and no download.
            overrides[f"components.{name}.model.encoder"] = str(encoder_copy)
        frequency, _ = eval_frequency_for_short_runs(config_file, overrides)
        if frequency is not None:
            overrides["training.eval_frequency"] = frequency
        config = load_config(config_file, overrides=overrides, interpolate=False)
        original = load_config(config_file, interpolate=False)
        total = _total_steps(config, merged.docs + merged.added)

        def step(nlp: Any, info: dict[str, Any]) -> None:
            report("train", int(info.get("step", 0)), total)

        report("initialize")
        with _hook(step) as key:
            config["training"]["before_update"] = {
                "@callbacks": "spacy_bertcls.retrain_hook.v1",
                "key": key,
            }
            nlp = init_nlp(config, use_gpu=-1)
            (work / "training").mkdir()
            with disk_full_errors(work / "training"):
                train_nlp(nlp, work / "training", use_gpu=-1, stdout=log, stderr=log)
        del nlp
        result.log = log.getvalue()

        report("calibrate")
        new = load_pipeline(work / "training" / "model-best")
        _, new_component = find_textcat(new)
        with _store_features(new_component):
            try:
                result.calibration = calibrate_from_file(new, dev).format()
            except TooFewRows as error:
                result.calibration = f"not calibrated: {error}"
        _restore_config(new, original, name)
        report("score")
        result.dev_after = score(new, dev_texts, dev_gold)
        if rows_texts:
            result.rows_after = score(new, rows_texts, rows_gold)
            result.rows_trained_on = int(trained_on(new, rows_texts).sum())
        report("score", 1, 1)
        with disk_full_errors(out), staged_folder(out) as stage:
            new.to_disk(stage)
            shutil.copytree(work / CORPUS_DIR, stage / CORPUS_DIR)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result.seconds = time.perf_counter() - started
    return result


def _known(texts, labels, names) -> tuple[list[str], list[str]]:
    if texts is None or labels is None:
        return [], []
    pairs = [(t, g) for t, g in zip(texts, labels) if g in names and str(t).strip()]
    return [t for t, _ in pairs], [g for _, g in pairs]


def _total_steps(config: Any, n_docs: int) -> int | None:
    """The training steps, when the batch size is a number and epochs are limited."""
    training = config["training"]
    size = training.get("batcher", {}).get("size")
    epochs, steps = training.get("max_epochs", 0), training.get("max_steps", 0)
    if not isinstance(size, int) or not isinstance(epochs, int) or epochs <= 0:
        return steps or None
    total = epochs * max(1, -(-n_docs // size))
    return min(total, steps) if steps else total


def _restore_config(nlp: Any, original: Any, name: str) -> None:
    """The new pipeline's config as the old one's, but for its own data: paths point into
    its corpus folder (relative, found by `find_corpus`), the encoder is named as before, and
    no retrain callback is left behind."""
    config = nlp.config
    config["paths"]["train"] = f"{CORPUS_DIR}/{TRAIN_FILE}"
    config["paths"]["dev"] = f"{CORPUS_DIR}/{DEV_FILE}"
    config["training"]["before_update"] = original["training"].get("before_update")
    encoder = original["components"][name]["model"]["encoder"]
    config["components"][name]["model"]["encoder"] = encoder
