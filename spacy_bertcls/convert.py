"""Spreadsheet -> spaCy training corpus: rows become Docs with `doc.cats`, split three ways.

`convert_table` reads a table (see `tables.read_table`), drops rows without a text or a label,
makes one `Doc` per row and writes `train.spacy`, `dev.spacy` and `test.spacy` with
`write_corpus`, which also writes the app's corrections export and the benchmarks' corpora.

Splitting:
* One label per row (exclusive classes): stratified by label with scikit-learn's
  `train_test_split`, first test off the whole, then dev off the rest; reproducible by `seed`.
  Every label needs at least one row in each non-empty split, so a label with fewer rows than
  there are splits, or a split smaller than the number of labels, is refused with the sizes
  that would work. When the stratified split still leaves a rare label out of dev or test
  (rounding), one of its training rows is moved there; the summary lists each such move.
* Several labels per row (`multi_label_sep`): stratified by each row's first label; if that is
  impossible (a first label with a single row, or too many first labels for a split) the split
  is a plain shuffle, and the summary says so.
* Copies of a text (the same words, ignoring case and spacing) go to one split together: the
  unit that is split is a distinct text, labeled as its first row. Otherwise a repeated text
  (98 of the SMS collection's 837 test rows) is scored on dev/test after being trained on,
  and those scores measure memory, not generalization. The sizes are fractions of the
  distinct texts, so the splits' row counts can differ a little from the fractions.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import spacy
from sklearn.model_selection import train_test_split
from spacy.tokens import DocBin

from .errors import BertclsError
from .outputs import make_output_folder, write_bytes_atomic
from .tables import read_table, require_columns
from .tables.cells import cell_text, label_text, text_values

SPLITS = ("train", "dev", "test")
EMPTY_TEXT = "empty text"
EMPTY_LABEL = "empty label"


@dataclass
class ConvertSummary:
    """What `convert_table` read, kept, dropped and wrote."""

    source: Path
    text_column: str
    label_column: str
    multi_label: bool
    rows_read: int
    rows_kept: int
    dropped: dict[str, int]
    labels: list[str]
    split_sizes: dict[str, int]
    label_counts: dict[str, dict[str, int]]  # split -> label -> rows with that label
    duplicate_texts: int  # distinct texts that occur in more than one split
    duplicate_rows: int  # rows holding one of those texts
    output_paths: dict[str, Path]
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # reading notes, labels alike but for case

    def format(self) -> str:
        """A readable multi-line summary (printed by the CLI)."""
        mode = "multi-label" if self.multi_label else "one label per row"
        dropped = ", ".join(f"{n:,} {reason}" for reason, n in self.dropped.items() if n)
        lines = [
            f"Converted {self.source} (text: {self.text_column!r}, label: "
            f"{self.label_column!r}, {mode})",
            f"  rows read {self.rows_read:,}, kept {self.rows_kept:,}, dropped {dropped or 'none'}",
            f"  {len(self.labels)} labels: {', '.join(self.labels)}",
            *(f"  warning: {warning}" for warning in self.warnings),
            "",
            *self._split_table(),
            "",
        ]
        if self.duplicate_texts:
            lines.append(
                f"  {self.duplicate_texts:,} texts ({self.duplicate_rows:,} rows) occur in more "
                "than one split; dev/test scores on them measure memory, not generalization."
            )
        else:
            lines.append("  no text occurs in more than one split")
        lines.extend(f"  note: {note}" for note in self.notes)
        lines.extend(f"  wrote {self.output_paths[split]}" for split in SPLITS)
        return "\n".join(lines)

    def _split_table(self) -> list[str]:
        label_width = max(len(label) for label in [*self.labels, "label"])
        widths = [max(8, len(split) + 1) for split in SPLITS]
        header = f"  {'label':<{label_width}}" + "".join(
            f"{split:>{w}}" for split, w in zip(SPLITS, widths)
        )
        rows = [header]
        for label in self.labels:
            cells = "".join(
                f"{self.label_counts[split].get(label, 0):>{w},}"
                for split, w in zip(SPLITS, widths)
            )
            rows.append(f"  {label:<{label_width}}{cells}")
        total = "".join(f"{self.split_sizes[split]:>{w},}" for split, w in zip(SPLITS, widths))
        rows.append(f"  {'rows':<{label_width}}{total}")
        return rows


def convert_table(
    path: str | Path,
    *,
    text_column: str,
    label_column: str,
    out_dir: str | Path,
    multi_label_sep: str | None = None,
    sheet: str | int | None = None,
    encoding: str | None = None,
    dev_size: float = 0.1,
    test_size: float = 0.1,
    seed: int = 0,
    lang: str = "en",
) -> ConvertSummary:
    """Convert a labeled table into spaCy `train.spacy`, `dev.spacy` and `test.spacy`.

    path: the table file (any format `tables.read_table` reads).
    text_column: the column holding the texts.
    label_column: the column holding each row's label.
    out_dir: where the three .spacy files go (created if missing).
    multi_label_sep: when set, a label cell holds several labels separated by this string.
    sheet, encoding: passed to `read_table`.
    dev_size, test_size: fractions of the kept rows for dev and test (0 leaves that split
        empty).
    seed: the random seed of the split.
    lang: the language of the blank pipeline whose tokenizer makes the Docs.
    RETURNS: a summary of what was read, dropped, split and written.
    """
    path = Path(path)
    _check_sizes(dev_size, test_size)
    if text_column == label_column:
        raise BertclsError(
            f"text_column and label_column are both {text_column!r}; they must be different "
            "columns."
        )
    warned: list[str] = []  # what reading the file warned about
    df = read_table(path, sheet=sheet, encoding=encoding, notes=warned)
    require_columns(df.columns, [text_column, label_column], source=str(path))
    if multi_label_sep == "":
        raise BertclsError("multi_label_sep is empty; pass a separator such as ';' or None.")
    texts, row_labels, dropped = _kept_rows(
        text_values(df[text_column]), df[label_column].tolist(), multi_label_sep
    )
    labels = _check_labels(row_labels, path, label_column, len(df), dropped)
    warned.extend(_case_variants_warning(row_labels, label_column))
    nlp = _blank(lang)

    split_rows, notes = _split_grouped(
        texts, row_labels, multi_label_sep is not None, dev_size, test_size, seed
    )
    out_dir = make_output_folder(out_dir)
    output_paths = {}
    label_counts = {}
    for split in SPLITS:
        rows = split_rows[split]
        output_paths[split] = write_corpus(
            out_dir / f"{split}.spacy",
            [texts[i] for i in rows],
            [row_labels[i] for i in rows],
            labels,
            nlp=nlp,
        )
        label_counts[split] = dict(Counter(label for i in rows for label in row_labels[i]))
    duplicate_texts, duplicate_rows = _cross_split_duplicates(texts, split_rows)
    return ConvertSummary(
        source=path,
        text_column=text_column,
        label_column=label_column,
        multi_label=multi_label_sep is not None,
        rows_read=len(df),
        rows_kept=len(texts),
        dropped=dropped,
        labels=labels,
        split_sizes={split: len(split_rows[split]) for split in SPLITS},
        label_counts=label_counts,
        duplicate_texts=duplicate_texts,
        duplicate_rows=duplicate_rows,
        output_paths=output_paths,
        notes=notes,
        warnings=warned,
    )


def write_corpus(
    path: str | Path,
    texts: Sequence[str],
    row_labels: Sequence[str | Sequence[str]],
    labels: Sequence[str],
    *,
    nlp: spacy.Language | None = None,
) -> Path:
    """Write a `.spacy` training corpus: one Doc per text, with `doc.cats` over all `labels`.

    Every `.spacy` file bertcls makes comes from here: `convert_table`'s splits, the app's
    corrections export and the benchmarks' corpora.

    path: the `.spacy` file; it appears atomically (a temporary file, then a rename).
    texts: one text per Doc.
    row_labels: each text's label, or its list of labels (several labels per row).
    labels: every label of the task, in order; each Doc's cats has all of them: 1.0 for the
        row's labels, 0.0 for the others.
    nlp: whose tokenizer makes the Docs (no other component runs); a blank English one when
        None.
    RETURNS: path.
    """
    if len(texts) != len(row_labels):
        raise BertclsError(
            f"Got {len(texts)} texts but {len(row_labels)} rows of labels; pass one label (or "
            "list of labels) per text."
        )
    known = set(labels)
    rows = [{row} if isinstance(row, str) else set(row) for row in row_labels]
    unknown = sorted(set().union(*rows) - known)
    if unknown:
        raise BertclsError(
            f"The label(s) {unknown} are not among the labels {list(labels)}; pass every label "
            "of the task in `labels`."
        )
    tokenizer = (nlp or spacy.blank("en")).tokenizer
    doc_bin = DocBin(store_user_data=False)
    for doc, row in zip(tokenizer.pipe(texts), rows):
        doc.cats = {label: float(label in row) for label in labels}
        doc_bin.add(doc)
    return write_bytes_atomic(path, doc_bin.to_bytes())


def _check_sizes(dev_size: float, test_size: float) -> None:
    for name, size in (("dev_size", dev_size), ("test_size", test_size)):
        if not 0 <= size < 1:
            raise BertclsError(f"{name} must be a fraction from 0 to below 1, not {size!r}.")
    if dev_size + test_size >= 1:
        raise BertclsError(
            f"dev_size + test_size is {dev_size + test_size:g}, leaving no training rows; "
            "keep their sum below 1 (e.g. 0.1 and 0.1)."
        )


def _kept_rows(
    texts: list[str], label_cells: list[object], sep: str | None
) -> tuple[list[str], list[list[str]], dict[str, int]]:
    """Texts and label lists of the usable rows; a row with neither counts as empty text."""
    kept_texts: list[str] = []
    kept_labels: list[list[str]] = []
    dropped = {EMPTY_TEXT: 0, EMPTY_LABEL: 0}
    for text, cell in zip(texts, label_cells):
        labels = split_labels(cell, sep)
        if not text.strip():
            dropped[EMPTY_TEXT] += 1
        elif not labels:
            dropped[EMPTY_LABEL] += 1
        else:
            kept_texts.append(text)
            kept_labels.append(labels)
    return kept_texts, kept_labels, dropped


def split_labels(cell: object, sep: str | None) -> list[str]:
    """The labels of one label cell: one (None `sep`), or those `sep` separates; none if blank."""
    if sep is None:
        label = label_text(cell)
        return [label] if label else []
    labels = [piece.strip() for piece in cell_text(cell).split(sep)]
    return list(dict.fromkeys(label for label in labels if label))


def _check_labels(
    row_labels: list[list[str]],
    path: Path,
    label_column: str,
    rows_read: int,
    dropped: dict[str, int],
) -> list[str]:
    if not row_labels:
        raise BertclsError(
            f"{path} has no usable rows: of {rows_read:,} rows, {dropped[EMPTY_TEXT]:,} have an "
            f"empty text and {dropped[EMPTY_LABEL]:,} an empty label. Check the column names "
            "and that the file has data."
        )
    counts = Counter(label for labels in row_labels for label in labels)
    if len(counts) < 2:
        ((label, n),) = counts.items()
        raise BertclsError(
            f"The label column {label_column!r} of {path} has only one class ({label!r}, "
            f"{n:,} rows). A classifier learns to tell classes apart, and a split cannot be "
            "stratified, so it needs at least two. Check that this is the right label column."
        )
    return sorted(counts)


def _case_variants(counts: Counter[str]) -> list[list[str]]:
    """Groups of labels that differ only by case, e.g. [["SPAM", "Spam", "spam"]]."""
    groups: dict[str, list[str]] = {}
    for label in sorted(counts):
        groups.setdefault(label.casefold(), []).append(label)
    return [group for group in groups.values() if len(group) > 1]


def _case_variants_warning(row_labels: list[list[str]], label_column: str) -> list[str]:
    counts = Counter(label for labels in row_labels for label in labels)
    groups = _case_variants(counts)
    if not groups:
        return []
    listed = "; ".join(
        ", ".join(f"{label!r} ({counts[label]:,} rows)" for label in group) for group in groups
    )
    return [
        f"labels that differ only by case are separate classes: {listed}. If they mean the "
        f"same class, write them one way in the column {label_column!r} (e.g. in pandas: "
        f"df[{label_column!r}] = df[{label_column!r}].str.lower(), or with Find and Replace in "
        "a spreadsheet) and convert again."
    ]


def _blank(lang: str) -> spacy.Language:
    try:
        return spacy.blank(lang)
    except (ImportError, KeyError) as error:
        raise BertclsError(
            f"spaCy has no language {lang!r}. Use an ISO code such as 'en', 'de' or 'xx' "
            "(multi-language)."
        ) from error


def _split_grouped(
    texts: list[str],
    row_labels: list[list[str]],
    multi_label: bool,
    dev_size: float,
    test_size: float,
    seed: int,
) -> tuple[dict[str, list[int]], list[str]]:
    """`_split` of the distinct texts, each carrying all rows that hold it."""
    groups: dict[str, list[int]] = {}
    for row, text in enumerate(texts):
        groups.setdefault(" ".join(text.casefold().split()), []).append(row)
    members = list(groups.values())
    parts, notes = _split(
        [row_labels[rows[0]] for rows in members], multi_label, dev_size, test_size, seed
    )
    return {
        split: sorted(row for group in chosen for row in members[group])
        for split, chosen in parts.items()
    }, notes


def _split(
    row_labels: list[list[str]], multi_label: bool, dev_size: float, test_size: float, seed: int
) -> tuple[dict[str, list[int]], list[str]]:
    indices = np.arange(len(row_labels))
    strata = [labels[0] for labels in row_labels]
    notes: list[str] = []
    if multi_label:
        try:
            parts = _stratified(indices, strata, dev_size, test_size, seed)
        except ValueError as error:
            notes.append(f"plain shuffled split: cannot stratify by first label ({error})")
            try:
                parts = _stratified(indices, None, dev_size, test_size, seed)
            except ValueError as too_few:
                raise BertclsError(
                    f"Cannot split {len(indices)} rows with dev_size={dev_size:g} and "
                    f"test_size={test_size:g} ({too_few}). Add rows or lower the sizes."
                ) from too_few
    else:
        _check_stratifiable(strata, dev_size, test_size)
        try:
            parts = _stratified(indices, strata, dev_size, test_size, seed)
        except ValueError as error:  # a case the checks above did not foresee
            raise BertclsError(f"Cannot split the rows by label: {error}") from error
        notes.extend(_ensure_each_label(parts, strata, seed))
    notes.extend(
        f"{split}.spacy is empty ({split}_size=0)" for split in ("dev", "test") if not parts[split]
    )
    return {split: sorted(rows) for split, rows in parts.items()}, notes


def _stratified(
    indices: np.ndarray,
    strata: Sequence[str] | None,
    dev_size: float,
    test_size: float,
    seed: int,
) -> dict[str, list[int]]:
    """Split off test, then dev from the rest, so that dev is `dev_size` of the whole."""
    rest, test = _cut(indices, strata, test_size, seed)
    rest_strata = None if strata is None else [strata[i] for i in rest]
    train, dev = _cut(rest, rest_strata, dev_size / (1 - test_size), seed)
    return {"train": list(train), "dev": list(dev), "test": list(test)}


def _cut(
    indices: np.ndarray, strata: Sequence[str] | None, size: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(kept, cut off); `strata` is aligned with `indices`."""
    if size == 0:
        return indices, indices[:0]
    kept, cut = train_test_split(indices, test_size=size, random_state=seed, stratify=strata)
    return kept, cut


def _check_stratifiable(strata: list[str], dev_size: float, test_size: float) -> None:
    """Refuse sizes that would leave some label without a row in some split."""
    counts = Counter(strata)
    n_splits = 1 + (dev_size > 0) + (test_size > 0)
    rare = {label: n for label, n in counts.items() if n < n_splits}
    if rare:
        listed = ", ".join(f"{label!r} ({n})" for label, n in sorted(rare.items()))
        variants = [group for group in _case_variants(counts) if set(group) & set(rare)]
        hint = ""
        if variants:
            alike = "; ".join(" and ".join(repr(label) for label in group) for group in variants)
            hint = f" Some differ from another label only by case ({alike}): write them one way."
        raise BertclsError(
            f"These labels have fewer distinct texts than the {n_splits} splits: {listed}. "
            "Every label needs a row in each split (copies of a text stay in one): add rows for them, merge or drop these labels, or set "
            f"dev_size/test_size to 0.{hint}"
        )
    # The split sizes exactly as train_test_split computes them (test first, then dev).
    n = len(strata)
    n_test = math.ceil(test_size * n)
    n_dev = math.ceil(dev_size / (1 - test_size) * (n - n_test))
    sizes = {"test": n_test, "dev": n_dev, "train": n - n_test - n_dev}
    for split, rows in sizes.items():
        if (rows or split == "train") and rows < len(counts):
            raise BertclsError(
                f"With dev_size={dev_size:g} and test_size={test_size:g}, {split} gets {rows} "
                f"of {n:,} distinct texts for {len(counts)} labels, so some label would have no row "
                f"there. {'Lower' if split == 'train' else 'Raise'} the sizes, or add rows."
            )


def _ensure_each_label(parts: dict[str, list[int]], strata: list[str], seed: int) -> list[str]:
    """Move one training row into dev/test for each label that rounding left out of them."""
    rng = np.random.default_rng(seed)
    notes = []
    for split in ("dev", "test"):
        if not parts[split]:
            continue
        present = {strata[i] for i in parts[split]}
        for label in sorted(set(strata) - present):
            candidates = [i for i in parts["train"] if strata[i] == label]
            if len(candidates) < 2:
                continue  # keep the last training row; _check_stratifiable makes this rare
            moved = int(rng.choice(candidates))
            parts["train"].remove(moved)
            parts[split].append(moved)
            notes.append(f"moved one {label!r} row from train to {split} so {split} has one")
    return notes


def _cross_split_duplicates(texts: list[str], split_rows: dict[str, list[int]]) -> tuple[int, int]:
    """(distinct texts in more than one split, rows holding them)."""
    splits_of: dict[str, set[str]] = {}
    for split, rows in split_rows.items():
        for i in rows:
            splits_of.setdefault(texts[i], set()).add(split)
    shared = {text for text, splits in splits_of.items() if len(splits) > 1}
    rows = sum(1 for text in texts if text in shared)
    return len(shared), rows
