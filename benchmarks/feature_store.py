"""A second frozen training on the same texts: the disk feature store warm against cold.

    .venv/bin/python benchmarks/feature_store.py --train corpus/train.spacy --dev corpus/dev.spacy

Runs `bertcls train configs/frozen.cfg` twice on the same corpus, seed and config, with a new,
empty store (``SPACY_BERTCLS_FEATURE_CACHE`` set to a temporary folder): the first run encodes
every text and fills the store, the second finds every text there. Prints the wall time, peak
RSS (``/usr/bin/time``) and the best dev macro-F1 of each, and the speed-up. The in-memory
cache already serves a training's later epochs, so the store saves the first epoch's encoding
(and the dev evaluations' before any epoch has run).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def train(work: Path, name: str, args, env) -> tuple[float, int, float]:
    """(seconds, peak RSS in MB, best dev macro-F1) of one training."""
    out = work / name
    rss_file = work / f"{name}.rss"
    command = [
        "/usr/bin/time", "-f", "%M", "-o", str(rss_file),
        sys.executable, "-m", "spacy_bertcls", "train", str(ROOT / "configs" / "frozen.cfg"),
        "--output", str(out), "--paths.train", str(args.train), "--paths.dev", str(args.dev),
        "--system.seed", "0", "--no-calibrate", *args.extra,
    ]  # fmt: skip
    print("$", " ".join(command[5:]), flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    meta = json.loads((out / "model-best" / "meta.json").read_text())
    score = meta["performance"].get("cats_macro_f", float("nan"))
    return seconds, int(rss_file.read_text().split()[-1]) // 1024, score


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--dev", type=Path, required=True)
    parser.add_argument("extra", nargs="*", help="More `bertcls train` overrides.")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bertcls_store_"))
    env = dict(os.environ, SPACY_BERTCLS_FEATURE_CACHE=str(work / "features"))
    try:
        cold = train(work, "cold", args, env)
        warm = train(work, "warm", args, env)
        store_mb = sum(f.stat().st_size for f in (work / "features").rglob("*")) / 2**20
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("| run | wall s | peak RSS MB | best dev macro-F1 |")
    print("|---|---|---|---|")
    for name, (seconds, rss, score) in (("cold store", cold), ("warm store", warm)):
        print(f"| {name} | {seconds:,.0f} | {rss:,} | {score:.4f} |")
    print(f"\nspeed-up warm/cold: {cold[0] / warm[0]:.2f}x; store size {store_mb:,.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
