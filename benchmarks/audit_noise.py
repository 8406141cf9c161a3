"""Does `bertcls audit` find label errors? Inject known ones and count what it finds.

    .venv/bin/python benchmarks/audit_noise.py --out /tmp/audit_results.md

For each data set (the airline tweets, the SMS spam collection) and noise level (5 %, 10 %),
that share of the labeled rows gets a different label, drawn uniformly from the others. The
audit (``spacy_bertcls.audit.audit_frame``: the default encoder with configs/frozen.cfg's model
settings, stratified 5-fold out-of-fold probabilities, cleanlab) then flags rows, and we count:

* cleanlab: precision and recall of its flagged rows against the flipped ones;
* baseline: the same number of rows, those with the lowest out-of-fold probability of their
  (noisy) gold label, i.e. without confident learning;
* AUROC of the label quality for telling flipped rows from the others (ranking quality).

The "clean" data is real labeling, with label errors of its own: a flagged row that was not
flipped counts as a false positive here although it may be a real error. The top rows flagged on
the clean data are listed to read. Features are computed once per data set (through the disk
feature store, so reruns encode nothing); each noise level and head only fits heads again.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from spacy_bertcls.audit import SUGGESTED_LABEL, audit_frame, feature_model

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
DATASETS = {
    "tweets": ("airline_tweets/Tweets.csv", "text", "airline_sentiment"),
    "sms": ("sms_spam/SMSSpamCollection.tsv", "SMS", "Label"),
}


def read(name: str) -> tuple[pd.DataFrame, str, str]:
    file, text, label = DATASETS[name]
    path = DATA / file
    if path.suffix == ".tsv":
        frame = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, dtype=str)
    else:
        frame = pd.read_csv(path, dtype=str)
    return frame, text, label


def flip_labels(
    frame: pd.DataFrame, label: str, rows: np.ndarray, fraction: float, seed: int
) -> tuple[pd.DataFrame, np.ndarray]:
    """A copy with ``fraction`` of ``rows`` given another label (uniform over the others)."""
    rng = np.random.default_rng(seed)
    names = sorted(frame.loc[rows, label].unique())
    flipped = np.sort(rng.choice(rows, size=round(fraction * len(rows)), replace=False))
    noisy = frame.copy()
    for i in flipped:
        others = [name for name in names if name != frame.at[i, label]]
        noisy.at[i, label] = others[rng.integers(len(others))]
    return noisy, flipped


def precision_recall(flagged: np.ndarray, flipped: np.ndarray) -> tuple[float, float]:
    found = len(np.intersect1d(flagged, flipped))
    return found / max(len(flagged), 1), found / max(len(flipped), 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--noise", nargs="+", type=float, default=[0.05, 0.10])
    parser.add_argument("--heads", nargs="+", default=["logistic", "mlp"])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--top", type=int, default=10, help="Rows flagged on clean data shown.")
    parser.add_argument("--limit", type=int, default=0, help="First rows only (a quick check).")
    parser.add_argument("--out", type=Path, default=Path("/tmp/audit_results.md"))
    args = parser.parse_args(argv)

    model, head_settings = feature_model()
    lines = [
        "| data | noise | head | flipped | flagged | cleanlab P | cleanlab R | baseline P "
        "| baseline R | AUROC | fit s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    tops = []
    for name in args.datasets:
        frame, text, label = read(name)
        if args.limit:
            frame = frame.head(args.limit)
        started = time.perf_counter()
        clean, summary = audit_frame(
            frame,
            text_column=text,
            label_column=label,
            model=model,
            head_settings=head_settings,
            folds=args.folds,
            head=args.heads[0],
            seed=args.seed,
        )
        print(f"{name}: clean audit {time.perf_counter() - started:.0f} s", flush=True)
        print(summary.format(), flush=True)
        rows = np.flatnonzero(clean["audited"].to_numpy())
        top = clean[clean["suspect"]].sort_values("suspect_rank").head(args.top)
        tops.append((name, summary, top, text, label))
        for fraction in args.noise:
            noisy, flipped = flip_labels(frame, label, rows, fraction, args.seed)
            for head in args.heads:
                started = time.perf_counter()
                result, summary = audit_frame(
                    noisy,
                    text_column=text,
                    label_column=label,
                    model=model,
                    head_settings=head_settings,
                    folds=args.folds,
                    head=head,
                    seed=args.seed,
                )
                seconds = time.perf_counter() - started
                flagged = np.flatnonzero(result["suspect"].to_numpy())
                quality = result["label_quality"].to_numpy()
                ranked = rows[np.argsort(quality[rows], kind="stable")]
                baseline = ranked[: len(flagged)]
                p, r = precision_recall(flagged, flipped)
                bp, br = precision_recall(baseline, flipped)
                is_flipped = np.isin(rows, flipped)
                auroc = roc_auc_score(is_flipped, -quality[rows])
                row = (
                    f"| {name} | {fraction:.0%} | {head} | {len(flipped)} | {len(flagged)} | "
                    f"{p:.3f} | {r:.3f} | {bp:.3f} | {br:.3f} | {auroc:.3f} | "
                    f"{summary.fit_seconds:.0f} |"
                )
                lines.append(row)
                print(row, f"({seconds:.0f} s in all)", flush=True)

    report = ["## Finding injected label errors", "", *lines, ""]
    for name, summary, top, text, label in tops:
        report += [
            f"## Top {len(top)} rows flagged on the clean {name} data ({summary.n_suspects} "
            f"flagged of {summary.rows_audited}, head {summary.head})",
            "",
            "| rank | text | gold | suggested | label quality |",
            "|---|---|---|---|---|",
        ]
        for _, item in top.iterrows():
            shown = " ".join(str(item[text]).split()).replace("|", "\\|")
            shown = shown if len(shown) <= 140 else shown[:137] + "..."
            report.append(
                f"| {item['suspect_rank']} | {shown} | {item[label]} | "
                f"{item[SUGGESTED_LABEL]} | {item['label_quality']:.3f} |"
            )
        report.append("")
    text = "\n".join(report)
    print(text)
    args.out.write_text(text + "\n", encoding="utf8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
