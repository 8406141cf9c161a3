"""Finding rows whose gold label is probably wrong: out-of-fold probabilities, then cleanlab.

The path of the data (`bertcls audit` calls `audit_file`; `audit_frame` is the same on a
DataFrame in memory):

    file -> rows (`read_table`) -> texts and gold labels of the rows that have both
    -> features: the frozen encoder runs once per text (`architectures.text_features`, through
       the disk store of `feature_store`, so a rerun or a frozen training on the same texts
       shares them)
    -> `out_of_fold_probabilities`: stratified k-fold; each fold's rows are predicted by a head
       fitted on the other folds' features only, so no row is scored by a model that saw its
       label
    -> `find_suspects`: cleanlab's confident learning picks the rows whose label is likely
       wrong and ranks them; the label quality is the out-of-fold probability of the gold label
    -> the input rows, all columns, in file order, plus `AUDIT_COLUMNS` -> file (`write_table`:
       atomic, never over the input)

Which library does what: the encoder and its feature settings are this project's (a trained
pipeline's `bert_textcat`, or the default encoder with configs/frozen.cfg's model settings);
scikit-learn splits the folds (and fits the "logistic" head, a logistic regression with
balanced class weights on standardized features); torch trains the default "mlp" head, the
component's own; cleanlab (`cleanlab.filter.find_label_issues`,
`cleanlab.rank.get_label_quality_scores`) decides which rows are suspect.

Only exclusive labels (one per row) are audited; multi-label data is refused.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import BertclsError
from .outputs import check_not_same_file, check_output_file
from .tables import TableWriter, read_table, require_columns
from .tables.cells import label_text, text_values

AUDITED = "audited"
SUSPECT = "suspect"
LABEL_QUALITY = "label_quality"
SUGGESTED_LABEL = "suggested_label"
SUSPECT_RANK = "suspect_rank"
#: The columns an audit adds after the input's own.
AUDIT_COLUMNS = (AUDITED, SUSPECT, LABEL_QUALITY, SUGGESTED_LABEL, SUSPECT_RANK)

#: Heads fitted per fold: "logistic" (scikit-learn), or the component's "linear" / "mlp" heads
#: trained in torch as a frozen training trains them.
HEADS = ("logistic", "linear", "mlp")
# The component's MLP head: in benchmarks/audit_noise.py it ranked injected label errors better
# than the logistic head on both data sets (AUROC 0.92 vs 0.90 tweets, 0.99 vs 0.97 SMS at 5 %).
DEFAULT_HEAD = "mlp"
# Inverse regularization of the logistic head: features are 1,536 standardized numbers for
# MiniLM's four layers, so a weaker C than scikit-learn's 1.0 keeps probabilities honest.
LOGISTIC_C = 0.1
# How the torch heads are trained: as configs/frozen.cfg trains them (Adam, learn rate 1e-3,
# batches of 32, weight decay 0.01, gradient clipping 1.0), for a fixed number of epochs,
# and at least a few hundred steps on small tables.
TORCH_HEAD_EPOCHS = 8
TORCH_HEAD_MIN_STEPS = 1000

#: The model settings of configs/frozen.cfg: the features an audit without a pipeline uses
#: (so a frozen training with that config and this audit share the disk store).
FROZEN_MODEL_SETTINGS: dict[str, Any] = {
    "pooling": "mean",
    "layers": [-1, -2, -3, -4],
    "head": "mlp",
    "hidden_width": 512,
    "dropout": 0.1,
    "max_length": 128,
    "stride": 96,
    "long_text": "window",
    "window_pooling": "mean",
    "encoder_batch_size": 64,
}


class AuditCancelled(BertclsError):
    """An audit stopped because its caller asked (``should_stop``); nothing was written."""


@dataclass
class AuditProgress:
    """Where the encoding of an audit stands (the same fields as `labeling.LabelProgress`,
    which the CLI's progress bar shows)."""

    rows_done: int
    rows_total: int | None
    rows_per_second: float
    seconds_left: float | None


@dataclass
class AuditSummary:
    """What an audit found."""

    rows: int
    rows_audited: int
    labels: dict[str, int]  # audited rows per gold label
    suspects: dict[str, int]  # suspect rows per gold label
    folds: int
    head: str
    encode_seconds: float
    fit_seconds: float
    features_from_store: int  # texts whose features came from the disk store
    output: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def n_suspects(self) -> int:
        return sum(self.suspects.values())

    def format(self) -> str:
        """A readable multi-line summary (printed by the CLI)."""
        skipped = self.rows - self.rows_audited
        lines = [
            f"Audited {self.rows_audited:,} of {self.rows:,} rows"
            + (f" ({skipped:,} without a text or label, not audited)" if skipped else "")
            + (f" -> {self.output}" if self.output else ""),
            f"  {self.n_suspects:,} suspect labels ({self.n_suspects / max(self.rows_audited, 1):.1%}),"
            " ranked in suspect_rank (1 = most likely wrong)",
        ]
        for label, n in sorted(self.labels.items(), key=lambda item: -item[1]):
            lines.append(f"  {label}: {self.suspects.get(label, 0):,} suspect of {n:,}")
        lines.append(
            f"  features: {self.encode_seconds:.1f} s ({self.features_from_store:,} texts from "
            f"the feature store); {self.folds} folds of a {self.head} head: "
            f"{self.fit_seconds:.1f} s"
        )
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)


# Features ----------------------------------------------------------------------------------


def feature_model(pipeline: str | Path | None = None, encoder: str | None = None):
    """The network whose encoder computes the features, and its head settings.

    pipeline: a trained pipeline folder: its ``bert_textcat`` encoder and feature settings.
    encoder: without a pipeline, the encoder (default: MiniLM-L6) with configs/frozen.cfg's
        model settings.
    RETURNS: (thinc Model with its encoder loaded, {"head", "hidden_width", "dropout"}).
    """
    from .architectures import build_bert_classifier, configure_training
    from .encoder import DEFAULT_ENCODER

    if pipeline is not None:
        if encoder is not None:
            raise BertclsError(
                "Give --pipeline or --encoder, not both: an audit with a pipeline uses the "
                "pipeline's own encoder."
            )
        return _pipeline_feature_model(Path(pipeline))
    # Two outputs: the network's own head is built but never used.
    model = build_bert_classifier(encoder=encoder or DEFAULT_ENCODER, **FROZEN_MODEL_SETTINGS, nO=2)
    configure_training(model, freeze_encoder=True, encoder_learn_rate_scale=1.0)
    model.initialize()
    head = {k: FROZEN_MODEL_SETTINGS[k] for k in ("head", "hidden_width", "dropout")}
    return model, head


def _pipeline_feature_model(path: Path):
    from .pipelines import load_pipeline

    return pipeline_feature_model(load_pipeline(path), path)


def pipeline_feature_model(nlp: Any, path: str | Path):
    """`feature_model` of a pipeline loaded already (``path``: where it came from, for the
    messages): the app audits with the pipeline it has open."""
    from .architectures import get_shim
    from .pipelines import exclusive_bert_textcat

    _, component = exclusive_bert_textcat(
        nlp, path, task="an audit",
        other_factory=" Leave --pipeline out to use the default encoder.",
    )  # fmt: skip
    cfg = get_shim(component.model).cfg
    return component.model, {k: cfg[k] for k in ("head", "hidden_width", "dropout")}


# Out-of-fold probabilities -----------------------------------------------------------------


def out_of_fold_probabilities(
    features: np.ndarray,
    labels: np.ndarray,
    n_labels: int,
    *,
    folds: int = 5,
    head: str = DEFAULT_HEAD,
    head_settings: dict[str, Any] | None = None,
    seed: int = 0,
    should_stop: Callable[[], bool] | None = None,
) -> np.ndarray:
    """Probabilities (rows x n_labels) of each row's labels from a head that never saw it.

    Stratified ``folds``-fold: each fold is predicted by a head fitted on the other folds.
    labels: integer label of each row, 0 .. n_labels - 1. A label a fold's head never saw
    (one with fewer rows than folds) gets probability 0 there.
    head: "logistic" (scikit-learn's LogisticRegression, balanced class weights, on
        standardized features), or "linear" / "mlp" (the component's head in torch, trained
        with balanced class weights; ``head_settings`` gives hidden_width and dropout).
    """
    from sklearn.model_selection import StratifiedKFold

    if head not in HEADS:
        raise BertclsError(f"head = {head!r} is not one of {', '.join(map(repr, HEADS))}.")
    probs = np.zeros((len(labels), n_labels), dtype=np.float64)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # Labels rarer than the folds: reported in the summary instead.
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        splits = list(splitter.split(features, labels))
    for k, (train, held_out) in enumerate(splits):
        if should_stop is not None and should_stop():
            raise AuditCancelled(f"Audit cancelled before fold {k + 1} of {folds}.")
        fit = _fit_logistic if head == "logistic" else _fit_torch_head
        probs[held_out] = fit(
            features[train],
            labels[train],
            features[held_out],
            n_labels,
            head=head,
            settings=head_settings or {},
            seed=seed + k,
        )
    return probs


def _fit_logistic(x, y, x_out, n_labels, *, head, settings, seed) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    seen = np.unique(y)
    out = np.zeros((len(x_out), n_labels))
    if len(seen) == 1:
        out[:, seen[0]] = 1.0
        return out
    classifier = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=LOGISTIC_C, class_weight="balanced", max_iter=2000, random_state=seed),
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)  # convergence: close enough
        classifier.fit(x, y)
        out[:, classifier.classes_] = classifier.predict_proba(x_out)
    return out


def _fit_torch_head(x, y, x_out, n_labels, *, head, settings, seed) -> np.ndarray:
    import torch

    # A small head gains nothing from threads, and loses much when the cores are busy.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train_torch_head(x, y, x_out, n_labels, head=head, settings=settings, seed=seed)
    finally:
        torch.set_num_threads(threads)


def _train_torch_head(x, y, x_out, n_labels, *, head, settings, seed) -> np.ndarray:
    import torch

    from .torch_modules import make_head

    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    module = make_head(
        head,
        x.shape[1],
        n_labels,
        int(settings.get("hidden_width", 512)),
        float(settings.get("dropout", 0.1)),
    )
    counts = np.bincount(y, minlength=n_labels).astype(np.float64)
    present = counts > 0
    weights = np.zeros(n_labels)
    weights[present] = len(y) / (present.sum() * counts[present])  # scikit-learn's "balanced"
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32))
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3, weight_decay=0.01)
    features = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    targets = torch.from_numpy(y.astype(np.int64))
    module.train()
    steps_per_epoch = -(-len(y) // 32)
    for _ in range(max(TORCH_HEAD_EPOCHS, -(-TORCH_HEAD_MIN_STEPS // steps_per_epoch))):
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), 32):
            batch = order[start : start + 32]
            optimizer.zero_grad()
            loss = loss_fn(module(features[batch]), targets[batch])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
            optimizer.step()
    module.eval()
    with torch.inference_mode():
        logits = module(torch.from_numpy(np.ascontiguousarray(x_out, dtype=np.float32)))
        logits[:, torch.from_numpy(~present)] = float("-inf")  # never seen: probability 0
        return torch.softmax(logits, dim=1).double().numpy()


# Suspects ----------------------------------------------------------------------------------


@dataclass
class Suspects:
    """cleanlab's verdict on each audited row."""

    suspect: np.ndarray  # bool
    rank: np.ndarray  # int: 1 = most likely wrong; 0 = not suspect
    quality: np.ndarray  # float: out-of-fold probability of the gold label (self-confidence)
    notes: list[str] = field(default_factory=list)  # what cleanlab warned about


def find_suspects(labels: np.ndarray, probs: np.ndarray) -> Suspects:
    """The rows whose given label is likely wrong (cleanlab's confident learning, which
    estimates how many labels of each class are wrong and picks that many per class pair),
    ranked by label quality, lowest first."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    probs = _normalized(probs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ranked = find_label_issues(
            labels, probs, return_indices_ranked_by="self_confidence", n_jobs=1
        )
    suspect = np.zeros(len(labels), dtype=bool)
    suspect[ranked] = True
    rank = np.zeros(len(labels), dtype=np.int64)
    rank[ranked] = np.arange(1, len(ranked) + 1)
    quality = get_label_quality_scores(labels, probs, method="self_confidence")
    return Suspects(suspect, rank, quality, [f"cleanlab: {w.message}" for w in caught])


def _normalized(probs: np.ndarray) -> np.ndarray:
    # cleanlab wants rows that sum to 1; a label never seen gives exact zeros, which it takes.
    probs = np.clip(np.asarray(probs, dtype=np.float64), 0.0, 1.0)
    return probs / probs.sum(axis=1, keepdims=True)


# Tables ------------------------------------------------------------------------------------


def audit_frame(
    df: pd.DataFrame,
    *,
    text_column: str,
    label_column: str,
    model: Any,
    head_settings: dict[str, Any] | None = None,
    folds: int = 5,
    head: str = DEFAULT_HEAD,
    seed: int = 0,
    progress: Callable[[AuditProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[pd.DataFrame, AuditSummary]:
    """A copy of ``df`` with `AUDIT_COLUMNS` after its own, and a summary.

    model: the network computing features (`feature_model`). Rows without a text or a label
    are kept, with ``audited`` false and the other columns empty.
    should_stop: asked after each chunk of texts encoded and before each fold; when it says
    True the audit raises `AuditCancelled` (features encoded so far stay in the disk store).
    """
    require_columns(df.columns, [text_column, label_column], source="The table")
    check_no_clash(df.columns)
    if folds < 2:
        raise BertclsError(f"folds = {folds}: an audit needs 2 folds or more (5 is usual).")
    if head not in HEADS:
        raise BertclsError(f"head = {head!r} is not one of {', '.join(map(repr, HEADS))}.")
    texts = text_values(df[text_column])
    gold = [label_text(value) for value in df[label_column].tolist()]
    rows = np.array(
        [i for i, (t, g) in enumerate(zip(texts, gold)) if t.strip() and g is not None], dtype=int
    )
    names = sorted({gold[i] for i in rows})
    counts = {name: 0 for name in names}
    for i in rows:
        counts[gold[i]] += 1
    if len(names) < 2:
        raise BertclsError(
            f"The column {label_column!r} has {len(names)} different label(s) in rows with a "
            "text; an audit needs at least 2."
        )
    if len(rows) < 2 * folds:
        raise BertclsError(
            f"Only {len(rows)} rows have both a text and a label: too few for {folds} folds. "
            "Give more rows, or fewer --folds."
        )
    notes = []
    rare = [name for name in names if counts[name] < folds]
    if rare:
        notes.append(
            f"label(s) with fewer rows than folds: {', '.join(map(repr, rare))}. Check their "
            "rows by hand: heads that never saw such a label give it a low label_quality, and "
            "cleanlab never flags the last rows of a label"
        )
    index = {name: j for j, name in enumerate(names)}
    y = np.array([index[gold[i]] for i in rows], dtype=np.int64)

    from . import feature_store
    from .architectures import text_features

    store = feature_store.default_store()
    hits_before = store.stats.hits if store is not None else 0
    started = time.perf_counter()

    def report(done: int) -> None:
        if should_stop is not None and should_stop():
            raise AuditCancelled(f"Audit cancelled after encoding {done:,} of {len(rows):,} texts.")
        if progress is not None:
            seconds = time.perf_counter() - started
            rate = done / seconds if seconds > 0 else 0.0
            left = (len(rows) - done) / rate if rate > 0 else None
            progress(AuditProgress(done, len(rows), rate, left))

    # Chunks of 256: a cancel takes effect within seconds on a CPU.
    features = text_features(model, [texts[i] for i in rows], chunk_size=256, progress=report)
    encode_seconds = time.perf_counter() - started
    started = time.perf_counter()
    probs = out_of_fold_probabilities(
        features, y, len(names), folds=folds, head=head, head_settings=head_settings, seed=seed,
        should_stop=should_stop,
    )  # fmt: skip
    found = find_suspects(y, probs)
    fit_seconds = time.perf_counter() - started
    notes.extend(found.notes)

    out = df.copy()
    audited = np.zeros(len(df), dtype=bool)
    audited[rows] = True
    suspect = np.zeros(len(df), dtype=bool)
    suspect[rows] = found.suspect
    quality = np.full(len(df), np.nan)
    quality[rows] = found.quality
    suggested = np.full(len(df), None, dtype=object)
    suggested[rows] = np.array(names, dtype=object)[probs.argmax(axis=1)]
    rank = pd.array([pd.NA] * len(df), dtype="Int64")
    rank[rows[found.suspect]] = found.rank[found.suspect]
    out[AUDITED] = audited
    out[SUSPECT] = suspect
    out[LABEL_QUALITY] = quality
    out[SUGGESTED_LABEL] = pd.array(suggested, dtype="str")
    out[SUSPECT_RANK] = rank
    suspects = {name: int(found.suspect[y == j].sum()) for j, name in enumerate(names)}
    summary = AuditSummary(
        rows=len(df),
        rows_audited=len(rows),
        labels=counts,
        suspects={k: v for k, v in suspects.items() if v},
        folds=folds,
        head=head,
        encode_seconds=encode_seconds,
        fit_seconds=fit_seconds,
        features_from_store=(store.stats.hits - hits_before) if store is not None else 0,
        notes=notes,
    )
    return out, summary


def check_no_clash(columns: Sequence[Any]) -> None:
    """Refuse a table that already has a column an audit adds."""
    clash = [name for name in AUDIT_COLUMNS if name in set(map(str, columns))]
    if clash:
        raise BertclsError(
            f"The input already has the column(s) {clash}, which an audit adds (is it an "
            "audited file?). Rename or remove those columns, or audit the original file."
        )


def audit_file(
    path: str | Path,
    *,
    text_column: str,
    label_column: str,
    out: str | Path,
    pipeline: str | Path | None = None,
    encoder: str | None = None,
    folds: int = 5,
    head: str = DEFAULT_HEAD,
    seed: int = 0,
    sheet: str | int | None = None,
    encoding: str | None = None,
    overwrite: bool = False,
    progress: Callable[[AuditProgress], None] | None = None,
) -> AuditSummary:
    """Audit the labels of a table file and write its rows with `AUDIT_COLUMNS` to ``out``
    (format from its suffix; written atomically, never over the input). See `audit_frame`."""
    path, out = Path(path), Path(out)
    check_not_same_file(path, out, option="--out", example=f"{path.stem}_audit.csv")
    check_output_file(out, option="--out", example=f"{path.stem}_audit.csv")
    if out.exists() and not overwrite:
        raise BertclsError(f"{out} exists already. Pass --overwrite to replace it.")
    writer = TableWriter(out)  # refuses an unsupported output suffix before any work
    if pipeline is not None:
        from .outputs import check_outside_folder

        check_outside_folder(pipeline, out, option="--out")
    notes: list[str] = []
    df = read_table(path, sheet=sheet, encoding=encoding, notes=notes)
    require_columns(df.columns, [text_column, label_column], source=str(path))
    check_no_clash(df.columns)
    writer.check_columns([*map(str, df.columns), *AUDIT_COLUMNS])
    model, head_settings = feature_model(pipeline, encoder)
    result, summary = audit_frame(
        df,
        text_column=text_column,
        label_column=label_column,
        model=model,
        head_settings=head_settings,
        folds=folds,
        head=head,
        seed=seed,
        progress=progress,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    with writer:
        writer.write(result)
    summary.output = out
    summary.notes = notes + summary.notes
    return summary
