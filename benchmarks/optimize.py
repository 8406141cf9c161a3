"""`bertcls optimize` against the float32 PyTorch pipeline: speed, macro-F1 and flipped labels.

    .venv/bin/python benchmarks/optimize.py                       # trains both pipelines first
    .venv/bin/python benchmarks/optimize.py --tweets-pipeline training/tweets/model-best \\
        --sms-pipeline training/sms/model-best --rows 2000 --rounds 2

For the airline tweets and SMS spam (../shared/data): the table is split as `bertcls convert`
splits it (dev 0.1, test 0.15, seed 42; the project's split); without a given pipeline,
configs/frozen.cfg is trained on it with `bertcls train` (--max-epochs, default 8). Then every
variant is made from that pipeline with `spacy_bertcls.optimize.optimize_pipeline`: ONNX Runtime
float32, the `--quantize int8` recipe, and the other int8 recipes compared with it. All of them
label the test split (at most --rows rows) with `nlp.pipe`: each round cuts the rows into
--chunks chunks and runs every variant on a chunk before the next one, in an order that rotates
from chunk to chunk, so that all see the same load of a shared machine. A variant's speed is
the median over --rounds rounds of the float32 PyTorch pipeline's seconds divided by its own
(ratios, not seconds, say something on a shared machine).
Reported per variant: rows/s, that ratio, macro-F1 against the gold labels, the share of rows
whose predicted label differs from the float32 pipeline's ("flipped"), and the largest
probability difference. The run is appended to benchmarks/RESULTS.md (unless --no-record).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import spacy
import torch
from sklearn.metrics import f1_score
from spacy.tokens import DocBin

from spacy_bertcls.convert import convert_table
from spacy_bertcls.labeling import predict_proba
from spacy_bertcls.optimize import INT8, Int8Recipe, optimize_pipeline
from spacy_bertcls.pipelines import load_pipeline, pipeline_labels

ROOT = Path(__file__).resolve().parents[1]
RESULTS_FILE = ROOT / "benchmarks" / "RESULTS.md"
DATA = ROOT.parent / "shared" / "data"
DATASETS = {
    "tweets": (DATA / "airline_tweets" / "Tweets.csv", "text", "airline_sentiment"),
    "sms": (DATA / "sms_spam" / "SMSSpamCollection.tsv", "SMS", "Label"),
}
TARGET_SPEEDUP = 2.0
TARGET_F1_DROP = 0.005  # macro-F1 within half a point of float32
TARGET_FLIPPED = 0.01  # at most 1 % of the predicted labels change

#: Variants: name -> (quantize, int8 recipe). "int8" is what `bertcls optimize` writes.
VARIANTS: dict[str, tuple[str, Int8Recipe | None]] = {
    "onnx-fp32": ("none", None),
    "int8": ("int8", INT8),
    # ONNX Runtime's defaults: every supported operator (embeddings too), one scale per
    # matrix, 8-bit weights.
    "int8-ort-defaults": (
        "int8",
        Int8Recipe(op_types=(), per_channel=False, reduce_range=False),
    ),
    "int8-per-tensor": ("int8", Int8Recipe(per_channel=False, reduce_range=True)),
    "int8-8bit-weights": ("int8", Int8Recipe(per_channel=True, reduce_range=False)),
    # Selective: the feed-forward output projections (the widest input range) stay float32.
    "int8-keep-ffn-out": (
        "int8",
        Int8Recipe(exclude_patterns=(r"layer\.\d+/output/dense/MatMul",)),
    ),
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Row:
    variant: str
    rows_per_s: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    macro_f1: float = 0.0
    flipped: float = 0.0
    max_prob_diff: float = 0.0
    size_mb: float = 0.0


def prepare(name: str, work: Path, pipeline: Path | None, max_epochs: int) -> tuple[Path, Path]:
    """The split (corpus/) and the pipeline to optimize (trained here unless given)."""
    file, text_column, label_column = DATASETS[name]
    corpus = work / f"{name}_corpus"
    convert_table(
        file,
        text_column=text_column,
        label_column=label_column,
        out_dir=corpus,
        dev_size=0.1,
        test_size=0.15,
        seed=42,
    )
    if pipeline is not None:
        return corpus, pipeline
    output = work / f"{name}_training"
    command = [
        sys.executable,
        "-m",
        "spacy_bertcls",
        "train",
        str(ROOT / "configs" / "frozen.cfg"),
        "--output",
        str(output),
        "--paths.train",
        str(corpus / "train.spacy"),
        "--paths.dev",
        str(corpus / "dev.spacy"),
        "--training.max_epochs",
        str(max_epochs),
    ]
    log(f"{name}: training configs/frozen.cfg ({max_epochs} epochs)")
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return corpus, output / "model-best"


def test_rows(corpus: Path, limit: int) -> tuple[list[str], list[str]]:
    """Texts and gold labels of the test split (the first ``limit``)."""
    nlp = spacy.blank("en")
    docs = list(DocBin().from_disk(corpus / "test.spacy").get_docs(nlp.vocab))[:limit]
    gold = [max(doc.cats, key=doc.cats.get) for doc in docs]
    return [doc.text for doc in docs], gold


def pipe_seconds(nlp: spacy.Language, texts: list[str], batch_size: int) -> float:
    gc.collect()
    start = time.perf_counter()
    for _ in nlp.pipe(texts, batch_size=batch_size):
        pass
    return time.perf_counter() - start


def timed_rounds(
    pipelines: dict[str, spacy.Language], texts: list[str], args: argparse.Namespace, name: str
) -> dict[str, list[float]]:
    """Seconds per round of each pipeline on all ``texts``.

    The load of a shared machine changes within seconds, so each round cuts the texts into
    --chunks chunks and runs every pipeline on a chunk before the next chunk, in an order that
    rotates from chunk to chunk: each pipeline sees the same conditions on average.
    """
    keys = list(pipelines)
    size = -(-len(texts) // args.chunks)
    chunks = [texts[i : i + size] for i in range(0, len(texts), size)]
    for key in keys:  # warm-up: first-call allocations and thread pools
        pipe_seconds(pipelines[key], chunks[0][:64], args.batch_size)
    seconds: dict[str, list[float]] = {key: [] for key in keys}
    for round_ in range(args.rounds):
        spent = dict.fromkeys(keys, 0.0)
        for i, chunk in enumerate(chunks):
            turn = (i + round_) % len(keys)
            for key in keys[turn:] + keys[:turn]:
                spent[key] += pipe_seconds(pipelines[key], chunk, args.batch_size)
        for key in keys:
            seconds[key].append(spent[key])
        rates = ", ".join(f"{k} {len(texts) / v:.0f}" for k, v in spent.items())
        log(f"{name}: round {round_ + 1} rows/s: {rates}")
    return seconds


def run_dataset(name: str, args: argparse.Namespace, work: Path) -> list[Row]:
    pipeline_arg = getattr(args, f"{name}_pipeline")
    corpus, pipeline = prepare(name, work, pipeline_arg, args.max_epochs)
    texts, gold = test_rows(corpus, args.rows)
    log(f"{name}: {len(texts)} test rows; making the variants of {pipeline}")
    pipelines = {"fp32 (PyTorch)": load_pipeline(pipeline)}
    sizes = {"fp32 (PyTorch)": folder_mb(pipeline, "*.safetensors")}
    for variant in args.variants:
        quantize, recipe = VARIANTS[variant]
        out = work / f"{name}_{variant}"
        optimize_pipeline(pipeline, out, quantize=quantize, recipe=recipe or INT8, overwrite=True)
        pipelines[variant] = load_pipeline(out)
        sizes[variant] = folder_mb(out, "*.onnx")
    labels = pipeline_labels(pipelines["fp32 (PyTorch)"])
    rows = {key: Row(key, size_mb=sizes[key]) for key in pipelines}
    reference = None
    for key, nlp in pipelines.items():
        probs = predict_proba(nlp, texts, batch_size=args.batch_size)
        predicted = [labels[i] for i in probs.argmax(axis=1)]
        rows[key].macro_f1 = f1_score(gold, predicted, average="macro")
        if reference is None:
            reference = (probs, predicted)
        rows[key].flipped = float(np.mean([a != b for a, b in zip(predicted, reference[1])]))
        rows[key].max_prob_diff = float(np.abs(probs - reference[0]).max())
    seconds = timed_rounds(pipelines, texts, args, name)
    base = seconds["fp32 (PyTorch)"]
    for key, spent in seconds.items():
        rows[key].rows_per_s = [len(texts) / s for s in spent]
        rows[key].ratios = [b / s for b, s in zip(base, spent)]
    return list(rows.values())


def folder_mb(folder: Path, pattern: str) -> float:
    return sum(f.stat().st_size for f in Path(folder).rglob(pattern)) / 1e6


def table(name: str, rows: list[Row], n_rows: int) -> str:
    base = rows[0]
    lines = [
        f"#### {name}: {n_rows:,} test rows",
        "",
        "| variant | encoder MB | rows/s | × fp32 | macro-F1 | Δ F1 | flipped | max Δp |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = statistics.median(row.ratios)
        lines.append(
            f"| {row.variant} | {row.size_mb:,.0f} | {statistics.median(row.rows_per_s):,.0f} | "
            f"{ratio:.2f} | {row.macro_f1:.4f} | {100 * (row.macro_f1 - base.macro_f1):+.2f} | "
            f"{100 * row.flipped:.2f} % | {row.max_prob_diff:.3f} |"
        )
    return "\n".join(lines) + "\n"


def verdict(results: dict[str, list[Row]]) -> list[str]:
    """Per variant: the targets it misses, by data set, or that it meets them all."""
    lines = []
    variants = [row.variant for row in next(iter(results.values()))[1:]]
    for variant in variants:
        missed = []
        for name, rows in results.items():
            base = rows[0]
            row = next(r for r in rows if r.variant == variant)
            ratio = statistics.median(row.ratios)
            drop = base.macro_f1 - row.macro_f1
            if ratio < TARGET_SPEEDUP:
                missed.append(f"{name} speed {ratio:.2f}×")
            if drop > TARGET_F1_DROP:
                missed.append(f"{name} macro-F1 {-100 * drop:+.2f} point")
            if row.flipped > TARGET_FLIPPED:
                missed.append(f"{name} flipped {100 * row.flipped:.2f} %")
        status = "meets every target" if not missed else "misses: " + ", ".join(missed)
        lines.append(f"- {variant}: {status}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tweets-pipeline", type=Path, help="Trained tweets pipeline.")
    parser.add_argument("--sms-pipeline", type=Path, help="Trained SMS pipeline.")
    parser.add_argument("--data", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--rows", type=int, default=2000, help="Test rows per data set (most).")
    parser.add_argument("--rounds", type=int, default=2, help="Timed rounds.")
    parser.add_argument("--chunks", type=int, default=10, help="Chunks per round (alternated).")
    parser.add_argument("--batch-size", type=int, default=256, help="nlp.pipe batch size.")
    parser.add_argument("--max-epochs", type=int, default=8, help="Epochs when training here.")
    parser.add_argument("--threads", type=int, default=0, help="torch/ONNX Runtime threads.")
    parser.add_argument("--workdir", type=Path, help="Keep the generated files here.")
    parser.add_argument("--no-record", action="store_true", help="Do not append to RESULTS.md.")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load_start = os.getloadavg()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bertcls_optimize_") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        results, sizes = {}, {}
        for name in args.data:
            results[name] = run_dataset(name, args, work)
            sizes[name] = min(args.rows, len(test_rows(work / f"{name}_corpus", args.rows)[0]))
    tables = [table(name, rows, sizes[name]) for name, rows in results.items()]
    lines = [
        f"## {datetime.datetime.now():%Y-%m-%d %H:%M} — bertcls optimize (benchmarks/optimize.py)",
        "",
        f"- machine: {machine()}",
        f"- load average at the start: {', '.join(f'{x:.1f}' for x in load_start)}; at the "
        f"end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}",
        f"- command: `.venv/bin/python benchmarks/optimize.py {' '.join(sys.argv[1:])}`",
        f"- wall time: {time.monotonic() - started:,.0f} s; {args.rounds} rounds, nlp.pipe "
        f"batch {args.batch_size}",
        f"- targets: ≥ {TARGET_SPEEDUP:g}× fp32 rows/s, macro-F1 within "
        f"{100 * TARGET_F1_DROP:g} point, ≤ {100 * TARGET_FLIPPED:g} % flipped",
        "",
        *verdict(results),
        "",
        *tables,
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_record:
        with open(RESULTS_FILE, "a", encoding="utf8") as sink:
            sink.write("\n" + text + "\n")
    return 0


def machine() -> str:
    cpu = platform.processor() or "CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    import onnxruntime

    return (
        f"{cpu}, {os.cpu_count()} cores; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), onnxruntime {onnxruntime.__version__}, "
        f"spacy {spacy.__version__}"
    )


if __name__ == "__main__":
    sys.exit(main())
