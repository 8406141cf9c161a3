"""The ``bertcls`` command line: convert, train, label, evaluate, info, convert-encoder,
pretrain, optimize, gui.

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

from .audit import DEFAULT_HEAD as AUDIT_HEAD
from .devices import check_gpu
from .errors import BertclsError
from .training import (
    bert_textcat_sections,
    calibrate_training_output,
    check_training_output,
    eval_frequency_for_short_runs,
    training_data_paths,
    training_overrides,
)

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


def empty_is_none(value: str | None) -> str | None:
    """An option given as "" (e.g. a project variable left empty) counts as not given."""
    return value or None


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
        callback=empty_is_none,
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
    calibrate: bool = typer.Option(
        True,
        "--calibrate/--no-calibrate",
        help="Fit a temperature and decision thresholds on the dev data after training.",
    ),
) -> None:
    """Train a pipeline with `spacy train` (extra --section.key options are config overrides).

    For example: bertcls train configs/frozen.cfg --paths.train corpus/train.spacy
    --paths.dev corpus/dev.spacy --training.max_epochs 5

    Then model-best and model-last are calibrated on the dev data (as `bertcls calibrate`
    does): their probabilities get a fitted temperature and their decisions tuned thresholds.
    """
    from spacy.cli._util import parse_config_overrides
    from spacy.cli.train import train as spacy_train

    from .outputs import disk_full_errors

    overrides = parse_config_overrides(ctx.args)
    if not config.is_file():
        raise BertclsError(f"Config file {config} does not exist.")
    sections = bert_textcat_sections(config)
    overrides.update(training_overrides(freeze_encoder, class_weights, encoder, sections))
    check_gpu(gpu_id, option="--gpu-id", task="train")
    corpora = training_data_paths(config, overrides)
    check_training_output(output, {"the config": config, **corpora})
    if "training.eval_frequency" not in overrides:
        frequency, why = eval_frequency_for_short_runs(config, overrides)
        if frequency is not None:
            overrides["training.eval_frequency"] = frequency
            typer.echo(why)
    with disk_full_errors(output / "model-last"):
        spacy_train(config, output, use_gpu=gpu_id, overrides=overrides)
    if calibrate and not sections:
        typer.echo("Not calibrated: the pipeline has no bert_textcat component.")
    elif calibrate:
        for name, text in calibrate_training_output(output, corpora["--paths.dev"]).items():
            typer.echo(f"{name}: {text}")
    typer.echo(f"Trained pipeline: {output / 'model-best'}")


@app.command("calibrate")
@user_errors
def calibrate_command(
    pipeline: Path = typer.Argument(..., help="Trained pipeline directory (training/model-best)."),
    dev: Path = typer.Argument(
        ..., help="Held-out labeled data: a .spacy file (corpus/dev.spacy) or a table."
    ),
    out: Path = typer.Option(..., "--out", help="Folder for the calibrated pipeline (new)."),
    text_column: str = typer.Option("text", "--text-column", help="Text column of a table."),
    label_column: str = typer.Option("label", "--label-column", help="Label column of a table."),
    multi_label_sep: str | None = typer.Option(
        None,
        "--multi-label-sep",
        callback=empty_is_none,
        help="Separator of several labels in one label cell.",
    ),
    threshold: list[str] = typer.Option(
        [],
        "--threshold",
        help="LABEL=VALUE: set a decision threshold instead of tuning it (repeatable).",
    ),
    positive_label: str | None = typer.Option(
        None,
        "--positive-label",
        help="Two exclusive classes: the label the threshold is on (default: the rarer one).",
    ),
    tune: bool = typer.Option(
        True,
        "--tune-thresholds/--no-tune-thresholds",
        help="Tune decision thresholds at the best dev F1 (else only --threshold ones are set).",
    ),
    sheet: str | None = SheetOption,
    encoding: str | None = EncodingOption,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty --out."),
) -> None:
    """Fit a temperature (calibrated probabilities) and decision thresholds on held-out data,
    and write the pipeline with them to --out. `bertcls train` does this on its own."""
    from .calibration import calibrate_saved_pipeline
    from .outputs import check_out_folder, disk_full_errors

    check_out_folder(pipeline, out, overwrite=overwrite)
    with disk_full_errors(out):
        fit = calibrate_saved_pipeline(
            pipeline,
            dev,
            out=out,
            text_column=text_column,
            label_column=label_column,
            multi_label_sep=multi_label_sep,
            sheet=parse_sheet(sheet),
            encoding=encoding,
            thresholds=parse_thresholds(threshold),
            positive_label=positive_label,
            tune=tune,
        )
    typer.echo(fit.format())
    typer.echo(f"Calibrated pipeline: {out}")


def parse_thresholds(values: list[str]) -> dict[str, float]:
    """--threshold LABEL=VALUE options as {label: value}."""
    thresholds = {}
    for value in values:
        label, sep, number = value.rpartition("=")
        try:
            thresholds[label.strip()] = float(number)
        except ValueError:
            sep = ""
        if not sep or not label.strip():
            raise BertclsError(
                f"--threshold {value!r}: write LABEL=VALUE, e.g. --threshold spam=0.4."
            )
    return thresholds


@app.command()
@user_errors
def label(
    pipeline: Path = typer.Argument(..., help="Trained pipeline directory (training/model-best)."),
    file: Path = typer.Argument(..., help="Table to label."),
    text_column: str = typer.Option(..., "--text-column", help="Column holding the texts."),
    out: Path = typer.Option(
        ...,
        "--out",
        help="Output file; its suffix chooses the format. With --engine ray, a name without a "
        "suffix is a folder of Parquet parts.",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Texts per nlp.pipe batch."),
    chunk_size: int = typer.Option(
        2048, "--chunk-size", min=1, help="Rows read and written at a time."
    ),
    sheet: str | None = SheetOption,
    encoding: str | None = EncodingOption,
    device: int = typer.Option(
        -1, "--device", "--gpu-id", min=-1, help="GPU to label on (0 the first); -1 the CPU."
    ),
    mixed_precision: bool = typer.Option(
        False,
        "--mixed-precision",
        help="Run the encoder in float16 autocast (GPU only; sets the model's mixed_precision).",
    ),
    engine: str = typer.Option(
        "local",
        "--engine",
        help="local: label in this process. ray: on the actors of a Ray cluster (CSV, Parquet, "
        "JSON lines; needs pip install -e '.[ray]').",
    ),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="A running Ray cluster (HEAD:6379); default: a local one."
    ),
    ray_workers: int | None = typer.Option(
        None, "--ray-workers", min=1, help="Ray actors that label (default: one per 4 CPUs)."
    ),
) -> None:
    """Add predicted_label, confidence and prob_<label> columns to every row of a table.

    With --engine ray the rows are labeled by the actors of a Ray cluster (a local one, or
    --ray-address), each block of --chunk-size rows by the same code as without it."""
    from .devices import CPU, check_pipeline_device, use_device, use_mixed_precision
    from .labeling import label_file
    from .outputs import (
        check_not_same_file,
        check_output_file,
        check_outside_folder,
        disk_full_errors,
    )
    from .pipelines import load_pipeline

    if engine not in ("local", "ray"):
        raise typer.BadParameter(f"{engine!r} is not one of 'local', 'ray'.", param_hint="--engine")
    if engine == "ray":
        from .ray_labeling import label_file_ray

        if sheet is not None or device != CPU or mixed_precision:
            raise BertclsError(
                "--sheet, --device and --mixed-precision go with the default engine; the Ray "
                "engine reads CSV, Parquet and JSON lines and labels on the workers' CPUs. "
                "Leave them out, or leave out --engine ray."
            )
        with progress_bar("Labeling") as report, disk_full_errors(out):
            summary = label_file_ray(
                pipeline,
                file,
                text_column=text_column,
                out=out,
                overwrite=overwrite,
                encoding=encoding,
                chunk_size=chunk_size,
                batch_size=batch_size,
                address=ray_address,
                workers=ray_workers,
                progress=report,
            )
        typer.echo(summary.format())
        return
    if ray_address is not None or ray_workers is not None:
        raise BertclsError(
            "--ray-address and --ray-workers go with --engine ray: add it, or leave them out."
        )
    check_not_same_file(file, out, option="--out")
    check_outside_folder(pipeline, out, option="--out")
    check_output_file(out, option="--out", example=f"{file.stem}_labeled{file.suffix}")
    if out.exists() and not overwrite:
        raise BertclsError(f"{out} exists already. Pass --overwrite to replace it.")
    if mixed_precision and device == CPU:
        raise BertclsError(
            "--mixed-precision runs the encoder in float16 on a GPU and does nothing on the CPU: "
            "add --device 0 (or another GPU), or leave it out."
        )
    # spaCy's order: choose the device first, then load (the pipeline's weights go there).
    where = use_device(device)
    nlp = load_pipeline(pipeline)
    check_pipeline_device(nlp, device)
    if mixed_precision:
        use_mixed_precision(nlp)
    if device != CPU:
        typer.echo(f"Labeling on {where}{' with mixed precision' if mixed_precision else ''}")
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
    multi_label_sep: str | None = typer.Option(
        None,
        "--multi-label-sep",
        callback=empty_is_none,
        help="Multi-label pipelines: the separator between the labels of one gold cell.",
    ),
) -> None:
    """Score a pipeline against gold labels and write an HTML report (plus JSON and PNG).

    The report has accuracy, per-class precision/recall/F1, the confusion matrix, PR curves,
    a reliability plot (before and after calibration) and the most confident errors. For a
    multi-label pipeline: per-label scores, micro/macro averages, subset accuracy, Hamming
    loss and per-label PR curves.
    """
    from .evaluation import (
        MultiLabelResult,
        check_report_paths,
        format_multilabel_summary,
        format_summary,
        report_paths,
        write_multilabel_report,
        write_report,
    )
    from .evaluation.files import evaluate_file
    from .evaluation.report import EXPLANATIONS_DETAIL
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
        multi_label_sep=multi_label_sep,
    )
    multi_label = isinstance(result, MultiLabelResult)
    title = f"Evaluation of {pipeline.name} on {file.name}"
    # The errors' word attributions go into the errors table, not the report's header.
    explanations = details.pop(EXPLANATIONS_DETAIL, None)
    if multi_label:
        written = write_multilabel_report(
            result, report, json_path=json_path, plots_dir=plots, details=details, title=title
        )
    else:
        written = write_report(
            result,
            report,
            json_path=json_path,
            plots_dir=plots,
            details=details,
            title=title,
            explanations=explanations,
        )
    typer.echo((format_multilabel_summary if multi_label else format_summary)(result))
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
@user_errors
def pretrain(
    data: Path = typer.Argument(
        ...,
        help="Texts: a table (CSV, TSV, Excel, Parquet, JSONL), a .txt file (one text per "
        "line) or a .spacy file from convert (never test.spacy).",
    ),
    text_column: str = typer.Option("text", "--text-column", help="Column holding the texts."),
    extra_unlabeled: list[Path] | None = typer.Option(
        None, "--extra-unlabeled", help="More files of texts (same formats); repeatable."
    ),
    exclude: list[Path] | None = typer.Option(
        None,
        "--exclude",
        help="Files whose texts are never pre-trained on: the test split, e.g. "
        "corpus/test.spacy; repeatable.",
    ),
    out: Path = typer.Option(
        ..., "--out", help="Run folder: checkpoints/ while it runs, encoder/ at the end."
    ),
    encoder: str | None = typer.Option(
        None, "--encoder", help="Encoder to start from (default: the embedded MiniLM-L6)."
    ),
    whole_word: bool = typer.Option(
        False, "--whole-word", help="Mask whole words instead of word pieces (WordPiece only)."
    ),
    max_steps: int = typer.Option(1000, "--max-steps", min=1, help="Steps, head warm-up included."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Texts per step."),
    learn_rate: float = typer.Option(5e-5, "--learn-rate", help="Peak learning rate (AdamW)."),
    head_warmup_steps: int = typer.Option(
        0, "--head-warmup-steps", min=0, help="First steps that train a new MLM head alone."
    ),
    max_length: int = typer.Option(
        128, "--max-length", min=4, help="Word pieces per sequence; longer texts are cut."
    ),
    heldout: float = typer.Option(
        0.05,
        "--heldout",
        parser=split_fraction,
        metavar="FLOAT",
        help="Fraction of the texts held out for the loss/perplexity before and after.",
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of split, batches, masks, dropout."),
    gpu_id: int = typer.Option(
        -1, "--device", "--gpu-id", min=-1, help="GPU to pre-train on (0 the first); -1 the CPU."
    ),
    resume: str = typer.Option(
        "auto", "--resume", help="auto (latest checkpoint in --out), no, or a checkpoint folder."
    ),
    checkpoint_every: int = typer.Option(
        100, "--checkpoint-every", min=1, help="Steps between checkpoints."
    ),
    keep_checkpoints: bool = typer.Option(
        False, "--keep-checkpoints", help="Keep the last checkpoint when the encoder is written."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing OUT/encoder."),
    sheet: str | None = SheetOption,
    encoding: str | None = EncodingOption,
) -> None:
    """Continue masked-language-model training of the encoder on your texts (domain-adaptive
    pre-training) and write OUT/encoder, to use as the encoder of a classifier.

    Ctrl+C stops after the current step with a checkpoint; the same command continues it.
    """
    from .encoder import DEFAULT_ENCODER
    from .pretrain import (
        PretrainSettings,
        check_pretrain_output,
        pretrain_encoder,
        read_pretrain_texts,
        stop_requests,
    )

    files = [data, *(extra_unlabeled or [])]
    check_pretrain_output(out, inputs=[*files, *(exclude or [])], overwrite=overwrite)
    settings = PretrainSettings(
        encoder=encoder or DEFAULT_ENCODER,
        whole_word=whole_word,
        max_steps=max_steps,
        batch_size=batch_size,
        learn_rate=learn_rate,
        head_warmup_steps=head_warmup_steps,
        max_length=max_length,
        heldout=heldout,
        seed=seed,
        gpu_id=gpu_id,
        checkpoint_every=checkpoint_every,
        keep_checkpoints=keep_checkpoints,
    )
    settings.check()
    texts = read_pretrain_texts(
        files,
        text_column=text_column,
        exclude=exclude or [],
        sheet=parse_sheet(sheet),
        encoding=encoding,
    )
    typer.echo(f"Texts to pre-train on:\n{texts.format()}")
    shown = [0.0]

    def report(state) -> None:
        if state.step in (1, state.max_steps) or time.monotonic() - shown[0] >= 15:
            shown[0] = time.monotonic()
            typer.echo(state.format())

    with stop_requests(notice=lambda text: typer.echo(f"\n{text}", err=True)) as stop:
        result = pretrain_encoder(
            texts.texts,
            out,
            settings,
            resume=resume,
            overwrite=overwrite,
            progress=report,
            log=typer.echo,
            should_stop=stop,
        )
    typer.echo(result.format())
    if result.stopped:
        raise typer.Exit(130)


@app.command()
@user_errors
def optimize(
    pipeline: Path = typer.Argument(..., help="Trained pipeline directory (training/model-best)."),
    out: Path = typer.Option(
        ..., "--out", help="Folder for the optimized pipeline (new or empty)."
    ),
    quantize: str = typer.Option(
        "none",
        "--quantize",
        help="none (float32: the pipeline's predictions) or int8 (matrix products in int8: "
        "faster, but some predictions change; measure with `bertcls evaluate`).",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty --out."),
) -> None:
    """Write a copy of a pipeline for fast CPU prediction: its encoder exported to ONNX and
    run by ONNX Runtime (fused, optionally int8). Load it like any pipeline; it predicts only.

    Needs onnxruntime and onnx (the package's 'fast' extra).
    """
    from .optimize import optimize_pipeline

    summary = optimize_pipeline(pipeline, out, quantize=quantize, overwrite=overwrite)
    typer.echo(summary.format())


@app.command()
@user_errors
def audit(
    file: Path = typer.Argument(..., help="Labeled table: CSV, TSV, Excel, Parquet, JSONL."),
    text_column: str = typer.Option(..., "--text-column", help="Column holding the texts."),
    label_column: str = typer.Option(..., "--label-column", help="Column holding the labels."),
    out: Path = typer.Option(..., "--out", help="Output table; its suffix chooses the format."),
    pipeline: Path | None = typer.Option(
        None, "--pipeline", help="A bert_textcat pipeline whose encoder and settings to use."
    ),
    encoder: str | None = typer.Option(
        None,
        "--encoder",
        callback=empty_is_none,
        help="Without --pipeline: hub name or model directory (default: the embedded MiniLM-L6).",
    ),
    folds: int = typer.Option(5, "--folds", min=2, help="Folds of the out-of-fold predictions."),
    head: str = typer.Option(
        AUDIT_HEAD,
        "--head",
        help="Head fitted per fold: mlp or linear (the component's), or logistic (scikit-learn).",
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the folds and the head."),
    sheet: str | None = SheetOption,
    encoding: str | None = EncodingOption,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
) -> None:
    """Find rows whose gold label is probably wrong (out-of-fold predictions + cleanlab).

    Every row is written back with audited, suspect, label_quality (the out-of-fold
    probability of its label), suggested_label and suspect_rank (1 = most likely wrong).
    """
    from .audit import audit_file

    with progress_bar("Encoding") as report:
        summary = audit_file(
            file,
            text_column=text_column,
            label_column=label_column,
            out=out,
            pipeline=pipeline,
            encoder=encoder,
            folds=folds,
            head=head,
            seed=seed,
            sheet=parse_sheet(sheet),
            encoding=encoding,
            overwrite=overwrite,
            progress=report,
        )
    typer.echo(summary.format())


@app.command("explain")
@user_errors
def explain_command(
    pipeline: Path = typer.Argument(..., help="Trained pipeline directory (bert_textcat)."),
    text: str = typer.Argument(..., help="The text to explain."),
    label: str | None = typer.Option(
        None, "--label", callback=empty_is_none, help="Label to explain (default: the predicted)."
    ),
    method: str | None = typer.Option(
        None,
        "--method",
        help="occlusion (each word hidden in turn; the default) or ig (integrated gradients).",
    ),
    top: int = typer.Option(5, "--top", min=1, help="Words to mark and list, each way."),
    n_steps: int | None = typer.Option(
        None, "--n-steps", min=1, help="Integrated-gradients steps (default 32)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print every word's score as JSON."),
) -> None:
    """Why this label: the words of TEXT that pushed the pipeline's probability of a label up
    (marked [like this]) or down, with their scores.

    A score is the change in the label's calibrated log-odds, log(p / (1 - p)), that the word
    makes (occlusion: with the word minus without it).
    """
    from .explain import explain
    from .pipelines import load_pipeline

    # Unset options take explain's defaults, so they are set in one place.
    given = {"method": method, "n_steps": n_steps}
    options = {key: value for key, value in given.items() if value is not None}
    result = explain(load_pipeline(pipeline), text, label, **options)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
        return
    marked = {(t.start, t.end) for t in result.top(top)}
    pieces, at = [], 0
    for token in result.tokens:
        if (token.start, token.end) in marked:
            pieces.append(result.text[at : token.start])
            pieces.append(typer.style(f"[{token.text}]", fg=typer.colors.RED, bold=True))
            at = token.end
    pieces.append(result.text[at:])
    typer.echo(
        f"{result.label} (p = {result.probability:.3f}), method {result.method}, "
        f"{result.seconds:.2f} s\n\n{''.join(pieces)}\n"
    )
    against = sorted((t for t in result.tokens if t.score < 0), key=lambda t: t.score)[:top]
    width = max([len(t.text) for t in result.top(top) + against] + [5])
    for title, rows in ((f"For {result.label}", result.top(top)), ("Against", against)):
        typer.echo(f"{title}:")
        typer.echo(f"  {'word':<{width}}  {'chars':>11}  {'score':>7}")
        for t in rows:
            typer.echo(f"  {t.text:<{width}}  {f'{t.start}-{t.end}':>11}  {t.score:>+7.3f}")
        if not rows:
            typer.echo("  (none)")
    typer.echo("Score: change in the log-odds of the label's probability that the word makes.")


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
