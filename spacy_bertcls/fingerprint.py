"""Which texts a pipeline was trained on: a fingerprint of 64-bit hashes, without the texts.

`bert_textcat` records the hash of every text its ``update`` trains on and saves them, sorted,
as ``training_texts.npy`` in its folder (``numpy.save`` without pickle). `trained_on` looks a
table's texts up in it, so that `bertcls evaluate` can tell rows the pipeline has seen from
held-out ones: scores on training rows are inflated.

A text is hashed after collapsing its whitespace (``" ".join(text.split())``): the encoder's
tokenizer does not see leading, trailing or repeated whitespace, so texts differing only there
are the same input to the model. Case, punctuation and everything else count.

The hash is BLAKE2b with an 8-byte digest of the UTF-8 text, read as a little-endian uint64:
stable across Python runs and machines (unlike ``hash()``). Two different texts share a hash
with a chance of about n*m/2**64 for n training and m evaluated texts (1e-9 for 100k each).
The file holds no text, but it is not a secret either: whoever has a candidate text can check
whether it was trained on, which is what it is for.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from hashlib import blake2b
from pathlib import Path

import numpy
from spacy.language import Language

from .errors import BertclsError

FACTORY = "bert_textcat"
FINGERPRINT_FILE = "training_texts.npy"
HASH_DTYPE = numpy.dtype("<u8")


def normalize_text(text: str) -> str:
    """The text as the fingerprint sees it: whitespace runs collapsed, ends stripped."""
    return " ".join(text.split())


def text_hashes(texts: Iterable[str]) -> numpy.ndarray:
    """The 64-bit hash of each text, in order (uint64; equal texts, equal hashes)."""
    digests = b"".join(
        blake2b(normalize_text(text).encode("utf-8", "surrogatepass"), digest_size=8).digest()
        for text in texts
    )
    return numpy.frombuffer(digests, dtype=HASH_DTYPE).astype(numpy.uint64)


def sorted_hashes(hashes: Iterable[int] | numpy.ndarray) -> numpy.ndarray:
    """Distinct hashes as a sorted uint64 array, the form that is saved and searched."""
    if isinstance(hashes, numpy.ndarray):
        return numpy.unique(hashes.astype(numpy.uint64, copy=False))
    return numpy.unique(numpy.fromiter(hashes, dtype=numpy.uint64))


def hashes_to_bytes(hashes: numpy.ndarray) -> bytes:
    """A sorted hash array in ``.npy`` format (no pickle), as ``to_bytes`` stores it."""
    buffer = io.BytesIO()
    numpy.save(buffer, sorted_hashes(hashes).astype(HASH_DTYPE), allow_pickle=False)
    return buffer.getvalue()


def hashes_from_bytes(data: bytes, *, source: str = "the saved bert_textcat") -> numpy.ndarray:
    """Read `hashes_to_bytes`'s output; refuses anything but a flat uint64 array (no pickle)."""
    return _read_npy(io.BytesIO(data), source)


def save_hashes(path: str | Path, hashes: numpy.ndarray) -> None:
    """Write a fingerprint file (``.npy``, sorted uint64, no pickle)."""
    Path(path).write_bytes(hashes_to_bytes(hashes))


def load_hashes(path: str | Path) -> numpy.ndarray:
    """Read a fingerprint file written by `save_hashes`."""
    path = Path(path)
    with path.open("rb") as file:
        return _read_npy(file, str(path))


def _read_npy(file: io.IOBase, source: str) -> numpy.ndarray:
    try:
        # allow_pickle=False: an object array (a pickle) raises instead of running code.
        array = numpy.load(file, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise BertclsError(
            f"{source} has a damaged training-text fingerprint ({FINGERPRINT_FILE}): {error}. "
            "Copy the pipeline again, or delete the file (evaluation then cannot tell which "
            "rows were trained on)."
        ) from error
    if not isinstance(array, numpy.ndarray) or array.ndim != 1 or array.dtype.kind != "u":
        raise BertclsError(
            f"{source} has a damaged training-text fingerprint ({FINGERPRINT_FILE}): expected "
            f"a flat array of uint64 hashes, found {getattr(array, 'dtype', type(array))} with "
            f"shape {getattr(array, 'shape', '?')}. Copy the pipeline again, or delete the file."
        )
    return sorted_hashes(array)


def training_fingerprint(nlp: Language) -> numpy.ndarray:
    """The sorted hashes of the texts every ``bert_textcat`` component of ``nlp`` was trained
    on (empty for a pipeline saved before fingerprints, or with no such component)."""
    parts = [
        component.training_text_hashes
        for name, component in nlp.pipeline
        if nlp.get_pipe_meta(name).factory == FACTORY
    ]
    if not parts:
        return numpy.zeros(0, dtype=numpy.uint64)
    return parts[0] if len(parts) == 1 else sorted_hashes(numpy.concatenate(parts))


def trained_on(nlp: Language, texts: Iterable[str]) -> numpy.ndarray:
    """Per text, whether a ``bert_textcat`` component of ``nlp`` was trained on it (bool)."""
    hashes = text_hashes(texts)
    fingerprint = training_fingerprint(nlp)
    if fingerprint.size == 0:
        return numpy.zeros(hashes.shape, dtype=bool)
    at = numpy.searchsorted(fingerprint, hashes)
    return fingerprint[numpy.minimum(at, fingerprint.size - 1)] == hashes
