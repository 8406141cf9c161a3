"""Build a real multi-label data set from the airline tweets: sentiment plus complaint reason.

    .venv/bin/python benchmarks/multilabel_tweets.py --out /tmp/tweets_multilabel.csv
    .venv/bin/bertcls convert /tmp/tweets_multilabel.csv --text-column text \\
        --label-column labels --multi-label-sep ";" --output /tmp/tweets_multilabel_corpus

Reads ../shared/data/airline_tweets/Tweets.csv (relative to the project root; ``--data``
to read another copy) and writes a CSV with two columns: ``text`` (the tweet) and ``labels``,
the tweet's ``airline_sentiment`` and, for a negative tweet, its ``negativereason``, joined by
";" (e.g. "negative;Late Flight"), the separator ``bertcls convert --multi-label-sep ";"``
reads. Every row has exactly one sentiment label; every negative row has one reason too, so
a row has one or two labels. The label counts are printed.

What is changed on the way, and why:

* Reasons on non-negative tweets are dropped (19 rows, e.g. "best flight" on a positive tweet,
  "it was okay" on a neutral one), the rows keep their sentiment. They are left over from the
  annotation form, 9 free-text values on at most 10 rows each, not complaint reasons.
* "Damaged Luggage" (74 rows, under the ~100 that a label needs to leave a dozen rows in a
  10 % test split) and "Lost Luggage" (724) are merged into "Lost or Damaged Luggage": the
  nearest group, and one an airline handles with the same desk. Every other reason has at
  least 178 rows and is kept as written ("longlines" included).
* "Can't Tell" (1,190 rows) is kept as a label: the annotators judged the tweet a complaint
  but could not name its reason, which is an answer a model can learn to give too.

The data are only read; the CSV goes where ``--out`` says, which should be outside the
repository (the tweets are CC BY-NC-SA 4.0 third-party data and are not committed here).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
TWEETS = ROOT.parent / "shared" / "data" / "airline_tweets" / "Tweets.csv"
SEP = ";"
SENTIMENT_COLUMN = "airline_sentiment"
REASON_COLUMN = "negativereason"
# Reasons are kept on tweets of this sentiment only; elsewhere they are dropped.
NEGATIVE = "negative"
# Reasons under ~100 rows, merged with their nearest group (see the module docstring).
MERGED_REASONS = {
    "Damaged Luggage": "Lost or Damaged Luggage",
    "Lost Luggage": "Lost or Damaged Luggage",
}


def build(tweets: pd.DataFrame) -> pd.DataFrame:
    """The multi-label table of the tweets: columns ``text`` and ``labels``, one row per tweet.

    tweets (pd.DataFrame): Tweets.csv read with every cell as text ("" where empty).
    RETURNS (pd.DataFrame): Same rows in the same order; ``labels`` joined by ";".
    """
    missing = [c for c in ("text", SENTIMENT_COLUMN, REASON_COLUMN) if c not in tweets.columns]
    if missing:
        raise SystemExit(
            f"The tweets table lacks the columns {missing}; pass the Twitter US Airline "
            f"Sentiment Tweets.csv (columns: {list(tweets.columns)[:15]})."
        )
    labels = []
    for row, (sentiment, reason) in enumerate(
        zip(tweets[SENTIMENT_COLUMN], tweets[REASON_COLUMN], strict=True)
    ):
        sentiment, reason = sentiment.strip(), reason.strip()
        if not sentiment:
            raise SystemExit(f"Data row {row + 1} has no {SENTIMENT_COLUMN}; the file is damaged.")
        row_labels = [sentiment]
        if reason and sentiment == NEGATIVE:
            row_labels.append(MERGED_REASONS.get(reason, reason))
        labels.append(SEP.join(row_labels))
    return pd.DataFrame({"text": tweets["text"].to_numpy(), "labels": labels})


def label_counts(labels: pd.Series) -> Counter[str]:
    """Rows per label of a ``labels`` column (a row counts once under each of its labels)."""
    return Counter(label for cell in labels for label in cell.split(SEP))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="CSV file to write.")
    parser.add_argument("--data", type=Path, default=TWEETS, help=f"Tweets.csv (default {TWEETS})")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        raise SystemExit(f"{args.data} is absent: this needs ../shared/data beside the checkout.")
    # Every cell as text, and no "NA"/"null" tweet read as missing.
    tweets = pd.read_csv(args.data, dtype=str, keep_default_na=False)
    table = build(tweets)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False, encoding="utf-8")

    counts = label_counts(table["labels"])
    sentiments = set(tweets[SENTIMENT_COLUMN].str.strip())
    n_two = int(table["labels"].str.contains(SEP, regex=False).sum())
    print(f"Wrote {len(table):,} rows to {args.out} ({n_two:,} with a reason, two labels).")
    print(f"{'label':<28} {'rows':>6}")
    for group in (sentiments, set(counts) - sentiments):
        for label, n in sorted(((k, counts[k]) for k in group), key=lambda item: -item[1]):
            print(f"{label:<28} {n:>6,}")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
