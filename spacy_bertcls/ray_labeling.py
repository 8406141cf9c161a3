"""Labeling a table on a Ray cluster: `bertcls label ... --engine ray`.

The default engine (`labeling.label_file`) labels a file in one process. This one spreads the
same work over the actors of a Ray cluster, a local one or one started with `ray start`, with
Ray Data reading the file and moving the rows. The path of the data:

    file -> Ray Data's reader (on the driver's machine) -> blocks of `chunk_size` rows
         -> `PipelineLabeler` actors (`workers` of them, anywhere in the cluster; each loads
            the pipeline once) -> `labeling.label_frame`, the function the default engine's
            columns come from too -> labeled blocks, in the file's order
         -> one file: the driver streams the blocks into `tables.TableWriter` (atomic, as
            `label_file`), so its memory stays flat in the file's size
         -> a parts folder: the driver writes the same stream as Parquet parts of `PART_ROWS`
            rows into a hidden folder beside the output, which is renamed onto it at the end

`label_file_ray` is the one entry point; `ray_session` starts (or connects to) the cluster.

Decisions:

* The output: `out` with a suffix is one file, in the format of its suffix, as for the default
  engine; `out` without a suffix (`labeled`, `labeled/`) is a folder of Parquet parts, whose
  names sort in the rows' order (`pandas.read_parquet(out)` reads them back in order). An
  existing output is replaced only with `overwrite`, a folder only if it holds nothing but
  Parquet parts (another run's output), and never when the input or the pipeline is inside it.
* Order: Ray Data runs with `preserve_order`, so blocks leave the actors in the order they
  were read; the driver's writer and the part names keep it.
* Reading and writing run on the driver's machine (the read and write tasks are pinned to its
  node), so the input and the output exist only there; the actors run anywhere and need the
  pipeline directory at the same path on every machine (or on shared storage).
* Formats read: CSV/TSV with every cell as text and empty cells missing, as the default engine
  reads them (the delimiter, quoting and encoding are found by `tables`' own scan, which also
  refuses overlong cells and half-written files; formula guards this project wrote are
  removed); Parquet with its own types; JSON lines (UTF-8) with the types Arrow infers. Excel,
  .txt and .json arrays are refused: convert them to Parquet or CSV, or use the default engine.
* Text cells: `label_frame` sends empty and blank texts to no model, so their
  `predicted_label` is missing and their numbers NaN, exactly as with the default engine.
* Ray is optional (`pip install -e '.[ray]'`); it is imported only when this engine runs.
"""

from __future__ import annotations

import codecs
import csv
import inspect
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from .decisions import decision_rule
from .errors import BertclsError
from .labeling import LabeledChunk, LabelProgress, LabelSummary, label_frame, prob_column
from .outputs import (
    check_not_same_file,
    check_output_file,
    check_output_folder,
    check_outside_folder,
    staged_folder,
)
from .pipelines import load_pipeline, pipeline_labels
from .tables import (
    DELIMITED_SUFFIXES,
    EXCEL_SUFFIXES,
    PARQUET_SUFFIXES,
    TableWriter,
    count_rows,
    read_table,
)
from .tables.delimited import delimited_format
from .tables.guards import csv_has_guard_marker, remove_formula_guards
from .tables.parquet import _arrow_to_pandas, parquet_file
from .tables.textfiles import resolve_encoding

# What this engine reads; everything else is refused with a way out.
JSONL_SUFFIXES = (".jsonl", ".ndjson")
RAY_SUFFIXES = DELIMITED_SUFFIXES + PARQUET_SUFFIXES + JSONL_SUFFIXES
# Rows per Parquet part of a parts folder (the last one has fewer): few large parts read
# faster than many small ones, and the driver holds one part at a time.
PART_ROWS = 100_000
INSTALL_HINT = "pip install -e '.[ray]'"
# By default one worker per this many CPUs, each running torch with that many threads: every
# worker holds its own copy of torch, transformers and the pipeline (hundreds of MB), so one
# per CPU would multiply the memory for little more speed.
CPUS_PER_WORKER = 4
# A local cluster's files go to a temporary folder here: Ray's sockets live in it, and a
# socket's path is limited to about 100 bytes, which a long $TMPDIR can exceed.
_SHORT_TEMP = "/tmp" if os.name == "posix" and os.path.isdir("/tmp") else None


def label_file_ray(
    pipeline: str | Path,
    path: str | Path,
    *,
    text_column: str,
    out: str | Path,
    overwrite: bool = False,
    encoding: str | None = None,
    chunk_size: int = 2048,
    batch_size: int = 256,
    address: str | None = None,
    workers: int | None = None,
    threads: int | None = None,
    progress: Callable[[LabelProgress], None] | None = None,
) -> LabelSummary:
    """Label every row of a table file on a Ray cluster and write the rows with predictions.

    pipeline: the pipeline directory; every machine of the cluster needs it at this path.
    path: the input (.csv .tsv .tab .parquet .jsonl .ndjson).
    text_column: the column holding the texts.
    out: one file (its suffix chooses the format), or, without a suffix, a folder of Parquet
        parts. Written atomically, never over the input; an existing one only with `overwrite`.
    encoding: the text encoding of a CSV/TSV/JSON lines file; detected when None.
    chunk_size: rows per block: what one actor labels at a time.
    batch_size: texts per `nlp.pipe` batch inside an actor.
    address: a running cluster's address ("HEAD:6379", or "auto"); None starts a local one
        (a cluster this process is connected to already is used as it is).
    workers: how many actors label; default: one per `CPUS_PER_WORKER` CPUs of this machine
        (local) or of the cluster, one CPU of which is kept for reading and writing.
    threads: torch threads per worker; default: the CPUs shared out among the workers (on a
        machine busy with other work, 1 is often much faster).
    progress: called with a `LabelProgress` after each block written.
    """
    pipeline, path, out = Path(pipeline), Path(path), Path(out)
    if chunk_size < 1:
        raise BertclsError(f"chunk_size must be 1 or more, not {chunk_size}.")
    if workers is not None and workers < 1:
        raise BertclsError(f"The number of Ray workers must be 1 or more, not {workers}.")
    if threads is not None and threads < 1:
        raise BertclsError(f"The torch threads per worker must be 1 or more, not {threads}.")
    check_input_suffix(path)
    parts = is_parts_folder(out)
    check_ray_output(pipeline, path, out, overwrite=overwrite)
    ray = _import_ray()
    # Load once here too: a bad pipeline fails before any cluster starts, and the columns are
    # checked with the labeling code itself (missing text column, columns it would add).
    nlp = load_pipeline(pipeline)
    with ray_session(address, workers) as plan, _ray_data_settings(), _user_errors(ray, path):
        table = _read(ray, path, encoding)
        label_frame(nlp, table.empty, text_column=text_column)
        tally = _Tally(nlp, out)
        del nlp
        if table.rows == 0:
            raise BertclsError(f"{path} has a header but no rows to label.")
        if not parts:
            TableWriter(out).check_columns(table.empty.columns)
        labeled = table.dataset.repartition(target_num_rows_per_block=chunk_size).map_batches(
            PipelineLabeler,
            fn_constructor_kwargs={
                "pipeline": str(pipeline.resolve()),
                "text_column": text_column,
                "batch_size": batch_size,
                "threads": threads or plan.threads,
                "guarded": table.guarded,
            },
            batch_size=chunk_size,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=plan.workers),
            num_cpus=1,
        )

        def unchanged() -> None:  # before the output is put in place
            _check_unchanged(path, table.state)

        started = time.perf_counter()  # the actors start (and load the pipeline) from here
        write = _write_parts if parts else _write_file
        write(labeled, tally, table.rows, progress, unchanged)
    summary = tally.summary
    summary.seconds = time.perf_counter() - started
    summary.rows_per_second = summary.rows / summary.seconds if summary.seconds else 0.0
    return summary


def is_parts_folder(out: str | Path) -> bool:
    """Whether `out` names a folder of Parquet parts (it has no suffix) rather than a file."""
    return Path(out).suffix == ""


# ---------------------------------------------------------------------------------------------
# checks, before any work


def check_input_suffix(path: Path) -> None:
    """Refuse an input this engine does not read, saying what to do instead."""
    suffix = path.suffix.lower()
    if suffix in EXCEL_SUFFIXES + (".xls",):
        raise BertclsError(
            f"{path} is an Excel file, which the Ray engine does not read (an Excel file can "
            "only be read whole, by one process). Convert it to Parquet or CSV first, or label "
            "it with the default engine (leave out --engine ray)."
        )
    if suffix not in RAY_SUFFIXES:
        raise BertclsError(
            f"The Ray engine reads {', '.join(RAY_SUFFIXES)} files, not {path}. Convert it to "
            "Parquet or CSV first, or use the default engine (leave out --engine ray)."
        )


def check_ray_output(pipeline: Path, path: Path, out: Path, *, overwrite: bool) -> None:
    """Refuse an output that would replace the input, the pipeline or something else."""
    check_not_same_file(path, out, option="--out")
    check_outside_folder(pipeline, out, option="--out")
    if not is_parts_folder(out):
        check_output_file(out, option="--out", example=f"{path.stem}_labeled{path.suffix}")
        TableWriter(out)  # refuses an unsupported suffix
    else:
        check_output_folder(out, option="--out")
        for inside, what in ((path, "the input"), (pipeline, "the pipeline")):
            if out.resolve() in inside.resolve().parents:
                raise BertclsError(
                    f"--out {out} holds {what} {inside}: replacing that folder would delete "
                    "it. Choose another output folder."
                )
    if not out.exists():
        return
    if not overwrite:
        raise BertclsError(f"{out} exists already. Pass --overwrite to replace it.")
    if out.is_dir():
        others = [p.name for p in out.iterdir() if p.suffix != ".parquet" or not p.is_file()]
        if others:
            shown = ", ".join(sorted(others)[:5])
            raise BertclsError(
                f"--out {out} is a folder holding more than Parquet parts ({shown}), so it is "
                "not replaced even with --overwrite. Choose another output folder."
            )


# ---------------------------------------------------------------------------------------------
# the cluster


def _import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as error:
        raise BertclsError(
            "--engine ray needs Ray Data, which is not installed in this environment: "
            f"{INSTALL_HINT} (or pip install 'ray[data]'). Without it, leave out --engine ray."
        ) from error
    return ray


class WorkerPlan(NamedTuple):
    """How many actors label, and how many torch threads each uses."""

    workers: int
    threads: int


@contextmanager
def ray_session(address: str | None, workers: int | None) -> Iterator[WorkerPlan]:
    """Start a local Ray cluster (address None) or connect to `address`; shut down at the end
    what was started here. A cluster this process is connected to already is used as it is.

    Yields the `WorkerPlan`. A local cluster gets one logical CPU per worker plus one for the
    reading and writing tasks; its dashboard is off and its files go to a temporary folder
    that is deleted afterwards.
    """
    ray = _import_ray()
    if ray.is_initialized():
        yield _cluster_plan(ray, workers)
        return
    temp_dir = plan = None
    if address is None:
        plan = _local_plan(workers)
        temp_dir = tempfile.mkdtemp(prefix="bertcls-ray-", dir=_SHORT_TEMP)
        ray.init(
            num_cpus=plan.workers + 1,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
            _temp_dir=temp_dir,
        )
    else:
        if address.startswith("ray://"):
            raise BertclsError(
                f"--ray-address {address} is a Ray Client address, which the Ray engine does "
                "not use: run bertcls on a node of the cluster (`ray start --address "
                "HEAD:6379` there) and pass --ray-address HEAD:6379."
            )
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise BertclsError(
                f"Could not connect to the Ray cluster at {address}: {error}. Start it with "
                "`ray start --head` on the head node and pass its address (HEAD:6379); this "
                "machine must be one of the cluster's nodes (`ray start --address HEAD:6379`)."
            ) from error
    try:
        yield plan or _cluster_plan(ray, workers)
    finally:
        ray.shutdown()
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)


def _local_plan(workers: int | None) -> WorkerPlan:
    """This machine's cores shared out among the workers (the local cluster gets one logical
    CPU more, for reading and writing)."""
    cores = os.cpu_count() or 1
    return _shared_out(cores, workers)


def _cluster_plan(ray: Any, workers: int | None) -> WorkerPlan:
    """The cluster's CPUs but one shared out among the workers: one stays free for the
    reading and writing tasks, which would otherwise never start."""
    cores = int(ray.cluster_resources().get("CPU", 0)) - 1
    if workers is not None and workers > cores:
        raise BertclsError(
            f"The Ray cluster has {cores + 1} CPUs: {workers} workers need {workers + 1} (one "
            f"each, and one for reading and writing). Pass --ray-workers {max(1, cores)} or "
            "less, or add nodes to the cluster."
        )
    return _shared_out(max(cores, 1), workers)


def _shared_out(cores: int, workers: int | None) -> WorkerPlan:
    workers = workers or max(1, cores // CPUS_PER_WORKER)
    return WorkerPlan(workers, max(1, cores // workers))


@contextmanager
def _ray_data_settings() -> Iterator[None]:
    """Rows in the file's order; an error in an actor raised as itself (a BertclsError stays
    one); no Ray progress bars or log lines on the console (the CLI reports progress and
    errors itself). Restored afterwards."""
    from ray.data import DataContext

    context = DataContext.get_current()
    settings = {
        "enable_progress_bars": False,
        "raise_original_map_exception": True,  # Ray >= 2.4x; older ones lack it
    }
    settings = {name: value for name, value in settings.items() if hasattr(context, name)}
    before = {name: getattr(context, name) for name in settings}
    order = context.execution_options.preserve_order
    logger = logging.getLogger("ray.data")
    level = logger.level
    for name, value in settings.items():
        setattr(context, name, value)
    context.execution_options.preserve_order = True
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for name, value in before.items():
            setattr(context, name, value)
        context.execution_options.preserve_order = order
        logger.setLevel(level)


def _on_this_node(ray: Any) -> dict[str, Any]:
    """Ray task options that run a task on the driver's machine, where the files are."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node = ray.get_runtime_context().get_node_id()
    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node, soft=False)}


def _read_on_this_node(ray: Any) -> dict[str, Any]:
    """The readers' options for `_on_this_node`: newer Ray versions take a label selector
    (and deprecate `ray_remote_args` there), older ones only the scheduling strategy."""
    if "label_selector" in inspect.signature(ray.data.read_csv).parameters:
        node = ray.get_runtime_context().get_node_id()
        return {"label_selector": {"ray.io/node-id": node}}
    return {"ray_remote_args": _on_this_node(ray)}


@contextmanager
def _user_errors(ray: Any, path: Path) -> Iterator[None]:
    """A BertclsError raised in an actor (e.g. a text over the pipeline's max_length) is
    raised as itself, without Ray's wrapping; a file Ray Data cannot parse becomes a
    BertclsError naming it."""
    try:
        yield
    except ray.exceptions.RayTaskError as error:
        cause = getattr(error, "cause", None)
        if isinstance(cause, BertclsError):
            # Ray appends its retry advice to the message; the advice is not for this error.
            raise BertclsError(str(cause).split("\nFailed to apply UDF")[0]) from None
        # The task's name leads the message: "ray::ReadCSV->..." for the reading tasks.
        if "ray::Read" in str(error).split("\n", 1)[0]:
            raise BertclsError(
                f"Ray Data could not read {path}: Arrow's reader refused it (in a CSV file "
                "usually a row with fewer cells than the header, which the default engine "
                "reads with empty cells). Fix the file, or use the default engine (leave out "
                "--engine ray)."
            ) from error
        raise


# ---------------------------------------------------------------------------------------------
# reading


@dataclass
class _Input:
    dataset: Any  # ray.data.Dataset of the file's rows, as Arrow blocks
    empty: pd.DataFrame  # no rows, the columns as the actors see them
    rows: int
    guarded: bool  # a CSV/TSV file this project wrote with formula guards
    state: tuple[int, int]  # size and modification time, to notice a file being written


def _read(ray: Any, path: Path, encoding: str | None) -> _Input:
    """The file as a Ray Dataset, read by tasks on this machine's node."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    suffix = path.suffix.lower()
    if suffix in DELIMITED_SUFFIXES:
        # It exists, the options fit it and it has a header: checked without reading rows.
        read_table(path, nrows=0, encoding=encoding)
        state = _file_state(path)
        # One pass: the rows, and overlong cells and a half-written end refused.
        fmt = delimited_format(path, encoding)
        rows = fmt.rows
    else:
        rows = count_rows(path, encoding=encoding) or 0  # also: it exists, the options fit
        state = _file_state(path)
    options = {
        "partitioning": None,  # never add columns from folder names such as year=2024
        "file_extensions": None,
        **_read_on_this_node(ray),
    }
    source = str(path.resolve())
    guarded = False
    if suffix in DELIMITED_SUFFIXES:
        _check_distinct(path, fmt.header)
        guarded = csv_has_guard_marker(path)
        dataset = ray.data.read_csv(
            source,
            read_options=pa_csv.ReadOptions(
                # Arrow skips a UTF-8 byte-order mark itself; other codecs go through Python.
                encoding="utf8" if fmt.encoding in ("utf-8", "utf-8-sig") else fmt.encoding,
                column_names=fmt.header,
                skip_rows=_header_lines(path, fmt.encoding, fmt.sep, fmt.quoting),
            ),
            parse_options=pa_csv.ParseOptions(
                delimiter=fmt.sep,
                quote_char=False if fmt.quoting == csv.QUOTE_NONE else '"',
                newlines_in_values=True,
            ),
            # Every cell text, only an empty one missing: "NA", "007" and "1.50" stay as they are.
            convert_options=pa_csv.ConvertOptions(
                column_types={name: pa.string() for name in fmt.header},
                strings_can_be_null=True,
                null_values=[""],
            ),
            **options,
        )
        empty = pd.DataFrame({name: pd.Series(dtype="str") for name in fmt.header})
        empty = remove_formula_guards(empty) if guarded else empty
    elif suffix in PARQUET_SUFFIXES:
        schema = parquet_file(path).schema_arrow
        _check_distinct(path, schema.names)
        dataset = ray.data.read_parquet(source, **options)
        empty = _arrow_to_pandas(schema.empty_table())
    else:
        used = resolve_encoding(path, encoding)
        if codecs.lookup(used).name not in ("utf-8", "utf-8-sig"):  # Arrow skips a BOM
            raise BertclsError(
                f"The Ray engine reads JSON lines as UTF-8 only, not {used!r} ({path}). "
                "Convert the file to UTF-8 or Parquet, or use the default engine."
            )
        # Arrow's JSON reader (not `lines=True`, which is pandas' and turns "007" into 7).
        dataset = ray.data.read_json(source, **options)
        names = dataset.schema().names
        _check_distinct(path, names)
        empty = pd.DataFrame({name: pd.Series(dtype=object) for name in names})
    return _Input(dataset, empty, rows, guarded, state)


def _header_lines(path: Path, encoding: str, sep: str, quoting: int) -> int:
    """How many lines Arrow must skip to reach the first row: blank lines before the header
    (which `tables` skips as pandas does) and the header, which a quoted cell may spread
    over several lines."""
    with open(path, encoding=encoding, newline="") as file:
        reader = csv.reader(file, delimiter=sep, quoting=quoting)
        for row in reader:
            if row and not (len(row) == 1 and not row[0].strip()):
                return reader.line_num
    return 0


def _check_distinct(path: Path, names: list[str]) -> None:
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise BertclsError(
            f"{path} has several columns named {', '.join(map(repr, repeated))}; Ray Data "
            "needs distinct column names. Rename them, or use the default engine."
        )


def _file_state(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def _check_unchanged(path: Path, before: tuple[int, int]) -> None:
    if _file_state(path) != before:
        raise BertclsError(
            f"{path} changed while it was being read: another program may still be writing "
            "it. Wait until it has finished and try again."
        )


# ---------------------------------------------------------------------------------------------
# labeling: one actor


class PipelineLabeler:
    """A Ray Data actor: loads the pipeline once, then labels each block with `label_frame`.

    Blocks come and go as Arrow tables and are converted with the Parquet reader's rules, so
    integers with empty cells stay integers and nested values keep their types, as with the
    default engine.
    """

    def __init__(
        self, pipeline: str, text_column: str, batch_size: int, threads: int, guarded: bool
    ) -> None:
        import torch

        # Ray limits a worker to one thread per CPU it asked for; this worker may use more.
        torch.set_num_threads(threads)
        self.nlp = load_pipeline(pipeline)
        self.text_column = text_column
        self.batch_size = batch_size
        self.guarded = guarded

    def __call__(self, batch: Any) -> Any:
        frame = _arrow_to_pandas(batch)
        if self.guarded:
            frame = remove_formula_guards(frame)
        labeled = label_frame(
            self.nlp, frame, text_column=self.text_column, batch_size=self.batch_size
        )
        return _to_arrow(labeled)


def _to_arrow(frame: pd.DataFrame) -> Any:
    import pyarrow as pa

    table = pa.Table.from_pandas(frame, preserve_index=False)
    # pandas holds text as large_string; string is what `tables`' Parquet writer writes too.
    fields = [
        field.with_type(pa.string()) if pa.types.is_large_string(field.type) else field
        for field in table.schema
    ]
    return table.cast(pa.schema(fields, metadata=table.schema.metadata))


# ---------------------------------------------------------------------------------------------
# writing


class _Tally:
    """Counts rows and labels for the `LabelSummary` from the written probability columns,
    with the pipeline's own decision rule, so the summary is the one `label_file` prints."""

    def __init__(self, nlp: Any, out: Path) -> None:
        self.labels = pipeline_labels(nlp)
        self.rule = decision_rule(nlp)
        self.columns = [prob_column(label) for label in self.labels]
        self.summary = LabelSummary(0, 0, 0, 0.0, 0.0, output=out)

    def add(self, frame: pd.DataFrame) -> None:
        probs = frame[self.columns].to_numpy(dtype=np.float32, na_value=np.nan)
        rows = np.arange(len(frame))
        self.summary.add(LabeledChunk.from_probs(rows, probs, self.labels, self.rule))


def _labeled_blocks(
    labeled: Any,
    tally: _Tally,
    rows_total: int,
    progress: Callable[[LabelProgress], None] | None,
    batch_size: int | None = None,
) -> Iterator[tuple[Any, pd.DataFrame]]:
    """The labeled rows in the file's order, as (Arrow table, pandas frame) pieces, counted
    into the tally and reported to `progress` as they come."""
    summary = tally.summary
    started = time.perf_counter()
    for batch in labeled.iter_batches(batch_size=batch_size, batch_format="pyarrow"):
        frame = _arrow_to_pandas(batch)
        yield batch, frame
        tally.add(frame)
        if progress is not None:
            seconds = time.perf_counter() - started
            rate = summary.rows / seconds if seconds > 0 else 0.0
            left = max(rows_total - summary.rows, 0) / rate if rate > 0 else None
            progress(LabelProgress(summary.rows, rows_total, rate, left))


def _write_file(
    labeled: Any,
    tally: _Tally,
    rows_total: int,
    progress: Callable[[LabelProgress], None] | None,
    before_commit: Callable[[], None],
) -> None:
    """Stream the labeled blocks into one file, in order; atomic as `label_file`'s output."""
    with TableWriter(tally.summary.output) as writer:
        for _, frame in _labeled_blocks(labeled, tally, rows_total, progress):
            writer.write(frame)
        before_commit()


def _write_parts(
    labeled: Any,
    tally: _Tally,
    rows_total: int,
    progress: Callable[[LabelProgress], None] | None,
    before_commit: Callable[[], None],
) -> None:
    """Write a folder of Parquet parts of PART_ROWS rows into a hidden folder beside the
    output, then put it in place of the output.

    The driver writes the parts from the same ordered stream as one file. Ray's own
    `write_parquet` names its files by write task, and under load a task's rows and the
    files' name order did not always follow the rows' order (Ray 2.60), so it is not used.
    The driver holds one part at a time.
    """
    import pyarrow.parquet as pq

    with staged_folder(tally.summary.output) as stage:
        stage.mkdir()
        pieces = _labeled_blocks(labeled, tally, rows_total, progress, batch_size=PART_ROWS)
        for number, (batch, _) in enumerate(pieces):
            part = stage / f"part-{number:06d}.parquet"
            pq.write_table(batch, part)
            # On disk before the rename, as TableWriter's files are.
            descriptor = os.open(part, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        before_commit()
