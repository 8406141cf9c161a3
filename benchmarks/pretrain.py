"""Domain-adaptive pre-training on the airline tweets: does it help the classifier?

    .venv/bin/python benchmarks/pretrain.py                 # about 20 min on 2 busy cores (--threads 1)
    .venv/bin/python benchmarks/pretrain.py --configs frozen finetune --seeds 42 7 \
        --train-max-steps 300                               # both recipes, two seeds
    .venv/bin/python benchmarks/pretrain.py --max-steps 20 --head-warmup-steps 5 --no-record

Every step is a ``bertcls`` command run as a user would run it (the exact lines are printed
and recorded), on ../shared/data/airline_tweets/Tweets.csv:

1. ``bertcls convert``: the project's split (seed 42, dev 10 %, test 15 %).
2. ``bertcls pretrain`` of the embedded MiniLM-L6 on the tweets' texts with the test split
   excluded: held-out perplexity (tweets never trained on, 5 % of the rest) before, after the
   head warm-up (the fair "before": the embedded model has no masked-language-model head) and
   after.
3. ``bertcls train configs/<config>.cfg`` (``--configs``; as on disk, but for
   ``--train-max-steps``) for each seed (``--seeds``) on the same splits, with the embedded
   encoder and with the pre-trained one, and ``bertcls evaluate`` of each model-best on
   corpus/test.spacy: test accuracy, macro-F1 and ECE (before/after the temperature scaling
   that ``bertcls train`` fits on dev).

``--control`` adds a second pre-training whose encoder stays frozen for all but its last step:
its perplexity after the head warm-up is the unchanged encoder's with a head trained for as
many steps, the baseline that the pre-trained encoder's "after" must beat (the embedded model's
"before" measures a random head, and 50 head-only steps do not finish fitting it).
``--only-control`` runs that control alone (with the split of step 1).

Generated files go to a temporary directory outside the repository and are deleted at the end;
the figures are appended to benchmarks/RESULTS.md (``--no-record``: not).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS_FILE = ROOT / "benchmarks" / "RESULTS.md"
TWEETS_FILE = ROOT.parent / "shared" / "data" / "airline_tweets" / "Tweets.csv"
CLI = [sys.executable, "-m", "spacy_bertcls"]


def run(step: str, args: list[str], env: dict[str, str], log: list[tuple[str, str, float]]):
    """Run one bertcls command, echo its output, record (step, command line, wall seconds)."""
    shown = "bertcls " + shlex.join(str(a) for a in args)
    print(f"\n$ {shown}", file=sys.stderr, flush=True)
    started = time.monotonic()
    out = subprocess.run(
        [*CLI, *map(str, args)], env=env, cwd=ROOT, text=True, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    seconds = time.monotonic() - started
    print(out.stdout[-4000:], file=sys.stderr, flush=True)
    if out.returncode != 0:
        raise SystemExit(f"{step} failed (exit {out.returncode}); see the output above")
    log.append((step, shown, seconds))
    return out.stdout


def machine() -> str:
    import spacy
    import torch
    import transformers

    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, no GPU used; python {platform.python_version()}, "
        f"torch {torch.__version__}, transformers {transformers.__version__}, "
        f"spacy {spacy.__version__}"
    )


def pretrain(
    name: str, work: Path, corpus: Path, args, head_warmup_steps: int, env, log
) -> tuple[dict, str]:
    """One ``bertcls pretrain`` run; its pretraining.json and the "removed N texts" line."""
    out = work / name
    command = [
        "pretrain", TWEETS_FILE, "--text-column", "text", "--exclude", corpus / "test.spacy",
        "--out", out, "--max-steps", args.max_steps, "--head-warmup-steps", head_warmup_steps,
        "--batch-size", args.batch_size, "--learn-rate", args.learn_rate, "--seed", "42",
    ]  # fmt: skip
    if args.whole_word:
        command.append("--whole-word")
    output = run(name, command, env, log)
    summary = json.loads((out / "encoder" / "pretraining.json").read_text())
    removed = next((line.strip() for line in output.splitlines() if "texts found in" in line), "")
    return summary, removed


def train_scores(
    name: str, config: str, seed: int, encoder: str, work: Path, corpus: Path, env, log, steps
) -> tuple:
    """configs/<config>.cfg trained with ``encoder``: test (accuracy, macro-F1, texts, ECE
    before, ECE after)."""
    folder = work / f"{config}-{len(log)}"
    command = [
        "train", f"configs/{config}.cfg", "--output", folder, "--encoder", encoder,
        "--paths.train", corpus / "train.spacy", "--paths.dev", corpus / "dev.spacy",
        "--system.seed", str(seed),
    ]  # fmt: skip
    if steps:
        command += ["--training.max_steps", str(steps)]
    run(f"train ({config}, {name}, seed {seed})", command, env, log)
    run(f"evaluate ({config}, {name}, seed {seed})", [
        "evaluate", folder / "model-best", corpus / "test.spacy", "--report",
        folder / "report.html", "--json", folder / "metrics.json",
    ], env, log)  # fmt: skip
    metrics = json.loads((folder / "metrics.json").read_text())
    before = (metrics.get("calibration_before") or metrics["calibration"])["ece"]
    return (
        metrics["accuracy"],
        metrics["macro"]["f1"],
        metrics["n_evaluated"],
        before,
        metrics["calibration"]["ece"],
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-steps", type=int, default=250)
    parser.add_argument("--head-warmup-steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learn-rate", type=float, default=5e-5)
    parser.add_argument("--whole-word", action="store_true")
    parser.add_argument(
        "--control",
        action="store_true",
        help="Also run the head-only control: the same steps with the encoder frozen for all "
        "but the last one, so its perplexity after the head warm-up is the unchanged "
        "encoder's with a head trained as long.",
    )
    parser.add_argument(
        "--only-control",
        action="store_true",
        help="Run the control alone (no pre-training proper, no frozen.cfg trainings).",
    )
    parser.add_argument(
        "--configs", nargs="+", default=["frozen"], choices=["frozen", "finetune"],
        help="Training configs compared with and without pre-training.",
    )  # fmt: skip
    parser.add_argument("--seeds", nargs="+", type=int, default=[42], help="Training seeds.")
    parser.add_argument(
        "--train-max-steps", type=int, default=0,
        help="Override training.max_steps of the configs (0: as on disk).",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of the runs.")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--no-record", action="store_true", help="Do not append to RESULTS.md.")
    args = parser.parse_args()
    if not TWEETS_FILE.exists():
        raise SystemExit(f"{TWEETS_FILE} is absent (../shared/data is not beside the checkout)")

    env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    load_at_start = os.getloadavg()
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="bertcls_pretrain_", dir=args.workdir))
    log: list[tuple[str, str, float]] = []
    runs: dict[str, tuple[dict, int]] = {}
    scores: dict[str, tuple] = {}
    try:
        corpus = work / "corpus"
        run("convert", [
            "convert", TWEETS_FILE, "--text-column", "text", "--label-column",
            "airline_sentiment", "--output", corpus, "--dev-size", "0.1", "--test-size", "0.15",
            "--seed", "42",
        ], env, log)  # fmt: skip
        if not args.only_control:
            summary, removed = pretrain(
                "pretraining", work, corpus, args, args.head_warmup_steps, env, log
            )
            runs["pretraining"] = (summary, args.head_warmup_steps)
        if args.control or args.only_control:
            summary, removed = pretrain("control", work, corpus, args, args.max_steps - 1, env, log)
            runs["control"] = (summary, args.max_steps - 1)
        if not args.only_control:
            encoders = (
                ("embedded MiniLM-L6", "sentence-transformers/all-MiniLM-L6-v2"),
                ("pre-trained here", str(work / "pretraining" / "encoder")),
            )
            for config in args.configs:
                for seed in args.seeds:
                    for name, encoder in encoders:
                        scores[(config, seed, name)] = train_scores(
                            name, config, seed, encoder, work, corpus, env, log,
                            args.train_max_steps,
                        )  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)

    seconds = {step: s for step, _, s in log}
    masking = "whole-word" if args.whole_word else "word-piece"
    lines = [
        f"## {datetime.datetime.now():%Y-%m-%d %H:%M} — domain-adaptive pre-training "
        "(benchmarks/pretrain.py)",
        "",
        f"- machine: {machine()}",
        f"- load average (1/5/15 min) at the start: {', '.join(f'{x:.1f}' for x in load_at_start)}"
        f"; at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}",
        "- command: `"
        + shlex.join([".venv/bin/python", "benchmarks/pretrain.py", *sys.argv[1:]])
        + "`",
        f"- wall time: {time.monotonic() - started:,.0f} s",
        f"- pre-training data: {summary['train_texts']:,} distinct tweets "
        f"({summary['train_sequences']:,} sequences) trained on, {summary['heldout_texts']:,} "
        f"held out (perplexity on these); {removed.replace(str(work), '$WORK')}",
        "",
        "| run | steps | batch | masking | ppl before (random head) | ppl after head "
        "warm-up | ppl after | pretrain s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, (found, head_steps) in runs.items():
        label = "MLM on tweets" if name == "pretraining" else "control: encoder frozen"
        lines.append(
            f"| {label} | {found['steps']:,} ({head_steps} head only) | {args.batch_size} | "
            f"{masking} | {found['perplexity_before']:,.1f} | "
            f"{found['perplexity_after_head_warmup']:,.2f} | {found['perplexity_after']:,.2f} | "
            f"{seconds[name]:,.0f} |"
        )
    if scores:
        steps = f", max_steps {args.train_max_steps}" if args.train_max_steps else ""
        lines += [
            "",
            f"| config{steps} | seed | encoder | test accuracy | test macro-F1 | ECE before -> "
            "after scaling | train s |",
            "|---|---|---|---|---|---|---|",
        ]
        for (config, seed, name), (accuracy, macro_f1, _, before, after) in scores.items():
            train_s = seconds[f"train ({config}, {name}, seed {seed})"]
            lines.append(
                f"| {config} | {seed} | {name} | {accuracy:.3f} | {macro_f1:.3f} | "
                f"{before:.3f} -> {after:.3f} | {train_s:,.0f} |"
            )
        texts = next(iter(scores.values()))[2]
        lines += ["", f"- test split: {texts:,} tweets; same split for every row."]
        for config in args.configs:
            deltas = [
                scores[(config, seed, "pre-trained here")][1]
                - scores[(config, seed, "embedded MiniLM-L6")][1]
                for seed in args.seeds
            ]
            shown = ", ".join(f"{d:+.3f}" for d in deltas)
            lines.append(
                f"- {config}: macro-F1 difference (pre-trained - embedded) per seed {shown}; "
                f"mean {sum(deltas) / len(deltas):+.3f}."
            )
    lines += [
        "",
        "- commands, in order ($WORK: a temporary folder; bertcls = .venv/bin/python -m "
        "spacy_bertcls):",
        *(f"  - `{shown.replace(str(work), '$WORK')}` ({s:,.0f} s)" for _, shown, s in log),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_record:
        with RESULTS_FILE.open("a", encoding="utf8") as file:
            file.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
