"""Resident memory of a training run, epoch by epoch (one run per process, so peaks are clean).

    .venv/bin/python benchmarks/training_memory.py --config frozen --rows 14640 --epochs 4

Trains ``configs/<config>.cfg``'s pipeline (its optimizer, batch size and model settings; the
real embedded MiniLM) on the airline tweets, repeated up to ``--rows`` rows, with a plain
``nlp.update`` loop over shuffled minibatches, and prints one JSON line per epoch: steps done,
resident memory now, and the process's peak so far (``ru_maxrss``). ``benchmarks/run.py --only
training_memory`` runs it for the README's cases and makes the table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import spacy
from spacy.training import Example
from spacy.util import load_config, minibatch, registry

ROOT = Path(__file__).resolve().parents[1]
TWEETS_FILE = ROOT.parent / "shared" / "data" / "airline_tweets" / "Tweets.csv"


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", choices=["frozen", "finetune"], default="frozen")
    parser.add_argument("--rows", type=int, default=14_640)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-steps", type=int, default=0, help="Stop each epoch after this.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    frame = pd.read_csv(TWEETS_FILE).dropna(subset=["text"])
    repeats = -(-args.rows // len(frame))
    frame = pd.concat([frame] * repeats, ignore_index=True).head(args.rows)
    texts = frame["text"].astype(str).tolist()
    gold = frame["airline_sentiment"].astype(str).tolist()
    names = sorted(set(gold))

    config = load_config(ROOT / "configs" / f"{args.config}.cfg")
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    examples = [
        Example.from_dict(nlp.make_doc(text), {"cats": {n: float(n == g) for n in names}})
        for text, g in zip(texts, gold)
    ]
    spacy.util.fix_random_seed(args.seed)
    optimizer = registry.resolve({"o": config.interpolate()["training"]["optimizer"]})["o"]
    batch_size = int(config["training"]["batcher"]["size"])
    print(
        json.dumps(
            {
                "epoch": 0,
                "steps": 0,
                "rss_mib": psutil.Process().memory_info().rss / 2**20,
                "peak_mib": peak_mib(),
                "seconds": 0.0,
            }
        ),
        flush=True,
    )
    nlp.initialize(lambda: examples, sgd=optimizer)
    rng = random.Random(args.seed)
    steps = 0
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        rng.shuffle(examples)
        for k, batch in enumerate(minibatch(examples, size=batch_size)):
            if args.max_steps and k >= args.max_steps:
                break
            nlp.update(batch, sgd=optimizer)
            steps += 1
        line = {
            "epoch": epoch,
            "steps": steps,
            "rss_mib": psutil.Process().memory_info().rss / 2**20,
            "peak_mib": peak_mib(),
            "seconds": time.perf_counter() - start,
        }
        print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
