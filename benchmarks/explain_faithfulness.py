"""Faithfulness of word attributions (spacy_bertcls.explain): delete the top words, and watch
the predicted label's probability.

For each text, both methods ("occlusion", "ig") explain the predicted label; then the k = 1..5
words with the highest scores are deleted from the text (spaCy tokens, whitespace kept as the
text had it) and the pipeline predicts the shortened text. A faithful explanation names the
words the prediction rests on, so deleting them lowers the label's probability much more than
deleting k words at random (the baseline: the mean over 3 random draws per text and k). This is
ERASER's "comprehensiveness" (DeYoung et al. 2020). Also reported: the drop in the label's
calibrated log-odds (what both methods attribute; it does not saturate near p = 1) and the
time per explanation.

    .venv/bin/python benchmarks/explain_faithfulness.py \\
        --data sms /tmp/optwork/sms_training/model-best /tmp/optwork/sms_corpus/test.spacy \\
        --data tweets /tmp/optwork/tweets_training/model-best /tmp/optwork/tweets_corpus/test.spacy \\
        [--texts 100] [--ig-steps 32] [--output /tmp/explain_results.md]

Texts: a ``.spacy`` file (``bertcls convert``'s test split, texts the pipeline was not trained
on), or the raw SMS TSV / tweets CSV of ../shared/data. The sample is stratified by gold label
(as equal a share per label as the file has), seed 0, and keeps texts of at least 6 words so
that deleting 5 leaves some. Without ``--data``, the two frozen pipelines above are used.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
from spacy.tokens import Doc, DocBin

from spacy_bertcls.explain import DEFAULT_STEPS, METHODS, explain
from spacy_bertcls.pipelines import find_textcat, load_pipeline, pipeline_labels

KS = (1, 2, 3, 4, 5)
RANDOM_DRAWS = 3
MIN_WORDS = 6
DEFAULT_DATA = [
    (
        "sms",
        "/tmp/optwork/sms_training/model-best",
        "/tmp/optwork/sms_corpus/test.spacy",
    ),
    (
        "tweets",
        "/tmp/optwork/tweets_training/model-best",
        "/tmp/optwork/tweets_corpus/test.spacy",
    ),
]


def read_texts(nlp, path: Path) -> tuple[list[str], list[str]]:
    """Texts and gold labels of a .spacy file, the SMS TSV or the tweets CSV."""
    if path.suffix == ".spacy":
        docs = list(DocBin().from_disk(path).get_docs(nlp.vocab))
        gold = [max(doc.cats, key=doc.cats.get) if doc.cats else "" for doc in docs]
        return [doc.text for doc in docs], gold
    if path.suffix == ".tsv":
        table = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE)
        return table.iloc[:, 1].astype(str).tolist(), table.iloc[:, 0].astype(str).tolist()
    table = pd.read_csv(path)
    return table["text"].astype(str).tolist(), table["airline_sentiment"].astype(str).tolist()


def sample(nlp, texts: list[str], gold: list[str], n: int, seed: int = 0) -> list[int]:
    """Up to ``n`` indices of texts with at least MIN_WORDS words, stratified by gold label."""
    rng = np.random.default_rng(seed)
    usable = [i for i, text in enumerate(texts) if len(words(nlp.make_doc(text))) >= MIN_WORDS]
    by_label: dict[str, list[int]] = {}
    for i in rng.permutation(usable):
        by_label.setdefault(gold[i], []).append(int(i))
    chosen: list[int] = []
    # Round robin over the labels: equal shares while every label has texts left.
    while len(chosen) < n and any(by_label.values()):
        for rows in by_label.values():
            if rows and len(chosen) < n:
                chosen.append(rows.pop())
    return sorted(chosen)


def words(doc: Doc) -> list[int]:
    """The indices of the tokens that can be deleted: all but whitespace."""
    return [token.i for token in doc if not token.is_space]


def without(doc: Doc, deleted: set[int]) -> str:
    return "".join(token.text_with_ws for token in doc if token.i not in deleted)


def label_scores(nlp, texts: list[str], label: str) -> tuple[np.ndarray, np.ndarray]:
    """The calibrated probability and log-odds of ``label`` for each text, from the head's
    logits in float64: float32 probabilities of a confident pipeline round to 1.0, and their
    log-odds to infinity. An emptied text gets p = 0 (it would get no label at all)."""
    _, component = find_textcat(nlp)
    j = list(component.labels).index(label)
    kept = [i for i, text in enumerate(texts) if text.strip()]
    logits = component.logits([nlp.make_doc(texts[i]) for i in kept]).astype(np.float64)
    if component.temperature:
        logits = logits / np.asarray(component.temperature)
    if component.cfg["exclusive_classes"]:
        others = np.delete(logits, j, axis=1)
        top = others.max(axis=1, keepdims=True)
        lo = logits[:, j] - (top[:, 0] + np.log(np.exp(others - top).sum(axis=1)))
    else:
        lo = logits[:, j]
    p = np.zeros(len(texts))
    odds = np.full(len(texts), -50.0)
    p[kept] = 1 / (1 + np.exp(-lo))
    odds[kept] = lo
    return p, odds


def measure(name: str, pipeline: Path, path: Path, n_texts: int, ig_steps: int) -> dict:
    nlp = load_pipeline(pipeline)
    labels = pipeline_labels(nlp)
    texts, gold = read_texts(nlp, path)
    rows = sample(nlp, texts, gold, n_texts)
    rng = np.random.default_rng(1)
    drops = {m: np.zeros((len(rows), len(KS))) for m in (*METHODS, "random")}
    lo_drops = {m: np.zeros((len(rows), len(KS))) for m in drops}
    seconds: dict[str, list[float]] = {m: [] for m in METHODS}
    started = time.perf_counter()
    for r, i in enumerate(rows):
        doc = nlp.make_doc(texts[i])
        candidates = words(doc)
        variants: dict[str, list[str]] = {}
        label = None
        for method in METHODS:
            steps = ig_steps if method == "ig" else DEFAULT_STEPS
            explanation = explain(nlp, doc, label, method=method, n_steps=steps)
            label = explanation.label
            seconds[method].append(explanation.seconds)
            order = sorted(candidates, key=lambda t: -explanation.tokens[t].score)
            variants[method] = [without(doc, set(order[:k])) for k in KS]
        variants["random"] = [
            without(doc, set(rng.permutation(candidates)[:k].tolist()))
            for _ in range(RANDOM_DRAWS)
            for k in KS
        ]
        shortened = [doc.text] + [text for method in drops for text in variants[method]]
        probs, odds = label_scores(nlp, shortened, label)
        at = 1
        for method in drops:
            n = len(variants[method])
            drops[method][r] = probs[0] - probs[at : at + n].reshape(-1, len(KS)).mean(axis=0)
            lo_drops[method][r] = odds[0] - odds[at : at + n].reshape(-1, len(KS)).mean(axis=0)
            at += n
        if (r + 1) % 10 == 0:
            elapsed = time.perf_counter() - started
            print(f"  {name}: {r + 1}/{len(rows)} texts, {elapsed:.0f} s", flush=True)
    return {
        "name": name,
        "pipeline": str(pipeline),
        "texts": str(path),
        "n": len(rows),
        "labels": {label: sum(gold[i] == label for i in rows) for label in labels},
        "drop": {m: d.mean(axis=0) for m, d in drops.items()},
        "log_odds_drop": {m: d.mean(axis=0) for m, d in lo_drops.items()},
        "seconds": {m: (float(np.mean(s)), float(np.median(s))) for m, s in seconds.items()},
        "ig_steps": ig_steps,
        "wall": time.perf_counter() - started,
    }


def table(results: list[dict]) -> str:
    lines = [
        "| data (texts) | method | "
        + " | ".join(f"Δp k={k}" for k in KS)
        + " | Δp mean | Δlog-odds k=1 / k=5 | s per explanation (mean / median) |",
        "|---|---|" + "---|" * len(KS) + "---|---|---|",
    ]
    for res in results:
        for method in (*METHODS, "random"):
            drop = res["drop"][method]
            lo = res["log_odds_drop"][method]
            if method in res["seconds"]:
                mean, median = res["seconds"][method]
                time_cell = f"{mean:.2f} / {median:.2f}"
            else:
                time_cell = "–"
            shown = f"{method} ({res['ig_steps']} steps)" if method == "ig" else method
            lines.append(
                f"| {res['name']} ({res['n']}) | {shown} | "
                + " | ".join(f"{d:.3f}" for d in drop)
                + f" | {drop.mean():.3f} | {lo[0]:.2f} / {lo[-1]:.2f} | {time_cell} |"
            )
    return "\n".join(lines)


def summary(results: list[dict]) -> list[str]:
    """One sentence per data set, from the numbers."""
    sentences = []
    for res in results:
        d = {m: res["drop"][m].mean() for m in res["drop"]}
        t = res["seconds"]
        ratio = d["occlusion"] / d["ig"] if d["ig"] > 0 else math.inf
        sentences.append(
            f"- {res['name']}: mean drop over k=1..5 {d['occlusion']:.3f} (occlusion), "
            f"{d['ig']:.3f} (ig), {d['random']:.3f} (random words); occlusion/ig = "
            f"{ratio:.1f}x; time per explanation {t['occlusion'][0]:.2f} s (occlusion) vs "
            f"{t['ig'][0]:.2f} s (ig). Labels in the sample: "
            + ", ".join(f"{k} {v}" for k, v in res["labels"].items())
            + f". Wall time {res['wall']:.0f} s."
        )
    return sentences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        nargs=3,
        action="append",
        metavar=("NAME", "PIPELINE", "TEXTS"),
        help="A data set: its name, a trained pipeline, and a .spacy / .tsv / .csv of texts.",
    )
    parser.add_argument("--texts", type=int, default=100, help="Texts per data set.")
    parser.add_argument("--ig-steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--output", type=Path, default=Path("/tmp/explain_results.md"))
    args = parser.parse_args()
    results = []
    for name, pipeline, path in args.data or DEFAULT_DATA:
        print(f"{name}: {pipeline} on {path}", flush=True)
        results.append(measure(name, Path(pipeline), Path(path), args.texts, args.ig_steps))
    markdown = table(results)
    print(markdown)
    print("\n".join(summary(results)))
    today = datetime.date.today().isoformat()
    args.output.write_text(
        f"## Why this label: faithfulness of word attributions ({today})\n\n"
        "`benchmarks/explain_faithfulness.py`: the top-k attributed words of each text (k = "
        "1..5) are deleted and the pipeline predicts again; Δp is the mean drop of the "
        "predicted label's probability (higher: the explanation found words the prediction "
        f"rests on), against deleting k random words ({RANDOM_DRAWS} draws). CPU, 2 cores "
        "shared with other jobs: times are indicative.\n\n"
        + markdown
        + "\n\n"
        + "\n".join(summary(results))
        + "\n",
        encoding="utf-8",
    )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
