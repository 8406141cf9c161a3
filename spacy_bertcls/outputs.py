"""Writing outputs safely, for every command: never over the input, and atomically.

The checks (`check_not_same_file`, `check_output_file`, `check_output_folder`,
`check_outside_folder`) run before any work, so that hours of labeling or evaluating never end
in a refusal. The writers (`write_bytes_atomic` here, `tables.TableWriter` for tables) write a
hidden temporary file beside the output and rename it onto the output only when it is
complete, so that a reader never sees half a file and a failure leaves an older file as it was.
A full disk is reported as such (`write_error`, `disk_full_errors`), naming the folder.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import BertclsError

#: The project's cache folder; each kind of cached file has a folder of its own in it.
CACHE_DIR_ENV = "SPACY_BERTCLS_CACHE_DIR"


def cache_folder(name: str) -> Path:
    """The folder ``name`` in the project's cache folder: ``$SPACY_BERTCLS_CACHE_DIR`` when
    set, else the user's cache folder (``~/.cache/spacy-bertcls``, ``%LOCALAPPDATA%``)."""
    root = os.environ.get(CACHE_DIR_ENV)
    if root:
        return Path(root) / name
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "spacy-bertcls" / name


def check_not_same_file(
    input_path: str | Path,
    output_path: str | Path,
    *,
    option: str | None = None,
    example: str | None = None,
) -> None:
    """Raise BertclsError if writing `output_path` would overwrite `input_path`.

    The same path, a symbolic link to it and a hard link to it all count as the input.
    option: the command line option naming the output, shown in the message ("--report").
    example: a better output name for the message (default: the input's name + "_labeled").
    """
    source, target = Path(input_path), Path(output_path)
    same = source.resolve() == target.resolve()
    if not same and source.exists() and target.exists():
        same = os.path.samefile(source, target)
    if same:
        name = f"{option} {target}" if option else f"The output {target}"
        example = example or f"{source.stem}_labeled{source.suffix}"
        raise BertclsError(
            f"{name} is the input file {source}: writing it would destroy the input. "
            f"Choose another output name, e.g. {example}."
        )


def check_output_file(path: str | Path, *, option: str, example: str = "out.csv") -> None:
    """Raise BertclsError unless ``path`` can become an output file (checked before any work).

    It must not be a folder (a folder is never deleted to make room), and the folder it goes
    into, or the nearest existing one above it (missing ones are created), must be writable.
    example: a file name for the message, suggested inside a folder given by mistake.
    """
    path = Path(path)
    if path.is_dir():
        raise BertclsError(
            f"{option} {path} is a folder; it needs a file name, e.g. {path / example}."
        )
    _check_writable_folder(path.parent, option=option, output=path)


def check_output_folder(path: str | Path, *, option: str) -> None:
    """Raise BertclsError unless ``path`` is, or can be created as, a writable folder."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise BertclsError(f"{option} {path} is a file; it needs a folder (created if missing).")
    _check_writable_folder(path, option=option, output=path)


def make_output_folder(path: str | Path, *, option: str = "The output folder") -> Path:
    """Create the folder ``path`` (and its parents) for outputs, or raise BertclsError."""
    path = Path(path)
    check_output_folder(path, option=option)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BertclsError(
            f"Cannot create the folder {path}: {error.strerror or error}. Choose a folder you "
            "can write to."
        ) from error
    return path


def check_outside_folder(folder: str | Path, output: str | Path, *, option: str) -> None:
    """Raise BertclsError if ``output`` is ``folder`` or inside it (a folder being read)."""
    folder, output = Path(folder), Path(output)
    inside = folder.resolve()
    target = output.resolve()
    if target == inside or inside in target.parents:
        raise BertclsError(
            f"{option} {output} is inside {folder}, which this command reads: writing there "
            f"could damage it. Choose a place outside {folder}."
        )


def _check_writable_folder(folder: Path, *, option: str, output: Path) -> None:
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise BertclsError(f"Cannot write {option} {output}: {existing} is a file, not a folder.")
    # os.access: fail before hours of work rather than at the end (root passes it anyway).
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BertclsError(
            f"Cannot write {option} {output}: the folder {existing} is read-only for you. "
            "Choose a folder you can write to."
        )


def check_out_folder(source: Path, out: Path, *, overwrite: bool) -> None:
    """``out`` (a pipeline or model folder made from ``source``) must be a new or empty folder
    (or ``overwrite``), and apart from ``source``: neither inside the other."""
    check_outside_folder(source, out, option="--out")
    if source.exists():
        check_outside_folder(out, source, option="The pipeline")
    check_output_folder(out, option="--out")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise BertclsError(
            f"--out {out} exists and is not empty. Pass --overwrite to replace it, or choose a "
            "new folder."
        )


@contextmanager
def staged_folder(out: str | Path) -> Iterator[Path]:
    """A folder path to fill (not yet created) that becomes ``out`` when the block ends
    without an error, replacing an older ``out``; on an error nothing new is left anywhere.

    It is a hidden folder beside ``out``, so the final rename stays on one file system."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    # Made by the caller (e.g. nlp.to_disk) with the usual permissions, not mkdtemp's 0700.
    stage = work / "stage"
    try:
        yield stage
        if out.exists():
            shutil.rmtree(out)
        os.replace(stage, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, then rename it onto ``path``.

    Readers never see half a file, and on any failure (a full disk, an interrupt) the
    temporary file is removed and nothing new exists under ``path``: an older file there is
    left as it was. The data is flushed to the disk before the rename, so that a crash right
    after it cannot leave an empty file under ``path`` either.
    """
    return write_file_atomic(path, lambda file: file.write(data))


def write_file_atomic(path: str | Path, write: Callable[[Any], Any]) -> Path:
    """`write_bytes_atomic` for data written in pieces: ``write(file)`` fills the binary
    temporary file, which then takes the place of ``path``."""
    path = Path(path)
    tmp = create_temp_file(path)
    try:
        with open(tmp, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except OSError as error:
        raise write_error(path, error) from error
    finally:
        tmp.unlink(missing_ok=True)
    return path


def create_temp_file(path: Path) -> Path:
    """Create an empty hidden file beside `path` to be renamed onto it; return its path."""
    directory = path.parent
    if path.is_dir():
        raise BertclsError(f"Cannot write {path}: it is a directory. Give a file name.")
    if not directory.is_dir():
        raise BertclsError(
            f"Cannot write {path}: the directory {directory} does not exist. Create it first."
        )
    tmp = directory / f".{path.name}.{secrets.token_hex(4)}.tmp"
    try:
        # os.open with a mode (not mkstemp's 0600) so the final file gets the usual umask.
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as error:
        raise write_error(path, error) from error
    return tmp


DISK_FULL = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})


def write_error(path: str | Path, error: OSError) -> BertclsError:
    """The BertclsError for an OSError met while writing ``path``; a full disk says so."""
    path = Path(path)
    if error.errno in DISK_FULL:
        return BertclsError(
            f"Cannot write {path}: the disk holding the folder {path.absolute().parent} is full "
            f"({error.strerror or error}). Free some space there or choose a folder on another "
            "disk."
        )
    return BertclsError(
        f"Cannot write {path}: {error.strerror or error}. Choose a folder you can write to."
    )


@contextmanager
def disk_full_errors(path: str | Path) -> Iterator[None]:
    """Turn a full disk met while writing ``path`` (the temporary file is gone by then) into
    a BertclsError that names the folder. Other OSErrors pass, since reading the input can
    raise them too."""
    try:
        yield
    except OSError as error:
        if error.errno in DISK_FULL:
            raise write_error(path, error) from error
        raise
