"""The ``bertcls`` command line: convert, train, label, evaluate, info, convert-encoder, gui.

Each command is a thin layer over the library functions the desktop app calls too; a
``BertclsError`` is printed as a message (exit code 1), anything else keeps its traceback.
"""

from __future__ import annotations

import importlib.util
import json
import math
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


def split_fraction(value: str) -> float:
    """A fraction of the rows: from 0 (an empty split) to below 1 (rows must stay to train)."""
    try:
        fraction = float(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a number.") from None
    if not 0 <= fraction < 1:  # also False for NaN
        raise typer.BadParameter(f"{value} is not in the range 0<=x<1.")
    return fraction


def parse_sheet(sheet: str | None) -> str | int | None:
    return int(sheet) if sheet is not None and sheet.isdigit() else sheet


@app.command()
@user_errors
def convert(
    file: Path = typer.Argument(..., help="Labeled table: CSV, TSV, Excel, Parquet, JSONL, TXT."),
    text_column: str = typer.Option(..., "--text-column", help="Column holding the texts."),
    label_column: str = typer.Option(..., "--label-column", help="Column holding the labels."),
    output: Path = typer.Option(
        Path("corpus"), "--output", help="Folder for train/dev/test.spacy (created if missing)."
    ),
    multi_label_sep: str | None = typer.Option(
        None,
        "--multi-label-sep",
        help="Separator of several labels in one cell (multi-label data), e.g. ';'.",
    ),
    dev_size: float = typer.Option(
        0.1,
        "--dev-size",
        parser=split_fraction,
        metavar="FLOAT",
        help="Fraction of rows for the dev split, 0 <= x < 1.",
    ),
    test_size: float = typer.Option(
        0.1,
        "--test-size",
        parser=split_fraction,
        metavar="FLOAT",
        help="Fraction of rows for the test split, 0 <= x < 1.",
    ),
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1, help="Random seed of the split."),
    lang: str = typer.Option("en", "--lang", help="Language code of the tokenizer."),
    sheet: str | None = SheetOption,
    encoding: str | None = EncodingOption,
) -> None:
    """Split a labeled spreadsheet into spaCy training data (stratified by label)."""
    from .convert import SPLITS, convert_table
    from .outputs import check_not_same_file, check_output_folder

    # dev_size + test_size < 1 is checked by convert_table, first thing.
    check_not_same_file(file, output, option="--output", example="corpus")
    for split in SPLITS:
        check_not_same_file(file, output / f"{split}.spacy", option="--output", example="corpus")
    check_output_folder(output, option="--output")
    summary = convert_table(
        file,
        text_column=text_column,
        label_column=label_column,
        out_dir=output,
        multi_label_sep=multi_label_sep,
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
    gpu_id: int = typer.Option(-1, "--gpu-id", min=-1, help="GPU to train on; -1 for the CPU."),
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

    from .outputs import disk_full_errors

    overrides = parse_config_overrides(ctx.args)
    if not config.is_file():
        raise BertclsError(f"Config file {config} does not exist.")
    sections = bert_textcat_sections(config)
    overrides.update(training_overrides(freeze_encoder, class_weights, encoder, sections))
    check_gpu(gpu_id)
    corpora = training_data_paths(config, overrides)
    check_training_output(output, {"the config": config, **corpora})
    if "training.eval_frequency" not in overrides:
        frequency, why = eval_frequency_for_short_runs(config, overrides)
        if frequency is not None:
            overrides["training.eval_frequency"] = frequency
            typer.echo(why)
    with disk_full_errors(output / "model-last"):
        spacy_train(config, output, use_gpu=gpu_id, overrides=overrides)
    typer.echo(f"Trained pipeline: {output / 'model-best'}")


def check_gpu(gpu_id: int) -> None:
    """Raise BertclsError unless GPU ``gpu_id`` can train (nothing to check for -1, the CPU).

    spaCy would fail later with a traceback ("Cannot use GPU, CuPy is not installed").
    """
    if gpu_id < 0:
        return
    import torch

    cuda = torch.version.cuda
    if not torch.cuda.is_available():
        why = (
            "no NVIDIA GPU with a working driver was found"
            if cuda
            else "the installed torch is a CPU-only build"
        )
        raise BertclsError(
            f"--gpu-id {gpu_id}: cannot train on a GPU: {why}. On a machine with an NVIDIA GPU, "
            "install a CUDA build of torch (https://pytorch.org/get-started/locally/) and CuPy "
            "for that CUDA version (e.g. cupy-cuda12x), or pass --gpu-id -1 to train on the CPU."
        )
    count = torch.cuda.device_count()
    if gpu_id >= count:
        raise BertclsError(
            f"--gpu-id {gpu_id}: this machine has {count} GPU(s), numbered from 0 to {count - 1}."
        )
    if importlib.util.find_spec("cupy") is None:
        package = f"cupy-cuda{cuda.split('.')[0]}x" if cuda else "cupy-cuda12x"
        raise BertclsError(
            f"--gpu-id {gpu_id}: spaCy needs CuPy to train on a GPU, and it is not installed. "
            f"Install the CuPy package matching torch's CUDA {cuda}: pip install {package}. "
            "Or pass --gpu-id -1 to train on the CPU."
        )


def training_data_paths(config: Path, overrides: dict[str, Any]) -> dict[str, Path]:
    """The --paths.train and --paths.dev corpora that the config reads; each must exist."""
    from spacy.util import load_config

    paths = load_config(config, overrides=overrides, interpolate=False).get("paths", {})
    found = {}
    for name in ("train", "dev"):
        value = paths.get(name)
        if value is None or str(value).strip() in ("", "null", "None"):
            raise BertclsError(
                f"No {name} data: pass --paths.{name} corpus/{name}.spacy (or set [paths] "
                f"{name} in {config}). Make the .spacy files from a labeled table with "
                "`bertcls convert TABLE --text-column ... --label-column ... --output corpus`."
            )
        path = Path(str(value))
        if "${" not in str(value) and not path.exists():
            raise BertclsError(
                f"The {name} data {path} (--paths.{name}) does not exist. Make it from a labeled "
                "table with `bertcls convert TABLE --text-column ... --label-column ... --output "
                f"{path.parent}`, which writes train.spacy, dev.spacy and test.spacy."
            )
        found[f"--paths.{name}"] = path
    return found


def check_training_output(output: Path, inputs: dict[str, Path]) -> None:
    """Raise BertclsError if --output is a file, or if training would write over an input.

    Training writes the pipelines model-last and model-best into --output, replacing them.
    """
    from .outputs import check_output_folder

    written = [output.resolve()] + [(output / name).resolve() for name in MODEL_DIRS]
    for name, path in inputs.items():
        target = path.resolve()
        if target in written or any(folder in target.parents for folder in written[1:]):
            raise BertclsError(
                f"--output {output}: training writes {' and '.join(MODEL_DIRS)} there, which "
                f"would overwrite {name} {path}. Choose another --output."
            )
    check_output_folder(output, option="--output")


MODEL_DIRS = ("model-last", "model-best")


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


def bert_textcat_sections(config: Path) -> list[str]:
    """The config sections of the components made by the bert_textcat factory, whatever they
    are called (``components.bert_textcat``, ``components.sentiment``, ...)."""
    from spacy.util import load_config

    components = load_config(config, interpolate=False).get("components", {})
    return [
        f"components.{name}"
        for name, block in components.items()
        if isinstance(block, dict) and block.get("factory") == "bert_textcat"
    ]


def training_overrides(
    freeze_encoder: str, class_weights: str, encoder: str, sections: list[str]
) -> dict[str, Any]:
    """Config overrides of every bert_textcat component's settings (``sections``, from
    ``bert_textcat_sections``); "auto" leaves the config's value."""
    settings: dict[str, Any] = {}
    freeze = freeze_encoder.strip().lower()
    if freeze in ("true", "1", "yes"):
        settings["freeze_encoder"] = True
    elif freeze in ("false", "0", "no"):
        settings["freeze_encoder"] = False
    elif freeze != "auto":
        raise BertclsError(f"--freeze-encoder {freeze_encoder!r}: use true, false or auto.")
    if class_weights != "auto":
        settings["class_weights"] = parse_class_weights(class_weights)
    if encoder != "auto":
        settings["model.encoder"] = encoder
    if settings and not sections:
        options = ("--freeze-encoder", "--class-weights", "--encoder")
        raise BertclsError(
            f"{', '.join(options)} set bert_textcat settings, but the config has no component "
            'made by factory = "bert_textcat". Leave them at auto, or add the component.'
        )
    return {f"{section}.{key}": value for section in sections for key, value in settings.items()}


def parse_class_weights(value: str) -> str | dict[str, float] | None:
    """ "balanced", "none"/"null", JSON, or "spam=3,ham=1" -> the class_weights setting.

    Every weight must be a finite number above 0 (a NaN, infinite, zero or negative weight
    would wreck or silently disable the loss).
    """
    value = value.strip()
    usage = (
        f"--class-weights {value!r}: use balanced, none, or label=weight pairs such as spam=3,ham=1"
    )
    if value.lower() == "balanced":
        return "balanced"
    if value.lower() in ("none", "null", ""):
        return None
    if value.startswith("{"):
        try:
            weights = json.loads(value)
        except json.JSONDecodeError as error:
            raise BertclsError(f"--class-weights {value!r} is not valid JSON: {error}") from None
        if not isinstance(weights, dict):
            raise BertclsError(f"{usage}, or a JSON object.")
        pairs = list(weights.items())
    else:
        pairs = []
        for part in value.split(","):
            label, sep, weight = part.partition("=")
            if not sep or not label.strip():
                raise BertclsError(f"{usage}.")
            try:
                pairs.append((label.strip(), float(weight)))
            except ValueError:
                raise BertclsError(f"{usage}; {weight.strip()!r} is not a number.") from None
    result: dict[str, float] = {}
    for label, weight in pairs:
        number = isinstance(weight, int | float) and not isinstance(weight, bool)
        if not number or not math.isfinite(weight) or weight <= 0:
            raise BertclsError(
                f"--class-weights: the weight of {label!r} is {weight!r}; a weight must be a "
                "number above 0, such as spam=3,ham=1."
            )
        if label in result:
            raise BertclsError(f"--class-weights {value!r} gives {label!r} twice.")
        result[label] = float(weight)
    return result


@app.command()
@user_errors
def label(
    pipeline: Path = typer.Argument(..., help="Trained pipeline directory (training/model-best)."),
    file: Path = typer.Argument(..., help="Table to label."),
    text_column: str = typer.Option(..., "--text-column", help="Column holding the texts."),
    out: Path = typer.Option(..., "--out", help="Output file; its suffix chooses the format."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Texts per nlp.pipe batch."),
    chunk_size: int = typer.Option(
        2048, "--chunk-size", min=1, help="Rows read and written at a time."
    ),
    sheet: str | None = SheetOption,
    encoding: str | None = EncodingOption,
) -> None:
    """Add predicted_label, confidence and prob_<label> columns to every row of a table."""
    from .labeling import label_file
    from .outputs import (
        check_not_same_file,
        check_output_file,
        check_outside_folder,
        disk_full_errors,
    )
    from .pipelines import load_pipeline

    check_not_same_file(file, out, option="--out")
    check_outside_folder(pipeline, out, option="--out")
    check_output_file(out, option="--out", example=f"{file.stem}_labeled{file.suffix}")
    if out.exists() and not overwrite:
        raise BertclsError(f"{out} exists already. Pass --overwrite to replace it.")
    nlp = load_pipeline(pipeline)
    with progress_bar("Labeling") as report, disk_full_errors(out):
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
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Texts per nlp.pipe batch."),
    sheet: str | None = SheetOption,
    encoding: str | None = EncodingOption,
) -> None:
    """Score a pipeline against gold labels and write an HTML report (plus JSON and PNG).

    The report has accuracy, per-class precision/recall/F1, the confusion matrix, PR curves,
    a reliability plot and the most confident errors.
    """
    from .evaluation import check_report_paths, format_summary, report_paths, write_report
    from .evaluation.files import evaluate_file
    from .outputs import check_not_same_file, check_outside_folder

    # Checked before the (slow) evaluation; write_report checks the same again.
    examples = {"html": ("--report", "report.html"), "json": ("--json", "metrics.json")}
    for key, path in report_paths(report, json_path, plots).items():
        option, example = examples.get(key, ("--plots", "plots"))
        check_not_same_file(file, path, option=option, example=example)
        check_outside_folder(pipeline, path, option=option)
    check_report_paths(report, json_path, plots, options=("--report", "--json", "--plots"))
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
    """Labels, encoder, frozen or fine-tuned, class weights used, settings and dev scores of a
    trained pipeline (the facts the app's Pipeline tab shows, worded the same)."""
    from dataclasses import asdict

    from .pipelines import NO_SCORES, SCORES_HEADING, load_pipeline, pipeline_info

    details = pipeline_info(load_pipeline(pipeline))
    if as_json:
        typer.echo(json.dumps(asdict(details), indent=2, default=str))
        return
    for caption, text in details.facts():
        typer.echo(f"{caption}: {text}")
    typer.echo(f"{SCORES_HEADING}:")
    if not details.scores:
        typer.echo(f"  {NO_SCORES}")
    for key, text in details.score_lines():
        typer.echo(f"  {key}: {text}")
    typer.echo(f"{details.settings_heading}:")
    for key, text in details.setting_lines():
        typer.echo(f"  {key}: {text}")


@app.command("convert-encoder")
@user_errors
def convert_encoder_command(
    source: Path = typer.Argument(
        ..., help="Local encoder directory whose weights are pytorch_model.bin (a pickle)."
    ),
    dest: Path = typer.Argument(..., help="New directory for the encoder saved as safetensors."),
) -> None:
    """Re-save a pickled encoder (pytorch_model.bin) as safetensors, to use as `encoder`.

    Only for a checkpoint you trust: bertcls reads no pickle otherwise (one can run code).
    This one is read as plain tensors only (torch.load with weights_only=True).
    """
    from .encoder import convert_encoder

    written = convert_encoder(source, dest)
    typer.echo(f"wrote {written} (model.safetensors and tokenizer); use it as the encoder")


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
