"""Calibration and decision thresholds on real data: ECE and F1 before and after, on test.

For each trained pipeline and its corpus (dev.spacy, test.spacy as `bertcls convert` writes
them): the temperature and thresholds are fitted on dev afresh (in memory, whatever the pipeline
holds already; `spacy_bertcls.calibration.calibrate`), then the test split is predicted once and
scored with T = 1 and the argmax ("before") and with the fitted T and thresholds ("after").

    .venv/bin/python benchmarks/calibration.py \\
        --run "SMS spam,frozen,PIPELINE_DIR,CORPUS_DIR" --run "tweets,finetune,...,..." \\
        [--multi-label-sep ";"]   # for corpora made with convert --multi-label-sep

Prints a Markdown table (and appends it to benchmarks/RESULTS.md with --record). ECE: 15
equal-width bins of the top label's probability (exclusive classes) or of every (row, label)
probability (multi-label), as `bertcls evaluate` reports it.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

from spacy_bertcls.calibration import (
    calibrate_from_file,
    expected_calibration_error,
    gold_matrix,
    negative_log_likelihood,
    uncalibrated,
)
from spacy_bertcls.decisions import DecisionRule, decision_rule
from spacy_bertcls.evaluation.files import read_gold
from spacy_bertcls.labeling import predict_proba
from spacy_bertcls.pipelines import load_pipeline

RESULTS = Path(__file__).with_name("RESULTS.md")


def measure(data: str, config: str, pipeline: Path, corpus: Path) -> dict:
    nlp = load_pipeline(pipeline)
    fit = calibrate_from_file(nlp, corpus / "dev.spacy")
    texts, cats, _ = read_gold(nlp, corpus / "test.spacy")
    rule = decision_rule(nlp)
    component = nlp.get_pipe(nlp.pipe_names[-1])
    exclusive = rule.exclusive
    after = predict_proba(nlp, texts).astype(np.float64)
    before = uncalibrated(
        after, component.temperature, exclusive=exclusive, bias=component.logit_bias
    )
    truth, known, usable = gold_matrix(cats, list(rule.labels), exclusive=exclusive)
    rows = np.flatnonzero(usable)
    truth, known, before, after = truth[rows], known[rows], before[rows], after[rows]
    argmax = DecisionRule.make(rule.labels, exclusive=exclusive)

    def f1(probs: np.ndarray, decide: DecisionRule) -> tuple[float, float | None]:
        if exclusive:
            gold = truth.argmax(axis=1)
            pred = decide.predicted_index(probs)
            macro = f1_score(gold, pred, average="macro")
            positive = rule.positive_label
            pos = None
            if positive is not None:
                j = rule.labels.index(positive)
                pos = f1_score(gold == j, pred == j)
            return macro, pos
        sets = decide.predicted_sets(probs)
        return f1_score(truth, sets, average="macro", zero_division=0), f1_score(
            truth, sets, average="micro", zero_division=0
        )

    macro_before, other_before = f1(before, argmax if exclusive else _default(rule))
    macro_after, other_after = f1(after, rule)
    return {
        "data": data,
        "config": config,
        "test rows": len(rows),
        "T": ", ".join(f"{t:.2f}" for t in fit.temperature),
        "thresholds": ", ".join(f"{k} {v:.2f}" for k, v in fit.thresholds.items()) or "argmax",
        "ECE before": expected_calibration_error(before, truth, known, exclusive=exclusive),
        "ECE after": expected_calibration_error(after, truth, known, exclusive=exclusive),
        "NLL before": negative_log_likelihood(before, truth, known, exclusive=exclusive),
        "NLL after": negative_log_likelihood(after, truth, known, exclusive=exclusive),
        "macro-F1 before": macro_before,
        "macro-F1 after": macro_after,
        "other F1 before": other_before,
        "other F1 after": other_after,
        "dev ECE": f"{fit.ece_before:.3f} -> {fit.ece_after:.3f}",
    }


def _default(rule: DecisionRule) -> DecisionRule:
    return DecisionRule.make(rule.labels, exclusive=False)


def table(rows: list[dict]) -> str:
    head = (
        "| data | config | test rows | T | thresholds (dev) | ECE before | ECE after | "
        "NLL before | NLL after | macro-F1 before | macro-F1 after | pos./micro F1 before | "
        "after | dev ECE |"
    )
    lines = [head, "|" + "---|" * 14]
    for r in rows:

        def num(x):
            return "—" if x is None else f"{x:.3f}"

        lines.append(
            f"| {r['data']} | {r['config']} | {r['test rows']:,} | {r['T']} | {r['thresholds']} "
            f"| {num(r['ECE before'])} | {num(r['ECE after'])} | {num(r['NLL before'])} | "
            f"{num(r['NLL after'])} | {num(r['macro-F1 before'])} | {num(r['macro-F1 after'])} "
            f"| {num(r['other F1 before'])} | {num(r['other F1 after'])} | {r['dev ECE']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="append", required=True, help="DATA,CONFIG,PIPE,CORPUS")
    parser.add_argument("--record", action="store_true", help="Append to benchmarks/RESULTS.md")
    args = parser.parse_args()
    rows = []
    for run in args.run:
        data, config, pipeline, corpus = run.split(",")
        rows.append(measure(data, config, Path(pipeline), Path(corpus)))
        print(table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    text = table(rows)
    print(text)
    if args.record:
        stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
        with RESULTS.open("a", encoding="utf-8") as out:
            out.write(
                f"\n## Calibration and decision thresholds ({stamp}, benchmarks/calibration.py)\n\n"
                "Fitted on dev, measured on test; before = T 1 and the argmax (multi-label: 0.5), "
                "after = the fitted temperature and the dev-tuned thresholds. pos./micro F1: the "
                "positive label's F1 (two classes) or micro F1 (multi-label).\n\n"
                f"{text}\n"
            )


if __name__ == "__main__":
    main()
