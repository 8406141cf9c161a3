"""Files -> texts: the distinct texts to pre-train on, the test split's left out, and the
held-out slice."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import BertclsError
from ..fingerprint import text_hashes
from ..tables import TEXT_SUFFIXES, read_table, require_columns
from ..tables.cells import text_values
from ..tables.text import TXT_COLUMN

TEST_SPLIT_FILE = "test.spacy"
#: The held-out slice never has more texts than this, so evaluating it stays cheap.
MAX_HELDOUT_TEXTS = 2000


@dataclass
class PretrainTexts:
    """The texts `read_pretrain_texts` found to pre-train on, and what it left out."""

    texts: list[str]  # distinct, not empty, not excluded; in the order first read
    read: dict[str, int]  # file -> non-empty texts read from it
    empty: int  # empty or whitespace-only cells left out
    duplicates: int  # repeats of a text read before, left out
    excluded: int  # distinct texts left out because an exclude file holds them
    exclude_files: list[str]  # every file whose texts were excluded
    notes: list[str] = field(default_factory=list)

    def format(self) -> str:
        """A readable summary (printed by the CLI before training)."""
        lines = [f"  read {n:,} texts from {name}" for name, n in self.read.items()]
        lines.append(
            f"  left out {self.empty:,} empty cells and {self.duplicates:,} repeated texts"
        )
        if self.exclude_files:
            lines.append(
                f"  removed {self.excluded:,} texts found in {', '.join(self.exclude_files)} "
                "(never pre-trained on)"
            )
        else:
            lines.append(
                "  removed 0 texts: no --exclude file (pass the test split, e.g. "
                "--exclude corpus/test.spacy, if these texts include it)"
            )
        lines.extend(f"  note: {note}" for note in self.notes)
        lines.append(f"  {len(self.texts):,} distinct texts to pre-train on")
        return "\n".join(lines)


def read_pretrain_texts(
    files: Sequence[str | Path],
    *,
    text_column: str = "text",
    exclude: Sequence[str | Path] = (),
    sheet: str | int | None = None,
    encoding: str | None = None,
) -> PretrainTexts:
    """Read the texts to pre-train on, without the test split's.

    files: tables (CSV, TSV, Excel, Parquet, JSON lines; their ``text_column``), .txt files (one
        text per line) and ``.spacy`` files from ``bertcls convert`` (the Docs' texts). A file
        named ``test.spacy`` is refused: the test split is never pre-trained on.
    text_column: the column holding the texts in tables (.txt and .spacy files have none).
    exclude: files (same formats) whose texts are removed, compared by `text_hashes`; give the
        project's test split here. A ``test.spacy`` beside a ``.spacy`` input is added.
    sheet, encoding: as for `tables.read_table`, for every table read.
    RETURNS: the distinct non-empty texts left, with counts of what was left out.
    """
    if not files:
        raise BertclsError("No file of texts was given to pre-train on.")
    paths = [Path(path) for path in files]
    for path in paths:
        if path.name.lower() == TEST_SPLIT_FILE:
            raise BertclsError(
                f"{path} is a test split: its texts must stay unseen until the evaluation, so "
                "pre-training never reads it. Pre-train on the table (or train.spacy and "
                f"dev.spacy) and pass --exclude {path} to remove the test texts from it."
            )
    exclude_paths = [Path(path) for path in exclude]
    notes: list[str] = []
    for path in paths:
        beside = path.with_name(TEST_SPLIT_FILE)
        if path.suffix.lower() == ".spacy" and beside.is_file():
            if not any(beside.resolve() == known.resolve() for known in exclude_paths):
                exclude_paths.append(beside)
                notes.append(f"{beside} lies beside {path}: its texts are excluded too")
    excluded_hashes: set[int] = set()
    for path in exclude_paths:
        texts = _read_texts(path, text_column=text_column, sheet=sheet, encoding=encoding)
        excluded_hashes.update(int(h) for h in text_hashes(texts))

    kept: list[str] = []
    read: dict[str, int] = {}
    seen: set[int] = set()
    empty = duplicates = excluded = 0
    for path in paths:
        texts = _read_texts(path, text_column=text_column, sheet=sheet, encoding=encoding)
        non_empty = [text for text in texts if text.strip()]
        empty += len(texts) - len(non_empty)
        read[str(path)] = len(non_empty)
        for text, digest in zip(non_empty, text_hashes(non_empty).tolist()):
            if digest in seen:
                duplicates += 1
                continue
            seen.add(digest)
            if digest in excluded_hashes:
                excluded += 1
            else:
                kept.append(text)
    if not kept:
        why = (
            f"all {excluded:,} distinct texts are in the --exclude files"
            if excluded
            else "every text cell is empty"
        )
        raise BertclsError(
            f"No texts to pre-train on in {', '.join(map(str, paths))}: {why}. Check "
            "--text-column and the files, or add files with --extra-unlabeled."
        )
    return PretrainTexts(
        texts=kept,
        read=read,
        empty=empty,
        duplicates=duplicates,
        excluded=excluded,
        exclude_files=[str(path) for path in exclude_paths],
        notes=notes,
    )


def _read_texts(
    path: Path, *, text_column: str, sheet: str | int | None, encoding: str | None
) -> list[str]:
    """The texts of one file: a .spacy file's Docs, a .txt file's lines, a table's column."""
    if path.suffix.lower() == ".spacy":
        return _spacy_texts(path)
    frame = read_table(path, sheet=sheet, encoding=encoding)
    column = TXT_COLUMN if path.suffix.lower() in TEXT_SUFFIXES else text_column
    require_columns(frame.columns, [column], source=str(path))
    return text_values(frame[column])


def _spacy_texts(path: Path) -> list[str]:
    from spacy.tokens import DocBin
    from spacy.vocab import Vocab

    if not path.is_file():
        raise BertclsError(f"{path} does not exist. Check the path and the file name.")
    try:
        return [doc.text for doc in DocBin().from_disk(path).get_docs(Vocab())]
    except (ValueError, OSError, KeyError) as error:
        raise BertclsError(
            f"{path} is not a readable .spacy file ({error}). Make it again with `bertcls convert`."
        ) from error


def split_heldout(texts: Sequence[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Split texts into (training, held-out): a random ``fraction`` of them, at least 1 and at
    most `MAX_HELDOUT_TEXTS`, held out to measure the masked-language-model loss; none when
    ``fraction`` is 0. Distinct texts in, so no held-out text is also trained on."""
    if not 0 <= fraction < 1:
        raise BertclsError(f"heldout is {fraction}; it must be a fraction, 0 <= x < 1.")
    if fraction == 0:
        return list(texts), []
    size = min(MAX_HELDOUT_TEXTS, max(1, round(fraction * len(texts))))
    if len(texts) - size < 1:
        raise BertclsError(
            f"Only {len(texts)} distinct text(s): too few to hold {size} out and train on the "
            "rest. Add texts (--extra-unlabeled), or pass --heldout 0 to measure nothing."
        )
    order = np.random.default_rng(seed).permutation(len(texts))
    heldout = set(order[:size].tolist())
    training = [text for i, text in enumerate(texts) if i not in heldout]
    return training, [texts[i] for i in sorted(heldout)]
