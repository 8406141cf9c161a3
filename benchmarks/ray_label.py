"""Labeling with Ray Data (`bertcls label --engine ray`) against the single-process engine.

Two measurements, side by side in one run, on one machine:

1. speed: rows/s of `label_file` (what `bertcls label` runs by default) and of
   `label_file_ray` on a local Ray cluster with 1 and with 2 workers, on the same CSV. Two
   figures per run: the whole call's wall time (for Ray: starting the cluster, the actors and
   their pipelines included) and the steady rate (rows/s over the second half of the rows
   written, so without the start-up).
2. memory: peak RSS of the driver process alone (`bertcls label --engine ray` as a
   subprocess; the raylet, GCS and the actors are other processes and not counted) for two
   file sizes, writing one CSV file that the driver streams. Flat in the file size means the
   driver never holds the file.

The pipeline is bert_textcat on a tiny random BERT (spacy_bertcls.testing.make_tiny_bert; 2
layers, width 32), its head trained for a few steps: it measures the engine (reading, moving
rows, writing), not a real encoder's speed; with a real encoder the model dominates and the
workers' share grows. Texts are the airline tweets of ../shared/data, repeated, or generated
sentences when that file is absent. Ray's workers run at nice 0 here (Ray's default is 15,
which on a machine shared with other work starves them against the single process). Needs
`pip install -e '.[ray,bench]'` (ray, psutil).

    .venv/bin/python benchmarks/ray_label.py                # 100,000 and 1,000,000 rows: about
                                                            # 15 min on 2 busy cores
    .venv/bin/python benchmarks/ray_label.py --threads 1 --memory-rows 50000,500000   # ~10 min

Prints Markdown tables to stdout and progress to stderr.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# With --threads, this process runs as Ray runs its workers: OpenMP and the tokenizers without
# thread pools of their own. Set before torch and tokenizers load, which read them once; on a
# busy 2-core machine their idle threads made the single process about half as fast.
if "--threads" in sys.argv:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pandas as pd
import psutil
import spacy
import torch
from spacy.training import Example

from spacy_bertcls.labeling import LabelProgress, label_file
from spacy_bertcls.pipelines import load_pipeline
from spacy_bertcls.ray_labeling import label_file_ray
from spacy_bertcls.tables import read_table
from spacy_bertcls.testing import make_tiny_bert

ROOT = Path(__file__).resolve().parents[1]
TWEETS_FILE = ROOT.parent / "shared" / "data" / "airline_tweets" / "Tweets.csv"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def texts_and_labels() -> tuple[list[str], list[str]]:
    if TWEETS_FILE.exists():
        tweets = pd.read_csv(TWEETS_FILE, usecols=["text", "airline_sentiment"])
        return tweets["text"].tolist(), tweets["airline_sentiment"].tolist()
    rng = random.Random(0)
    words = "the flight was late again great crew thanks lost my bag seat delay good".split()
    texts = [" ".join(rng.choices(words, k=rng.randint(5, 25))) for _ in range(5000)]
    return texts, [("positive" if "great" in t else "negative") for t in texts]


def make_pipeline(work: Path, texts: list[str], labels: list[str]) -> Path:
    """bert_textcat on a tiny random BERT, its head trained for a few steps."""
    encoder = make_tiny_bert(work / "tiny_bert", texts[:2000])
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "bert_textcat",
        config={
            "freeze_encoder": True,
            "model": {"encoder": str(encoder), "max_length": 64, "stride": 32},
        },
    )
    names = sorted(set(labels))
    examples = [
        Example.from_dict(nlp.make_doc(t), {"cats": {n: float(n == g) for n in names}})
        for t, g in zip(texts[:300], labels[:300])
    ]
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(3):
        nlp.update(examples, sgd=optimizer)
    nlp.to_disk(work / "pipeline")
    return work / "pipeline"


def make_csv(path: Path, texts: list[str], rows: int) -> Path:
    """`rows` rows (id, text), the texts repeated as often as needed; written in parts."""
    with open(path, "w", newline="", encoding="utf8") as sink:
        for start in range(0, rows, 100_000):
            n = min(100_000, rows - start)
            part = pd.DataFrame(
                {
                    "id": range(start, start + n),
                    "text": [texts[i % len(texts)] for i in range(start, start + n)],
                }
            )
            part.to_csv(sink, index=False, header=start == 0)
    return path


class Rate:
    """The steady rate from progress reports: rows/s over the second half of the rows, so
    that neither the start-up nor blocks done before the driver took the first one count."""

    def __init__(self) -> None:
        self.reports: list[tuple[float, int]] = []

    def __call__(self, state: LabelProgress) -> None:
        self.reports.append((time.perf_counter(), state.rows_done))

    def steady(self) -> float:
        half = self.reports[-1][1] / 2
        t0, r0 = next((t, r) for t, r in self.reports if r >= half)
        t1, r1 = self.reports[-1]
        return (r1 - r0) / (t1 - t0) if t1 > t0 else float("nan")


def speed(
    pipeline: Path, table: Path, work: Path, workers: list[int], chunk: int, threads: int | None
) -> list[list]:
    rows = []
    if threads:
        torch.set_num_threads(threads)
    rate = Rate()
    nlp = load_pipeline(pipeline)
    log("speed: label_file (one process)")
    started = time.perf_counter()
    summary = label_file(
        nlp, table, text_column="text", out=work / "single.csv", chunk_size=chunk, progress=rate
    )
    wall = time.perf_counter() - started
    rows.append(
        ["label_file (one process)", summary.rows, wall, summary.rows / wall, rate.steady()]
    )
    expected = read_table(work / "single.csv")
    del nlp
    for n in workers:
        log(f"speed: label_file_ray, local cluster, {n} worker(s)")
        rate = Rate()
        started = time.perf_counter()
        summary = label_file_ray(
            pipeline,
            table,
            text_column="text",
            out=work / f"ray_{n}.csv",
            workers=n,
            chunk_size=chunk,
            threads=threads,
            progress=rate,
        )
        wall = time.perf_counter() - started
        same_rows(read_table(work / f"ray_{n}.csv"), expected)
        label = f"Ray local, {n} worker{'s' if n > 1 else ''}"
        rows.append([label, summary.rows, wall, summary.rows / wall, rate.steady()])
    return rows


def same_rows(labeled: pd.DataFrame, expected: pd.DataFrame) -> None:
    """The same rows and labels; probabilities equal up to float32 rounding (the workers run
    torch with another number of threads, which may change the last digit)."""
    numbers = [c for c in expected.columns if c == "confidence" or c.startswith("prob_")]
    pd.testing.assert_frame_equal(labeled.drop(columns=numbers), expected.drop(columns=numbers))
    pd.testing.assert_frame_equal(
        labeled[numbers].astype(float), expected[numbers].astype(float), rtol=1e-5
    )


def driver_peak(pipeline: Path, table: Path, out: Path, workers: int, log_file: Path):
    """Run `bertcls label --engine ray` as a subprocess: wall s, peak RSS and peak RssAnon of
    that process alone (psutil and /proc, polled every 50 ms)."""
    command = [
        sys.executable, "-m", "spacy_bertcls", "label", str(pipeline), str(table),
        "--text-column", "text", "--out", str(out), "--overwrite",
        "--engine", "ray", "--ray-workers", str(workers),
    ]  # fmt: skip
    started = time.perf_counter()
    with open(log_file, "w") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        watched = psutil.Process(proc.pid)
        peak = peak_anon = 0
        while proc.poll() is None:
            try:
                peak = max(peak, watched.memory_info().rss, status_kib(proc.pid, "VmHWM") * 1024)
                peak_anon = max(peak_anon, status_kib(proc.pid, "RssAnon") * 1024)
            except (psutil.Error, OSError):
                pass
            time.sleep(0.05)
    wall = time.perf_counter() - started
    output = log_file.read_text(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"bertcls label failed ({proc.returncode}):\n{output[-3000:]}")
    return wall, peak, peak_anon


def status_kib(pid: int, field: str) -> int:
    """A field of /proc/PID/status in KiB (Linux; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def table(header: list[str], rows: list[list]) -> str:
    def cell(value) -> str:
        if isinstance(value, float):
            return f"{value:,.1f}"
        if isinstance(value, int):
            return f"{value:,}"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed-rows", type=int, default=20_000)
    parser.add_argument("--workers", default="1,2", help="Ray workers to compare, e.g. 1,2")
    parser.add_argument("--memory-rows", default="100000,1000000")
    parser.add_argument("--memory-workers", type=int, default=2)
    parser.add_argument("--chunk-size", type=int, default=512, help="rows per block/chunk")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads of the single process and of each Ray worker (default: each "
        "engine's own: all cores / the cores shared out among the workers); on a busy machine "
        "1 is much faster",
    )
    args = parser.parse_args()
    # Ray starts its workers at nice 15; on a machine shared with other work that starves them
    # against the single process (nice 0). Both engines compete alike at nice 0.
    os.environ.setdefault("RAY_worker_niceness", "0")
    workers = [int(n) for n in args.workers.split(",")]
    memory_rows = [int(n) for n in args.memory_rows.split(",") if n]  # "": no memory runs
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ray-bench-") as tmp:
        work = Path(tmp)
        texts, labels = texts_and_labels()
        log("building the tiny pipeline")
        pipeline = make_pipeline(work, texts, labels)
        source = make_csv(work / f"speed_{args.speed_rows}.csv", texts, args.speed_rows)
        speed_rows = speed(pipeline, source, work, workers, args.chunk_size, args.threads)
        memory = []
        for n in memory_rows:
            log(f"memory: writing a {n:,}-row CSV")
            big = make_csv(work / f"rows_{n}.csv", texts, n)
            log(f"memory: bertcls label --engine ray on {n:,} rows")
            out = work / f"labeled_{n}.csv"
            wall, peak, anon = driver_peak(
                pipeline, big, out, args.memory_workers, work / f"memory_{n}.log"
            )
            size = big.stat().st_size / 2**20
            memory.append([n, size, peak / 2**20, anon / 2**20, wall, n / wall])
            big.unlink()
            out.unlink()
    cores = os.cpu_count()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    import ray

    print(f"## Ray Data labeling ({time.strftime('%Y-%m-%d')})\n")
    print(
        f"Machine: {platform.processor() or platform.machine()}, {cores} cores, load average "
        f"{load} at the end; ray {ray.__version__}, Python {platform.python_version()}. "
        f"Tiny random BERT pipeline (2 layers, width 32); speed: --chunk-size "
        f"{args.chunk_size}, --threads {args.threads or 'default'} (OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', '-')}, TOKENIZERS_PARALLELISM="
        f"{os.environ.get('TOKENIZERS_PARALLELISM', '-')}); Ray workers at nice "
        f"{os.environ['RAY_worker_niceness']}. "
        f"Whole run {time.perf_counter() - started:,.0f} s.\n"
    )
    print(f"### Speed: one process vs Ray local, {args.speed_rows:,}-row CSV\n")
    print(
        table(
            ["engine", "rows", "wall s", "rows/s (wall)", "rows/s (steady)"],
            speed_rows,
        )
    )
    base = speed_rows[0]
    print(
        "\nwall: the whole call (Ray: cluster, actors and their pipeline loads included); "
        "steady: over the second half of the rows written. Relative to one process (steady): "
        + ", ".join(f"{row[0]} {row[4] / base[4]:.2f}x" for row in speed_rows[1:])
        + ". Every Ray output equals label_file's, row for row (pandas assert_frame_equal).\n"
    )
    if not memory:
        return 0
    print(f"### Driver memory, --engine ray --ray-workers {args.memory_workers}, one CSV out\n")
    print(
        table(
            ["rows", "input MiB", "peak RSS MiB", "peak RssAnon MiB", "wall s", "rows/s"],
            memory,
        )
    )
    if len(memory) > 1:
        print(
            f"\nPeak driver RSS at {memory[-1][0]:,} rows / at {memory[0][0]:,} rows: "
            f"{memory[-1][2] / memory[0][2]:.3f} (RssAnon: {memory[-1][3] / memory[0][3]:.3f})."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
