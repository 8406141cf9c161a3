"""The ``bertcls`` command line: convert, train, label, evaluate, info, gui.

Each command is a thin layer over the library functions the desktop app calls too; a
``BertclsError`` is printed as a message (exit code 1), anything else keeps its traceback.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import typer

from .errors import BertclsError

app = typer.Typer(
    name="bertcls",
    help="Train, apply and evaluate BERT text classifiers on spreadsheets (spacy-bertcls).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

SheetOption = typer.Option(None, "--sheet", help="Excel sheet name or 0-based index.")
EncodingOption = typer.Option(
    None, "--encoding", help="Text encoding of CSV/TSV/TXT input (default: detected; UTF-8)."
)


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Print a BertclsError as a one-paragraph message and exit with status 1."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except BertclsError as error:
            typer.secho(f"Error: {error}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None

    return wrapper


def parse_sheet(sheet: str | None) -> str | int | None:
    return int(sheet) if sheet is not None and sheet.isdigit() else sheet


@app.command()
@user_errors
def convert(
    file: Path = typer.Argument(..., help="Labeled table: CSV, TSV, Excel, Parquet, JSONL, TXT."),
    text_column: str = typer.Option(..., "--text-column", help="Column holding the texts."),
    label_column: str = typer.Option(..., "--label-column", help="Column holding the labels."),
    out: Path = typer.Option(Path("corpus"), "--out", help="Directory for train/dev/test.spacy."),
    multi_label: str | None = typer.Option(
        None, "--multi-label", help="Separator of several labels in one cell (multi-label data)."
    ),
    dev_size: float = typer.Option(0.1, "--dev-size", help="Fraction of rows for the dev split."),
    test_size: float = typer.Option(
        0.1, "--test-size", help="Fraction of rows for the test split."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed of the split."),
    lang: str = typer.Option("en", "--lang", help="Language code of the tokenizer."),
    sheet: str | None = SheetOption,
    encoding: str | None = EncodingOption,
) -> None:
    """Split a labeled spreadsheet into spaCy training data (stratified by label)."""
    from .convert import convert_table

    summary = convert_table(
        file,
        text_column=text_column,
        label_column=label_column,
        out_dir=out,
        multi_label_sep=multi_label,
        sheet=parse_sheet(sheet),
        encoding=encoding,
        dev_size=dev_size,
        test_size=test_size,
        seed=seed,
        lang=lang,
    )
    typer.echo(summary.format())


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@user_errors
def train(
    ctx: typer.Context,
    config: Path = typer.Argument(..., help="spaCy training config, e.g. configs/frozen.cfg."),
    output: Path = typer.Option(Path("training"), "--output", help="Where model-best goes."),
    gpu_id: int = typer.Option(-1, "--gpu-id", help="GPU to train on; -1 for the CPU."),
    freeze_encoder: str = typer.Option(
        "auto", "--freeze-encoder", help="true, false, or auto (as the config says)."
    ),
    class_weights: str = typer.Option(
        "auto",
        "--class-weights",
        help='"balanced", "none", "label=weight,label=weight", or auto (as the config says).',
    ),
    encoder: str = typer.Option(
        "auto", "--encoder", help="Hub name or model directory, or auto (as the config says)."
    ),
) -> None:
    """Train a pipeline with `spacy train` (extra --section.key options are config overrides).

    For example: bertcls train configs/frozen.cfg --paths.train corpus/train.spacy
    --paths.dev corpus/dev.spacy --training.max_epochs 5
    """
    from spacy.cli._util import parse_config_overrides
    from spacy.cli.train import train as spacy_train

    overrides = parse_config_overrides(ctx.args)
    overrides.update(training_overrides(freeze_encoder, class_weights, encoder))
    if not config.exists():
        raise BertclsError(f"Config file {config} does not exist.")
    if "training.eval_frequency" not in overrides:
        frequency, why = eval_frequency_for_short_runs(config, overrides)
        if frequency is not None:
            overrides["training.eval_frequency"] = frequency
            typer.echo(why)
    spacy_train(config, output, use_gpu=gpu_id, overrides=overrides)
    typer.echo(f"Trained pipeline: {output / 'model-best'}")


def eval_frequency_for_short_runs(
    config: Path, overrides: dict[str, Any]
) -> tuple[int | None, str]:
    """A smaller eval_frequency when training ends before its first evaluation after step 0.

    spaCy evaluates (and saves model-best) only every eval_frequency steps, starting after the
    first step; a run shorter than eval_frequency would keep that barely trained model as
    model-best. Here training is evaluated about ten times instead. Returns (None, "") when
    the config's value is fine or the run length cannot be known (batch size schedules, no
    epoch limit, a training file that is not a .spacy file).
    """
    from spacy.tokens import DocBin
    from spacy.util import load_config

    cfg = load_config(config, overrides=overrides, interpolate=True)
    training = cfg["training"]
    size = training.get("batcher", {}).get("size")
    train_path = cfg.get("paths", {}).get("train")
    max_epochs, max_steps = training.get("max_epochs", 0), training.get("max_steps", 0)
    if not isinstance(size, int) or not train_path or max_epochs <= 0:
        return None, ""
    if not str(train_path).endswith(".spacy") or not Path(train_path).is_file():
        return None, ""
    n_train = len(DocBin().from_disk(train_path))
    steps_per_epoch = max(1, -(-n_train // size))
    total = max_epochs * steps_per_epoch
    if max_steps > 0:
        total = min(total, max_steps)
    frequency = training["eval_frequency"]
    if total >= frequency:
        return None, ""
    new = max(1, -(-total // 10))  # about ten evaluations, the last within the final tenth
    return new, (
        f"Training takes about {total} steps ({n_train:,} texts, batches of {size}, "
        f"{max_epochs} epochs), fewer than eval_frequency = {frequency}: evaluating every "
        f"{new} steps instead, so that model-best is a trained model. Pass "
        "--training.eval_frequency to choose."
    )


def training_overrides(freeze_encoder: str, class_weights: str, encoder: str) -> dict[str, Any]:
    """Config overrides for the component's settings; "auto" leaves the config's value."""
    section = "components.bert_textcat"
    overrides: dict[str, Any] = {}
    freeze = freeze_encoder.strip().lower()
    if freeze in ("true", "1", "yes"):
        overrides[f"{section}.freeze_encoder"] = True
    elif freeze in ("false", "0", "no"):
        overrides[f"{section}.freeze_encoder"] = False
    elif freeze != "auto":
        raise BertclsError(f"--freeze-encoder {freeze_encoder!r}: use true, false or auto.")
    if class_weights != "auto":
        overrides[f"{section}.class_weights"] = parse_class_weights(class_weights)
    if encoder != "auto":
        overrides[f"{section}.model.encoder"] = encoder
    return overrides


def parse_class_weights(value: str) -> str | dict[str, float] | None:
    """ "balanced", "none"/"null", JSON, or "spam=3,ham=1" -> the class_weights setting."""
    value = value.strip()
    if value in ("balanced",):
        return value
    if value.lower() in ("none", "null", ""):
        return None
    if value.startswith("{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError as error:
            raise BertclsError(f"--class-weights {value!r} is not valid JSON: {error}") from None
    weights = {}
    for part in value.split(","):
        label, sep, weight = part.partition("=")
        try:
            weights[label.strip()] = float(weight)
        except ValueError:
            sep = ""
        if not sep or not label.strip():
            raise BertclsError(
                f"--class-weights {value!r}: use balanced, none, or label=weight pairs such "
                "as spam=3,ham=1."
            )
    return weights


@app.command()
@user_errors
def label(
    pipeline: Path = typer.Argument(..., help="Trained pipeline directory (training/model-best)."),
    file: Path = typer.Argument(..., help="Table to label."),
    text_column: str = typer.Option(..., "--text-column", help="Column holding the texts."),
    out: Path = typer.Option(..., "--out", help="Output file; its suffix chooses the format."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
    batch_size: int = typer.Option(256, "--batch-size", help="Texts per nlp.pipe batch."),
    chunk_size: int = typer.Option(2048, "--chunk-size", help="Rows read and written at a time."),
    sheet: str | None = SheetOption,
    encoding: str | None = EncodingOption,
) -> None:
    """Add predicted_label, confidence and prob_<label> columns to every row of a table."""
    from .labeling import label_file, load_pipeline
    from .tables import check_not_same_file

    check_not_same_file(file, out)
    if out.exists() and not overwrite:
        raise BertclsError(f"{out} exists already. Pass --overwrite to replace it.")
    nlp = load_pipeline(pipeline)
    with progress_bar("Labeling") as report:
        summary = label_file(
            nlp,
            file,
            text_column=text_column,
            out=out,
            sheet=parse_sheet(sheet),
            encoding=encoding,
            chunk_size=chunk_size,
            batch_size=batch_size,
            progress=report,
        )
    typer.echo(summary.format())


def progress_bar(description: str):
    """A rich progress bar fed with LabelProgress reports (rows, rows/s, time left)."""
    from contextlib import contextmanager

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    @contextmanager
    def bar():
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} rows/s"),
            TimeElapsedColumn(),
            TextColumn("elapsed,"),
            TimeRemainingColumn(),
            TextColumn("left"),
        )
        # Shown from the first report on (after the input was checked), so that a bad column
        # or file fails without an empty bar above the message; elapsed counts from here.
        shown: list[tuple[Progress, Any]] = []
        entered = time.monotonic()  # rich's clock

        def report(state) -> None:
            if not shown:
                progress = Progress(*columns, transient=False, get_time=time.monotonic)
                progress.start()
                task = progress.add_task(description, total=None, rate="-")
                progress.tasks[0].start_time = entered
                shown.append((progress, task))
            progress, task = shown[0]
            progress.update(
                task,
                completed=state.rows_done,
                total=state.rows_total,
                rate=f"{state.rows_per_second:,.0f}",
            )

        try:
            yield report
        finally:
            if shown:
                shown[0][0].stop()

    return bar()


@app.command()
@user_errors
def evaluate(
    pipeline: Path = typer.Argument(..., help="Trained pipeline directory."),
    file: Path = typer.Argument(..., help="Table with a gold label column, or a .spacy file."),
    text_column: str = typer.Option("text", "--text-column", help="Column holding the texts."),
    label_column: str = typer.Option(
        "label", "--label-column", help="Column holding the gold labels."
    ),
    report: Path = typer.Option(Path("report.html"), "--report", help="HTML report to write."),
    json_path: Path | None = typer.Option(None, "--json", help="Also write the metrics as JSON."),
    plots: Path | None = typer.Option(None, "--plots", help="Also write PNG plots here."),
    batch_size: int = typer.Option(256, "--batch-size", help="Texts per nlp.pipe batch."),
    sheet: str | None = SheetOption,
    encoding: str | None = EncodingOption,
) -> None:
    """Score a pipeline against gold labels and write an HTML report (plus JSON and PNG).

    The report has accuracy, per-class precision/recall/F1, the confusion matrix, PR curves,
    a reliability plot and the most confident errors.
    """
    from .evaluation import evaluate_file, format_summary, write_report

    result, details = evaluate_file(
        pipeline,
        file,
        text_column=text_column,
        label_column=label_column,
        sheet=parse_sheet(sheet),
        encoding=encoding,
        batch_size=batch_size,
    )
    written = write_report(
        result,
        report,
        json_path=json_path,
        plots_dir=plots,
        details=details,
        title=f"Evaluation of {pipeline.name} on {file.name}",
    )
    typer.echo(format_summary(result))
    for path in written.values():
        typer.echo(f"wrote {path}")


@app.command()
@user_errors
def info(
    pipeline: Path = typer.Argument(..., help="Trained pipeline directory."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Labels, encoder, settings and training scores of a trained pipeline."""
    from .labeling import load_pipeline, pipeline_info

    details = pipeline_info(load_pipeline(pipeline))
    if as_json:
        typer.echo(json.dumps(details, indent=2, default=str))
        return
    for key, value in details.items():
        if isinstance(value, dict):
            typer.echo(f"{key}:")
            for sub_key, sub_value in value.items():
                typer.echo(f"  {sub_key}: {format_value(sub_value)}")
        else:
            typer.echo(f"{key}: {format_value(value)}")


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value))
    return str(value)


@app.command()
def gui(
    pipeline: Path | None = typer.Option(None, "--pipeline", help="Pipeline to load at start."),
    file: Path | None = typer.Option(None, "--file", help="Table to open at start."),
    text_column: str | None = typer.Option(None, "--text-column", help="Text column of --file."),
) -> None:
    """Start the desktop app (needs the 'gui' extra: PySide6)."""
    try:
        from spacy_bertcls_gui.app import main
    except ImportError as error:
        typer.secho(
            f"The desktop app needs PySide6 ({error}). Install it with "
            "`pip install 'spacy-bertcls[gui]'`.",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(1) from None
    argv = []
    for flag, value in (("--pipeline", pipeline), ("--file", file), ("--text-column", text_column)):
        if value is not None:
            argv += [flag, str(value)]
    raise typer.Exit(main(argv))


def main() -> None:  # pragma: no cover - console entry point
    app(prog_name="bertcls")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
