"""Tests for multi-label evaluation (spacy_bertcls.evaluation.multilabel) on hand-made data
whose right answers are known, and for the builder of the multi-label airline tweets."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from sklearn.metrics import f1_score, hamming_loss

from spacy_bertcls.errors import BertclsError
from spacy_bertcls.evaluation import (
    MultiLabelResult,
    evaluate_multilabel,
    format_multilabel_summary,
    multilabel_html_section,
    multilabel_report_paths,
    plot_multilabel_pr_curves,
    plot_multilabel_reliability,
    write_multilabel_report,
)

LABELS = ["negative", "late", "luggage"]
ROOT = Path(__file__).resolve().parents[1]


def probs_for(predicted: list[list[str]], labels: list[str] = LABELS, on: float = 0.9):
    """Probabilities that predict exactly `predicted` at threshold 0.5 (others get 0.1)."""
    probs = np.full((len(predicted), len(labels)), 1.0 - on)
    for row, row_labels in enumerate(predicted):
        for label in row_labels:
            probs[row, labels.index(label)] = on
    return probs


GOLD = [["negative", "late"], ["negative", "luggage"], [], ["late"]]


def test_perfect_prediction():
    result = evaluate_multilabel(GOLD, probs_for(GOLD), LABELS, [0.5, 0.5, 0.5])
    assert isinstance(result, MultiLabelResult)
    assert result.subset_accuracy == 1.0
    assert result.hamming_loss == 0.0
    for average in (result.micro, result.macro, result.weighted):
        assert average == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert result.most_confident_errors == []
    assert result.n_rows == result.n_scored == 4
    assert {label: s["support"] for label, s in result.per_label.items()} == {
        "negative": 2,
        "late": 2,
        "luggage": 1,
    }
    assert result.per_label["luggage"]["predicted"] == 1
    assert all(auc == pytest.approx(1.0) for auc in result.roc_auc.values())
    assert result.macro_average_precision == pytest.approx(1.0)
    assert set(result.pr_curves) == set(LABELS)
    assert result.pr_curves["late"].n_positive == 2


def test_one_flipped_label_gives_known_scores():
    predicted = [list(row) for row in GOLD]
    predicted[2] = ["luggage"]  # one extra label: 1 wrong decision of 4 rows x 3 labels
    result = evaluate_multilabel(GOLD, probs_for(predicted), LABELS, 0.5)
    assert result.hamming_loss == pytest.approx(1 / 12)
    assert result.subset_accuracy == pytest.approx(3 / 4)
    assert result.per_label["luggage"] == {
        "precision": 0.5,
        "recall": 1.0,
        "f1": pytest.approx(2 / 3),
        "support": 1,
        "predicted": 2,
    }
    assert result.per_label["negative"]["f1"] == 1.0
    # Micro: 5 gold labels, 6 predicted, 5 right.
    assert result.micro["precision"] == pytest.approx(5 / 6)
    assert result.micro["recall"] == 1.0
    assert result.macro["precision"] == pytest.approx((1 + 1 + 0.5) / 3)
    (error,) = result.most_confident_errors
    assert error["row"] == 2 and error["row_number"] == 4  # header is row 1
    assert error["gold"] == [] and error["predicted"] == ["luggage"]
    assert error["extra"] == ["luggage"] and error["missed"] == []
    assert error["label"] == "luggage"
    assert error["probability"] == pytest.approx(0.9)
    assert error["confidence"] == pytest.approx(0.9)
    assert result.label_rows("luggage", "fp") == [2]
    assert result.label_rows("luggage", "tp") == [1]
    assert result.label_rows("late", "fn") == []


def test_matches_scikit_learn_on_random_data():
    rng = np.random.default_rng(0)
    y = (rng.random((200, 3)) < [0.6, 0.3, 0.1]).astype(int)
    probs = np.clip(0.5 * y + 0.6 * rng.random((200, 3)), 0, 1)
    thresholds = np.array([0.5, 0.4, 0.6])
    gold = [[LABELS[j] for j in np.flatnonzero(row)] for row in y]
    result = evaluate_multilabel(gold, probs, LABELS, thresholds)
    y_pred = (probs >= thresholds).astype(int)
    assert result.micro["f1"] == pytest.approx(f1_score(y, y_pred, average="micro"))
    assert result.macro["f1"] == pytest.approx(f1_score(y, y_pred, average="macro"))
    assert result.hamming_loss == pytest.approx(hamming_loss(y, y_pred))
    np.testing.assert_array_equal(result.pred_indicator, y_pred)
    np.testing.assert_array_equal(result.gold_indicator, y)
    # Pooled calibration counts every (row, label) pair once.
    assert result.calibration.count.sum() == y.size
    confidences = [e["confidence"] for e in result.most_confident_errors]
    assert confidences == sorted(confidences, reverse=True)
    assert len(confidences) == 20  # n_errors default


def test_thresholds_change_decisions():
    gold = [["negative"], ["late"], ["negative", "late"]]
    probs = np.array([[0.6, 0.2, 0.0], [0.3, 0.7, 0.0], [0.8, 0.65, 0.0]])
    low = evaluate_multilabel(gold, probs, LABELS, [0.5, 0.5, 0.5])
    assert low.subset_accuracy == 1.0
    high = evaluate_multilabel(gold, probs, LABELS, [0.5, 0.7, 0.5])
    # 0.7 >= 0.7 is still predicted; 0.65 is not.
    assert high.per_label["late"]["predicted"] == 1
    assert high.per_label["late"]["recall"] == 0.5
    assert high.thresholds == {"negative": 0.5, "late": 0.7, "luggage": 0.5}
    (error,) = high.most_confident_errors
    assert error["missed"] == ["late"] and error["confidence"] == pytest.approx(0.35)
    # One number is every label's threshold.
    same = evaluate_multilabel(gold, probs, LABELS, 0.5)
    assert same.to_dict() == low.to_dict()


def test_missing_gold_rows_are_skipped_and_counted():
    gold = [["negative"], None, float("nan"), [], ["late"]]
    probs = probs_for([["negative"], ["late"], ["late"], [], ["late"]])
    result = evaluate_multilabel(gold, probs, LABELS, 0.5)
    assert result.n_missing_gold == 2
    assert result.n_scored == 3  # the empty list is an annotation: no label applies
    assert result.subset_accuracy == 1.0
    assert result.missing_gold_rows.tolist() == [1, 2]
    assert result.row_index.tolist() == [0, 3, 4]
    assert any("no gold label" in note for note in result.notes())


def test_no_prediction_rows_are_skipped_and_counted():
    probs = probs_for(GOLD)
    probs[1] = np.nan
    result = evaluate_multilabel(GOLD, probs, LABELS, 0.5)
    assert result.n_no_prediction == 1
    assert result.no_prediction_rows.tolist() == [1]
    assert result.n_scored == 3
    assert result.per_label["luggage"]["support"] == 0
    assert "luggage" not in result.averaged_labels
    assert any("no prediction" in note for note in result.notes())


def test_unknown_gold_labels_are_reported_not_scored():
    gold = [["negative", "Damaged Luggage"], ["late"], ["Damaged Luggage", "wifi"], ["negative"]]
    probs = probs_for([["negative"], ["late"], [], ["negative"]])
    result = evaluate_multilabel(gold, probs, LABELS, 0.5)
    assert result.unknown_gold == {"Damaged Luggage": 2, "wifi": 1}
    assert result.n_unknown_gold == 2  # rows, not labels
    assert result.n_scored == 2
    assert result.unknown_gold_rows["Damaged Luggage"].tolist() == [0, 2]
    note = next(n for n in result.notes() if "does not know" in n)
    assert "'Damaged Luggage' (2)" in note
    summary = format_multilabel_summary(result)
    assert "unknown gold: 2" in summary
    section = multilabel_html_section(result)
    assert "Damaged Luggage" in section and "2, 4" in section  # its rows, numbered from 2


def test_gold_from_doc_cats_and_label_cells():
    gold = [
        {"negative": 1.0, "late": 1.0, "luggage": 0.0},
        {},  # a blank gold cell (files.read_gold)
        [" late ", "late", ""],  # spaces, repeats and blanks are ignored
    ]
    probs = probs_for([["negative", "late"], [], ["late"]])
    result = evaluate_multilabel(gold, probs, LABELS, 0.5)
    assert result.n_missing_gold == 1
    assert result.subset_accuracy == 1.0
    assert result.gold_indicator.tolist() == [[1, 1, 0], [0, 1, 0]]


def test_bad_inputs_raise_with_a_message():
    probs = probs_for(GOLD)
    with pytest.raises(BertclsError, match="split multi-label"):
        evaluate_multilabel(["negative;late", [], [], []], probs, LABELS, 0.5)
    with pytest.raises(BertclsError, match="one threshold per label"):
        evaluate_multilabel(GOLD, probs, LABELS, [0.5, 0.5])
    with pytest.raises(BertclsError, match="'late' is not a probability"):
        evaluate_multilabel(GOLD, probs, LABELS, [0.5, 1.5, 0.5])
    with pytest.raises(BertclsError, match="one gold list per predicted row"):
        evaluate_multilabel(GOLD[:3], probs, LABELS, 0.5)
    with pytest.raises(BertclsError, match="No row can be scored"):
        evaluate_multilabel([None, ["x"], None, None], probs, LABELS, 0.5)
    with pytest.raises(BertclsError, match="n_errors"):
        evaluate_multilabel(GOLD, probs, LABELS, 0.5, n_errors=-1)
    result = evaluate_multilabel(GOLD, probs, LABELS, 0.5)
    with pytest.raises(BertclsError, match="'z'"):
        result.label_rows("z", "fp")


def test_to_dict_is_json_round_trip():
    rng = np.random.default_rng(1)
    y = (rng.random((50, 3)) < [0.5, 0.3, 0.0]).astype(int)  # "luggage" never gold
    probs = rng.random((50, 3))
    probs[7] = np.nan
    gold = [[LABELS[j] for j in np.flatnonzero(row)] for row in y]
    gold[3] = None
    texts = [f"tweet {i}" for i in range(50)]
    result = evaluate_multilabel(gold, probs, LABELS, [0.5, 0.5, 0.9], texts=texts)
    data = result.to_dict()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert data["multi_label"] is True
    assert data["n_scored"] == 48
    assert data["roc_auc"]["luggage"] is None
    assert "luggage" not in data["pr_curves"]
    assert data["thresholds"]["luggage"] == 0.9
    assert all("row" not in error for error in data["most_confident_errors"])
    assert data["most_confident_errors"][0]["text"].startswith("tweet ")
    assert data["calibration"]["n_bins"] == result.calibration.n_bins


def test_text_summary_has_the_per_label_table():
    predicted = [list(row) for row in GOLD]
    predicted[3] = []
    result = evaluate_multilabel(GOLD, probs_for(predicted), LABELS, [0.5, 0.4, 0.5])
    summary = format_multilabel_summary(result)
    lines = summary.splitlines()
    assert lines[0] == "Scored 4 of 4 rows (missing gold: 0, unknown gold: 0, no prediction: 0)"
    header = next(line for line in lines if "precision" in line)
    assert header.split() == [
        "threshold",
        "precision",
        "recall",
        "f1-score",
        "support",
        "predicted",
    ]
    late = next(line for line in lines if line.split()[:1] == ["late"])
    assert late.split() == ["late", "0.400", "1.000", "0.500", "0.667", "2", "1"]
    for name in ("micro avg", "macro avg", "weighted avg"):
        assert any(line.strip().startswith(name) for line in lines)
    assert "Subset accuracy: 0.750    Hamming loss: 0.083" in summary


def test_html_report_and_files(tmp_path):
    texts = ["late again <b>", "bag lost", "fine", "delayed 3h"]
    predicted = [["negative"], ["negative", "luggage"], [], ["late"]]
    result = evaluate_multilabel(GOLD, probs_for(predicted), LABELS, 0.5, texts=texts)
    written = write_multilabel_report(
        result,
        tmp_path / "report.html",
        json_path=tmp_path / "out" / "metrics.json",
        plots_dir=tmp_path / "plots",
        details={"pipeline": Path("training/model-best")},
    )
    assert written == multilabel_report_paths(
        tmp_path / "report.html", tmp_path / "out" / "metrics.json", tmp_path / "plots"
    )
    assert set(written) == {"html", "json", "pr_curves", "reliability"}
    for path in written.values():
        assert path.stat().st_size > 0
    page = written["html"].read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<h2>Per-label scores</h2>" in page
    for label in LABELS:
        assert f'<td class="label">{label}</td>' in page
    assert "micro avg" in page and "training/model-best" in page
    assert "late again &lt;b&gt;" in page  # texts are escaped
    assert page.count("data:image/png;base64,") == 2
    saved = json.loads(written["json"].read_text(encoding="utf-8"))
    assert saved["details"] == {"pipeline": "training/model-best"}
    assert saved["per_label"] == result.to_dict()["per_label"]


def test_plots_are_figures():
    gold = [["negative"], ["negative", "late"], []]
    probs = np.array([[0.9, 0.2, 0.1], [0.7, 0.6, 0.3], [0.2, 0.1, 0.4]])
    result = evaluate_multilabel(gold, probs, LABELS, 0.5)
    curves = plot_multilabel_pr_curves(result)
    assert isinstance(curves, Figure)
    titles = [ax.get_title() for ax in curves.axes if ax.get_visible()]
    assert len(titles) == 3 and titles[2] == "luggage"  # no gold rows: a panel saying so
    reliability = plot_multilabel_reliability(result)
    assert isinstance(reliability, Figure)
    assert "Share" in reliability.axes[0].get_ylabel()


# --- the builder of the multi-label tweets (benchmarks/multilabel_tweets.py) ----------------


def _builder():
    spec = importlib.util.spec_from_file_location(
        "multilabel_tweets", ROOT / "benchmarks" / "multilabel_tweets.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_builder_rules_on_a_hand_made_table():
    builder = _builder()
    tweets = pd.DataFrame(
        {
            "text": ["late", "bag broken", "bag gone", "great", "meh"],
            "airline_sentiment": ["negative", "negative", "negative", "positive", "neutral"],
            "negativereason": ["Late Flight", "Damaged Luggage", "Lost Luggage", "best flight", ""],
        }
    )
    table = builder.build(tweets)
    assert table.columns.tolist() == ["text", "labels"]
    assert table["labels"].tolist() == [
        "negative;Late Flight",
        "negative;Lost or Damaged Luggage",
        "negative;Lost or Damaged Luggage",
        "positive",
        "neutral",
    ]


def test_builder_on_the_real_tweets(tweets_file, tmp_path, capsys):
    builder = _builder()
    out = tmp_path / "tweets_multilabel.csv"
    assert builder.main(["--out", str(out), "--data", str(tweets_file)]) == 0
    printed = capsys.readouterr().out
    assert "Late Flight" in printed and "14,640 rows" in printed

    source = pd.read_csv(tweets_file, dtype=str, keep_default_na=False)
    table = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert table.columns.tolist() == ["text", "labels"]
    assert len(table) == len(source) == 14_640
    assert table["text"].tolist() == source["text"].tolist()
    rows = [cell.split(";") for cell in table["labels"]]
    sentiments = {"negative", "neutral", "positive"}
    # Every row has its own sentiment first, and no other sentiment.
    assert [labels[0] for labels in rows] == source["airline_sentiment"].tolist()
    assert all(not sentiments & set(labels[1:]) for labels in rows)
    # A reason exactly on negative rows, one each.
    assert all(len(labels) == (2 if labels[0] == "negative" else 1) for labels in rows)

    counts = builder.label_counts(table["labels"])
    assert sum(counts[s] for s in sentiments) == len(table)
    reasons = {label: n for label, n in counts.items() if label not in sentiments}
    assert sum(reasons.values()) == counts["negative"] == 9_178
    assert min(reasons.values()) >= 100
    assert "Damaged Luggage" not in reasons and "best flight" not in reasons
    assert reasons["Lost or Damaged Luggage"] == 724 + 74
