"""Frozen-encoder features on disk: a second training (or audit) on the same texts encodes
nothing.

A frozen encoder is a pure function of the text, so the features it gives a text (pooled,
layers concatenated, windows combined) can be kept between runs. The in-memory
``shim.feature_cache`` keeps them for one training; this store keeps them on disk, keyed by

* the encoder's identity (`encoder_identity`): a hash of its weights' contents, its config and
  its tokenizer, so a pipeline's copy of an encoder is the same encoder as the original, and a
  fine-tuned or different one is not;
* every setting that changes the features: max_length, stride, pooling, layers, long_text,
  window_pooling, mixed precision and the device type (`spacy_bertcls.architectures` names
  them);
* the text: a 64-bit BLAKE2b hash of its exact UTF-8 text (`text_keys`). Unlike the training
  fingerprint's hash, whitespace is not collapsed: byte-level BPE tokenizers (RoBERTa) see it.

Layout (one folder per encoder + settings, named by a hash of both)::

    ROOT/<key>/key.json                 what the key stands for (readable; not needed to read)
    ROOT/<key>/<shard>.features.npy     float32, rows x width
    ROOT/<key>/<shard>.hashes.npy       uint64 text hashes, one per row: written last, so a
                                        shard exists once its hashes file does

Shards are found by listing the folder rather than through a shared index file, so two
processes writing at once cannot lose each other's shards. Everything is read with
``numpy.load(allow_pickle=False)`` (features through a memory map, only the rows asked for) and
written atomically (temporary file + rename, as `outputs.write_bytes_atomic`). A missing or damaged shard is a miss, never
an error, so the folder can be deleted at any time. The store is bounded: after each write the
least recently used shards (by the hashes file's time, touched when a shard is read) are
deleted until all shards fit in the size limit.

Where and how much (read when a training or audit needs the store):

* ``SPACY_BERTCLS_FEATURE_CACHE``: a folder, or ``off`` to disable the store. Default:
  ``$SPACY_BERTCLS_CACHE_DIR/features`` when that is set, else the user's cache folder
  (``~/.cache/spacy-bertcls/features``, ``%LOCALAPPDATA%\\spacy-bertcls\\features``).
* ``SPACY_BERTCLS_FEATURE_CACHE_MB``: the size limit in MB (default `DEFAULT_MAX_MB`).
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import os
import secrets
import threading
import time
import warnings
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from hashlib import blake2b, sha256
from itertools import chain
from pathlib import Path
from typing import Any

import numpy

from .errors import BertclsError
from .outputs import cache_folder, write_bytes_atomic, write_file_atomic

#: The folder of the store, or "off".
CACHE_ENV = "SPACY_BERTCLS_FEATURE_CACHE"
#: The store's size limit in MB.
SIZE_ENV = "SPACY_BERTCLS_FEATURE_CACHE_MB"
OFF_VALUES = frozenset({"off", "0", "false", "no", "none", "disabled"})
DEFAULT_MAX_MB = 2048
# Rows are kept in memory until they make a shard of about this size (or training moves on
# to its second epoch, or the process ends): few files, each read through a memory map.
SHARD_BYTES = 16 * 2**20
# Bumped when what is stored for a key changes meaning, so old folders are never read.
FORMAT = 1
KEY_FILE = "key.json"
FEATURES_SUFFIX = ".features.npy"
HASHES_SUFFIX = ".hashes.npy"
# Files of a shard cut short by a crash (features without hashes, temporary files) are
# removed once they are this old: younger ones may be a shard another process is writing.
STALE_SECONDS = 3600
HASH_DTYPE = numpy.dtype("<u8")


@dataclass
class StoreStats:
    """What a store did in this process (for tests and benchmarks)."""

    hits: int = 0  # texts found on disk
    misses: int = 0  # texts looked up and not found
    rows_written: int = 0
    shards_written: int = 0
    shards_evicted: int = 0
    shards_damaged: int = 0  # unreadable shards skipped (their texts were misses)


def text_keys(texts: Iterable[str]) -> numpy.ndarray:
    """The store's 64-bit hash of each text (exact text, UTF-8), as uint64."""
    digests = b"".join(
        blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest() for text in texts
    )
    return numpy.frombuffer(digests, dtype=HASH_DTYPE).astype(numpy.uint64)


# Encoder identity -------------------------------------------------------------------------

# encoder module -> (sum of its tensors' versions, identity): hashing the weights takes a
# fraction of a second, so it is done once per encoder, again only if a weight changed.
_identities: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_tokenizer_hashes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# Config entries that say where or how a model was loaded, not what it computes.
_CONFIG_NOISE = ("_name_or_path", "transformers_version", "architectures", "torch_dtype")


def encoder_identity(encoder: Any, tokenizer: Any) -> str:
    """A hash of what makes an encoder's outputs what they are: the contents of its weights
    (names, dtypes, shapes, bytes), its config and its tokenizer.

    A copy of the same encoder (the one saved inside a pipeline, on another path) has the same
    identity; a fine-tuned or retrained one does not. Memoized per encoder object, and
    recomputed when any of its tensors was changed in place (their version counters).
    """
    version = sum(t._version for t in chain(encoder.parameters(), encoder.buffers()))
    known = _identities.get(encoder)
    if known is not None and known[0] == version:
        return known[1]
    # SHA-256: hardware-accelerated on most CPUs, about 0.4 s for MiniLM's 90 MB.
    digest = sha256()
    for name, tensor in sorted(encoder.state_dict().items()):
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{data.dtype}|{tuple(data.shape)}|".encode())
        digest.update(memoryview(data.reshape(-1).view(dtype=_byte_dtype()).numpy()))
    config = encoder.config.to_dict()
    config = {k: v for k, v in config.items() if not k.startswith("_") and k not in _CONFIG_NOISE}
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    digest.update(_tokenizer_hash(tokenizer).encode())
    identity = digest.hexdigest()[:32]
    _identities[encoder] = (version, identity)
    return identity


def _byte_dtype() -> Any:
    import torch

    return torch.uint8


def _tokenizer_hash(tokenizer: Any) -> str:
    known = _tokenizer_hashes.get(tokenizer)
    if known is not None:
        return known
    digest = blake2b(digest_size=16)
    digest.update(type(tokenizer).__name__.encode())
    # The fast tokenizer's full description: normalizer, pre-tokenizer, vocabulary, special
    # tokens and post-processor (which adds [CLS]/[SEP]).
    digest.update(tokenizer.backend_tokenizer.to_str().encode())
    digest.update(json.dumps(tokenizer.special_tokens_map, sort_keys=True, default=str).encode())
    value = digest.hexdigest()
    _tokenizer_hashes[tokenizer] = value
    return value


# Where the store is ------------------------------------------------------------------------


def default_root() -> Path:
    """The store's folder when ``SPACY_BERTCLS_FEATURE_CACHE`` does not name one."""
    return cache_folder("features")


def store_settings() -> tuple[Path, float] | None:
    """(folder, size limit in MB) from the environment, or None when the store is off."""
    value = os.environ.get(CACHE_ENV, "").strip()
    if value.lower() in OFF_VALUES:
        return None
    size = os.environ.get(SIZE_ENV, "").strip()
    try:
        max_mb = float(size) if size else float(DEFAULT_MAX_MB)
    except ValueError:
        raise BertclsError(
            f"{SIZE_ENV}={size!r} is not a number; give the feature store's size limit in MB "
            f"(e.g. {DEFAULT_MAX_MB}), or set {CACHE_ENV}=off."
        ) from None
    if not max_mb >= 0:
        raise BertclsError(f"{SIZE_ENV}={size!r} must be 0 or more (MB).")
    return (Path(value).expanduser() if value else default_root()), max_mb


_stores: dict[tuple[Path, float], FeatureStore] = {}
_stores_lock = threading.Lock()


def default_store() -> FeatureStore | None:
    """The store the environment asks for (one object per folder and limit), or None."""
    settings = store_settings()
    if settings is None:
        return None
    with _stores_lock:
        store = _stores.get(settings)
        if store is None:
            store = _stores[settings] = FeatureStore(*settings)
            # Rows still in memory at the end of a run (a one-epoch training) are written then.
            atexit.register(store.flush)
        return store


# The store ---------------------------------------------------------------------------------


class FeatureStore:
    """Feature vectors on disk under ``root``, at most ``max_mb`` MB of shards in all."""

    def __init__(self, root: str | Path, max_mb: float = DEFAULT_MAX_MB) -> None:
        self.root = Path(root)
        self.max_bytes = int(max_mb * 2**20)
        self.stats = StoreStats()
        self._buckets: dict[str, FeatureBucket] = {}
        self._lock = threading.RLock()
        self._writable = True

    def bucket(self, encoder: str, settings: dict[str, Any], width: int) -> FeatureBucket:
        """The features of one encoder (`encoder_identity`) with one set of settings."""
        described = {"format": FORMAT, "encoder": encoder, "settings": settings, "width": width}
        text = json.dumps(described, sort_keys=True, default=str)
        key = blake2b(text.encode(), digest_size=16).hexdigest()
        with self._lock:
            found = self._buckets.get(key)
            if found is None:
                found = self._buckets[key] = FeatureBucket(self, key, described, width)
            return found

    @property
    def has_pending(self) -> bool:
        return any(bucket.pending for bucket in self._buckets.values())

    def flush(self) -> None:
        """Write every bucket's rows still in memory."""
        with self._lock:
            for bucket in list(self._buckets.values()):
                bucket.flush()

    def size_bytes(self) -> int:
        """The size of all shard files under the root."""
        return sum(size for _, size, _ in self._shard_files())

    def clear(self) -> None:
        """Delete every shard (the store's folders stay)."""
        with self._lock:
            for path, _, _ in self._shard_files():
                path.unlink(missing_ok=True)
            self._buckets.clear()

    def evict(self) -> None:
        """Delete the least recently used shards until all fit in the size limit; also
        remove what crashed writers left behind."""
        now = time.time()
        shards: dict[Path, list[tuple[Path, int, float]]] = {}
        for path, size, mtime in self._shard_files(include_stale=True):
            shards.setdefault(_shard_stem(path), []).append((path, size, mtime))
        total = 0
        complete = []
        for stem, files in shards.items():
            hashes = [f for f in files if f[0].name.endswith(HASHES_SUFFIX)]
            if not hashes:
                if all(now - mtime > STALE_SECONDS for _, _, mtime in files):
                    for path, _, _ in files:
                        path.unlink(missing_ok=True)
                    continue
            total += sum(size for _, size, _ in files)
            if hashes:
                complete.append((hashes[0][2], stem, files))
        # Oldest first; names start with the time written, which breaks ties.
        complete.sort(key=lambda item: (item[0], item[1].name))
        for _, stem, files in complete:
            if total <= self.max_bytes:
                break
            # The hashes file first: without it the shard no longer exists for any reader.
            for path, size, _ in sorted(files, key=lambda f: not f[0].name.endswith(HASHES_SUFFIX)):
                path.unlink(missing_ok=True)
                total -= size
            self.stats.shards_evicted += 1
            bucket = self._buckets.get(stem.parent.name)
            if bucket is not None:
                bucket.forget(stem.name)

    def _shard_files(self, *, include_stale: bool = False) -> list[tuple[Path, int, float]]:
        """(path, size, modification time) of the shard files (and, with include_stale,
        temporary files) in every key folder."""
        found = []
        try:
            folders = [p for p in self.root.iterdir() if p.is_dir()]
        except OSError:
            return []
        for folder in folders:
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                name = entry.name
                shard = name.endswith((FEATURES_SUFFIX, HASHES_SUFFIX))
                if not shard and not (include_stale and name.endswith(".tmp")):
                    continue
                try:
                    stat = entry.stat()
                except OSError:
                    continue
                found.append((Path(entry.path), stat.st_size, stat.st_mtime))
        return found

    def _write_failed(self, error: Exception) -> None:
        if self._writable:
            warnings.warn(
                f"Could not write to the feature store {self.root} ({error}); features are "
                f"not kept on disk for the rest of this run. Set {CACHE_ENV} to a folder you "
                f"can write to, or to off.",
                stacklevel=4,
            )
        self._writable = False


def _shard_stem(path: Path) -> Path:
    name = path.name
    for suffix in (FEATURES_SUFFIX, HASHES_SUFFIX):
        if name.endswith(suffix):
            return path.with_name(name[: -len(suffix)])
    # A temporary file ".<shard>.features.npy.<hex>.tmp" belongs to its shard.
    return path.with_name(name.lstrip(".").split(".", 1)[0])


class FeatureBucket:
    """The shards of one key: an in-memory index of their text hashes, and new rows waiting
    to become a shard."""

    def __init__(
        self, store: FeatureStore, key: str, described: dict[str, Any], width: int
    ) -> None:
        self.store = store
        self.folder = store.root / key
        self.described = described
        self.width = width
        # Rows waiting to become a shard, as the chunks `add` got (each one allocation, freed
        # as one), and where each text's row is among them.
        self._pending_keys: list[numpy.ndarray] = []
        self._pending_rows: list[numpy.ndarray] = []
        self._pending_at: dict[int, tuple[int, int]] = {}
        self._names: list[str] = []
        self._rows: list[int] = []  # rows of each shard (its hashes file's length)
        self._alive: list[bool] = []
        self._touched: set[int] = set()
        self._hashes = numpy.zeros(0, dtype=numpy.uint64)  # sorted
        self._where = numpy.zeros(0, dtype=numpy.int64)  # shard << 32 | row, same order
        self._load_index()

    @property
    def pending(self) -> int:
        """How many rows wait to be written."""
        return len(self._pending_at)

    # Reading -------------------------------------------------------------------------------

    def lookup(self, keys: numpy.ndarray) -> tuple[numpy.ndarray, numpy.ndarray]:
        """For text hashes ``keys``: which were found (bool) and the found ones' features
        (float32, found x width, in the order of ``keys``)."""
        keys = numpy.asarray(keys, dtype=numpy.uint64)
        with self.store._lock:
            found = numpy.zeros(len(keys), dtype=bool)
            out = numpy.empty((len(keys), self.width), dtype=numpy.float32)
            where = self._locate(keys)
            for shard in numpy.unique(where[where >= 0] >> 32):
                wanted = numpy.flatnonzero((where >= 0) & (where >> 32 == shard))
                rows = self._read(int(shard), (where[wanted] & 0xFFFFFFFF).astype(numpy.int64))
                if rows is not None:
                    out[wanted] = rows
                    found[wanted] = True
            for i in numpy.flatnonzero(~found):
                at = self._pending_at.get(int(keys[i]))
                if at is not None:
                    out[i] = self._pending_rows[at[0]][at[1]]
                    found[i] = True
            n_found = int(found.sum())
            self.store.stats.hits += n_found
            self.store.stats.misses += len(keys) - n_found
            return found, out[found]

    def _locate(self, keys: numpy.ndarray) -> numpy.ndarray:
        """Each key's shard << 32 | row in a live shard, or -1."""
        where = numpy.full(len(keys), -1, dtype=numpy.int64)
        if not len(self._hashes) or not len(keys):
            return where
        at = numpy.minimum(numpy.searchsorted(self._hashes, keys), len(self._hashes) - 1)
        hit = self._hashes[at] == keys
        where[hit] = self._where[at[hit]]
        alive = numpy.asarray(self._alive, dtype=bool)
        where[where >= 0] = numpy.where(alive[where[where >= 0] >> 32], where[where >= 0], -1)
        return where

    def _read(self, shard: int, rows: numpy.ndarray) -> numpy.ndarray | None:
        """Rows of one shard's features, or None (and the shard dropped) if it is unreadable."""
        path = self.folder / (self._names[shard] + FEATURES_SUFFIX)
        try:
            features = numpy.load(path, mmap_mode="r", allow_pickle=False)
            expected = (self._rows[shard], self.width)
            if features.dtype != numpy.float32 or features.shape != expected:
                raise ValueError(f"shape {features.shape} {features.dtype}, not {expected}")
            order = numpy.argsort(rows)
            taken = numpy.empty((len(rows), self.width), dtype=numpy.float32)
            taken[order] = features[rows[order]]  # a copy: the map is closed when dropped
            del features
        except (OSError, ValueError, EOFError):
            self._alive[shard] = False
            self.store.stats.shards_damaged += 1
            return None
        if shard not in self._touched:
            # Reading a shard makes it recently used, so eviction keeps it longer.
            self._touched.add(shard)
            try:
                os.utime(self.folder / (self._names[shard] + HASHES_SUFFIX))
            except OSError:
                pass
        return taken

    def _load_index(self) -> None:
        try:
            names = sorted(
                entry.name[: -len(HASHES_SUFFIX)]
                for entry in os.scandir(self.folder)
                if entry.name.endswith(HASHES_SUFFIX)
            )
        except OSError:
            return
        for name in names:
            hashes = self._read_hashes(self.folder / (name + HASHES_SUFFIX))
            if hashes is None:
                self.store.stats.shards_damaged += 1
            else:
                self._add_shard(name, hashes)

    @staticmethod
    def _read_hashes(path: Path) -> numpy.ndarray | None:
        try:
            hashes = numpy.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        if not isinstance(hashes, numpy.ndarray) or hashes.ndim != 1 or hashes.dtype != HASH_DTYPE:
            return None
        return hashes

    def _add_shard(self, name: str, hashes: numpy.ndarray) -> None:
        shard = len(self._names)
        self._names.append(name)
        self._rows.append(len(hashes))
        self._alive.append(True)
        where = (numpy.int64(shard) << 32) | numpy.arange(len(hashes), dtype=numpy.int64)
        all_hashes = numpy.concatenate([self._hashes, hashes.astype(numpy.uint64)])
        all_where = numpy.concatenate([self._where, where])
        # Stable: of a text stored twice, the later (newer) shard comes last and is kept.
        order = numpy.argsort(all_hashes, kind="stable")
        all_hashes, all_where = all_hashes[order], all_where[order]
        last = numpy.append(all_hashes[1:] != all_hashes[:-1], True)
        self._hashes, self._where = all_hashes[last], all_where[last]

    def forget(self, name: str) -> None:
        """Treat the shard ``name`` as gone (it was evicted)."""
        with self.store._lock:
            if name in self._names:
                self._alive[self._names.index(name)] = False

    # Writing -------------------------------------------------------------------------------

    def add(self, keys: numpy.ndarray, features: numpy.ndarray) -> None:
        """Keep these texts' features (float32, one row per key) to be written; known texts
        are skipped. A shard is written once about `SHARD_BYTES` are waiting."""
        if not self.store._writable:
            return
        features = numpy.asarray(features, dtype=numpy.float32)
        keys = numpy.asarray(keys, dtype=numpy.uint64)
        with self.store._lock:
            new = self._locate(keys) < 0
            seen = self._pending_at
            for i in numpy.flatnonzero(new):
                key = int(keys[i])
                new[i] = key not in seen
                seen.setdefault(key, (-1, -1))
            if not new.any():
                return
            chunk = len(self._pending_rows)
            # Indexing with a mask copies: the rows no longer share the caller's memory.
            self._pending_keys.append(keys[new])
            self._pending_rows.append(features[new])
            for row, key in enumerate(keys[new].tolist()):
                seen[key] = (chunk, row)
            if self.pending * self.width * 4 >= SHARD_BYTES:
                self.flush()

    def flush(self) -> None:
        """Write the waiting rows as one shard, then evict what no longer fits."""
        with self.store._lock:
            chunks, keys = self._pending_rows, self._pending_keys
            self._pending_rows, self._pending_keys, self._pending_at = [], [], {}
            if not chunks or not self.store._writable:
                return
            keys = numpy.concatenate(keys)
            name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}"
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                key_file = self.folder / KEY_FILE
                if not key_file.exists():
                    write_bytes_atomic(key_file, json.dumps(self.described, indent=1).encode())
                # Features first: the hashes file is what makes the shard exist.
                write_npy_atomic(self.folder / (name + FEATURES_SUFFIX), chunks, self.width)
                write_bytes_atomic(
                    self.folder / (name + HASHES_SUFFIX), _npy_bytes(keys.astype(HASH_DTYPE))
                )
            except (OSError, BertclsError) as error:
                with contextlib.suppress(OSError):
                    (self.folder / (name + FEATURES_SUFFIX)).unlink(missing_ok=True)
                self.store._write_failed(error)
                return
            self._add_shard(name, keys)
            self.store.stats.rows_written += len(keys)
            self.store.stats.shards_written += 1
            self.store.evict()


def _npy_bytes(array: numpy.ndarray) -> bytes:
    buffer = io.BytesIO()
    numpy.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def write_npy_atomic(path: Path, chunks: list[numpy.ndarray], width: int) -> None:
    """Write the float32 rows of ``chunks`` as one (rows x width) ``.npy`` file, atomically
    (as `outputs.write_bytes_atomic`), without first joining them into one array in memory."""
    header = {
        "descr": numpy.lib.format.dtype_to_descr(numpy.dtype(numpy.float32)),
        "fortran_order": False,
        "shape": (sum(len(chunk) for chunk in chunks), width),
    }

    def write(file: Any) -> None:
        numpy.lib.format.write_array_header_1_0(file, header)
        for chunk in chunks:
            file.write(numpy.ascontiguousarray(chunk, dtype=numpy.float32).data)

    write_file_atomic(path, write)
