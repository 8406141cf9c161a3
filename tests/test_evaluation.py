"""Tests for spacy_bertcls.evaluation on hand-made data whose right answers are known."""

import json
import math
import os

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from spacy_bertcls.errors import BertclsError
from spacy_bertcls.evaluation import (
    EvaluationResult,
    evaluate_predictions,
    format_share,
    format_summary,
    plot_confusion_matrix,
    plot_pr_curves,
    plot_reliability,
    write_report,
)
from spacy_bertcls.evaluation import report as evaluation_report

ABC = ["a", "b", "c"]


def one_hot(predicted: list[str], labels: list[str], confidence: float = 0.8) -> np.ndarray:
    """Probabilities whose argmax is `predicted`, with the rest spread evenly."""
    rest = (1.0 - confidence) / (len(labels) - 1)
    probs = np.full((len(predicted), len(labels)), rest)
    for row, label in enumerate(predicted):
        probs[row, labels.index(label)] = confidence
    return probs


def random_case(n: int = 400, seed: int = 0) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    gold_idx = rng.integers(0, 3, size=n)
    alpha = np.ones((n, 3))
    alpha[np.arange(n), gold_idx] += 1.5
    probs = np.array([rng.dirichlet(a) for a in alpha])
    return [ABC[i] for i in gold_idx], probs


def test_perfect_predictions():
    gold = ["a", "b", "c", "a", "b", "c"]
    result = evaluate_predictions(gold, one_hot(gold, ABC, confidence=1.0), ABC)
    assert result.accuracy == 1.0
    assert result.macro == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert result.weighted["f1"] == 1.0
    assert result.confusion == [[2, 0, 0], [0, 2, 0], [0, 0, 2]]
    assert result.most_confident_errors == []
    assert result.calibration.ece == pytest.approx(0.0)
    assert result.n_evaluated == result.n_rows == 6
    assert all(v == pytest.approx(1.0) for v in result.roc_auc.values())


def test_confusion_cells_and_rows():
    gold = ["a", "a", "a", "b", "b", "c"]
    predicted = ["a", "b", "a", "b", "c", "c"]
    result = evaluate_predictions(gold, one_hot(predicted, ABC), ABC)
    assert result.confusion == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert result.confusion_rows("a", "a") == [0, 2]
    assert result.confusion_rows("a", "b") == [1]
    assert result.confusion_rows("b", "c") == [4]
    assert result.confusion_rows("c", "a") == []
    # Every evaluated row is in exactly one cell.
    cells = [result.confusion_rows(g, p) for g in ABC for p in ABC]
    assert sorted(i for cell in cells for i in cell) == list(range(6))
    with pytest.raises(BertclsError, match="'z'"):
        result.confusion_rows("z", "a")


def test_binary_scores_known_by_construction():
    labels = ["neg", "pos"]
    gold = ["pos", "pos", "pos", "neg", "neg", "neg", "neg"]
    predicted = ["pos", "pos", "neg", "pos", "neg", "neg", "neg"]
    result = evaluate_predictions(gold, one_hot(predicted, labels), labels)
    # pos: tp=2, fp=1, fn=1; neg: tp=3, fp=1, fn=1.
    assert result.per_class["pos"] == {
        "precision": pytest.approx(2 / 3),
        "recall": pytest.approx(2 / 3),
        "f1": pytest.approx(2 / 3),
        "support": 3,
    }
    assert result.per_class["neg"]["precision"] == pytest.approx(3 / 4)
    assert result.per_class["neg"]["support"] == 4
    assert result.accuracy == pytest.approx(5 / 7)
    assert result.macro["f1"] == pytest.approx((2 / 3 + 3 / 4) / 2)
    assert result.weighted["f1"] == pytest.approx((3 * 2 / 3 + 4 * 3 / 4) / 7)
    assert result.confusion == [[3, 1], [1, 2]]


def test_missing_gold_and_no_prediction_are_excluded_and_counted():
    gold = [None, float("nan"), "", "a", "b", "a", "  ", pd.NA]
    probs = one_hot(["a", "a", "a", "a", "b", "a", "a", "a"], ABC)
    probs[4] = np.nan
    result = evaluate_predictions(gold, probs, ABC)
    assert result.n_rows == 8
    assert result.n_missing_gold == 5
    assert result.n_no_prediction == 1
    assert result.n_evaluated == 2
    assert sum(map(sum, result.confusion)) == 2
    assert result.confusion_rows("a", "a") == [3, 5]
    assert result.missing_gold_rows.tolist() == [0, 1, 2, 6, 7]
    assert result.no_prediction_rows.tolist() == [4]
    assert any("no prediction" in note for note in result.notes())


def test_unknown_gold_labels_reported_and_excluded():
    gold = ["a", "x", "b", "x", "y", "c"]
    probs = one_hot(["a", "a", "b", "a", "c", "c"], ABC)
    probs[3] = np.nan  # unknown gold takes precedence over "no prediction"
    result = evaluate_predictions(gold, probs, ABC)
    assert result.unknown_gold == {"x": 2, "y": 1}
    assert result.n_unknown_gold == 3
    assert result.n_no_prediction == 0
    assert result.n_evaluated == 3
    assert result.accuracy == 1.0  # unknown rows are not counted as errors
    assert result.unknown_gold_rows["x"].tolist() == [1, 3]
    assert any("'x' (2)" in note for note in result.notes())
    assert "unknown gold: 3" in format_summary(result)


def test_whole_number_float_gold_matches_text_labels():
    # A spreadsheet column of 0/1 with a blank is read by pandas as floats with NaN.
    gold = pd.Series([0, 1, None, 1], dtype="float64").tolist()
    result = evaluate_predictions(gold, one_hot(["0", "1", "0", "1"], ["0", "1"]), ["0", "1"])
    assert result.unknown_gold == {}
    assert result.n_missing_gold == 1
    assert result.accuracy == 1.0


def test_cross_check_with_direct_sklearn_calls():
    gold, probs = random_case()
    result = evaluate_predictions(gold, probs, ABC)
    # Independent path: label strings via a DataFrame's idxmax, sklearn's string-label API.
    predicted = pd.DataFrame(probs, columns=ABC).idxmax(axis=1).tolist()
    assert result.macro["f1"] == pytest.approx(f1_score(gold, predicted, average="macro"))
    assert result.weighted["f1"] == pytest.approx(f1_score(gold, predicted, average="weighted"))
    assert result.accuracy == pytest.approx(np.mean(np.array(gold) == np.array(predicted)))
    crosstab = pd.crosstab(pd.Series(gold), pd.Series(predicted)).reindex(
        index=ABC, columns=ABC, fill_value=0
    )
    assert result.confusion == crosstab.to_numpy().tolist()
    assert result.macro_roc_auc == pytest.approx(
        roc_auc_score(gold, probs, multi_class="ovr", labels=ABC, average="macro")
    )
    for j, label in enumerate(ABC):
        expected = average_precision_score([g == label for g in gold], probs[:, j])
        assert result.pr_curves[label].average_precision == pytest.approx(expected)


def test_label_absent_from_data_is_left_out_of_averages():
    gold = ["a", "b", "a", "b"]
    predicted = ["a", "b", "b", "b"]
    result = evaluate_predictions(gold, one_hot(predicted, ABC), ABC)
    assert result.averaged_labels == ["a", "b"]
    assert result.per_class["c"]["support"] == 0
    assert result.macro["f1"] == pytest.approx(f1_score(gold, predicted, average="macro"))
    assert "c" not in result.pr_curves
    assert result.roc_auc["c"] is None
    assert any("never seen" in note for note in result.notes())


def test_single_gold_class_has_undefined_roc_auc(tmp_path):
    gold = ["a", "a", "a"]
    result = evaluate_predictions(gold, one_hot(["a", "a", "b"], ABC), ABC)
    assert result.roc_auc == {"a": None, "b": None, "c": None}
    assert result.macro_roc_auc is None
    assert list(result.pr_curves) == ["a"]
    assert result.to_dict()["macro_roc_auc"] is None
    page = write_report(result, tmp_path / "r.html")["html"].read_text(encoding="utf-8")
    assert "n/a" in page


def test_calibration_bins_known_by_construction():
    labels = ["neg", "pos"]
    # Four rows at confidence 0.95 (3 right), two at 0.65 (1 right).
    probs = np.array([[0.05, 0.95]] * 4 + [[0.35, 0.65]] * 2)
    gold = ["pos", "pos", "pos", "neg", "pos", "neg"]
    cal = evaluate_predictions(gold, probs, labels).calibration
    # Fifteen equal-width bins: 0.65 falls in [9/15, 10/15), 0.95 in [14/15, 1].
    assert cal.n_bins == 15
    assert cal.bin_lower.tolist() == pytest.approx([9 / 15, 14 / 15])
    assert cal.count.tolist() == [2, 4]
    assert cal.mean_confidence.tolist() == pytest.approx([0.65, 0.95])
    assert cal.accuracy.tolist() == pytest.approx([0.5, 0.75])
    assert cal.ece == pytest.approx(2 / 6 * 0.15 + 4 / 6 * 0.20)


def test_most_confident_errors_order_and_content():
    gold = ["a", "b", "c", "a", "b"]
    probs = np.array(
        [
            [0.1, 0.7, 0.2],  # wrong, 0.7
            [0.9, 0.05, 0.05],  # wrong, 0.9
            [0.0, 0.0, 1.0],  # right
            [0.2, 0.2, 0.6],  # wrong, 0.6
            [0.1, 0.8, 0.1],  # right
        ]
    )
    texts = ["t0", "t1", "t2", "t3", "t4"]
    result = evaluate_predictions(gold, probs, ABC, texts=texts, n_errors=2)
    assert [e["row"] for e in result.most_confident_errors] == [1, 0]
    assert result.most_confident_errors[0] == {
        "row": 1,
        "row_number": 3,  # as a spreadsheet shows it: header row 1, first data row 2
        "text": "t1",
        "gold": "b",
        "predicted": "a",
        "confidence": pytest.approx(0.9),
        "gold_probability": pytest.approx(0.05),
    }
    # A filtered pandas Series keeps its old index; rows are still positions.
    series = pd.Series(texts, index=[10, 11, 12, 13, 14])
    from_series = evaluate_predictions(gold, probs, ABC, texts=series, n_errors=2)
    assert from_series.most_confident_errors[0]["text"] == "t1"
    no_texts = evaluate_predictions(gold, probs, ABC)
    assert len(no_texts.most_confident_errors) == 3
    assert no_texts.most_confident_errors[0]["text"] is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"probs": np.zeros((3, 2))}, r"shape \(3, 2\)"),
        ({"gold": ["a", "b"]}, "2 gold labels but 3 rows"),
        ({"probs": np.array([[0.5, np.nan, 0.5]] * 3)}, "Row 0 .* NaN in some columns"),
        ({"probs": np.array([[2.5, -1.0, 0.3]] * 3)}, r"probs\[0, 0\] = 2.5 .*logits"),
        ({"labels": ["a", "a", "c"]}, r"repeats \['a'\]"),
        ({"labels": ["a"], "probs": np.ones((3, 1))}, "at least two labels"),
        ({"texts": ["x"]}, "1 texts but 3 rows"),
        ({"n_errors": -1}, "n_errors=-1"),
        ({"gold": ["x", None, "y"]}, "No row can be evaluated"),
    ],
)
def test_bad_input_raises_bertcls_error(kwargs, match):
    args = {"gold": ["a", "b", "c"], "probs": one_hot(["a", "b", "c"], ABC), "labels": ABC}
    args.update(kwargs)
    gold, probs, labels = args.pop("gold"), args.pop("probs"), args.pop("labels")
    with pytest.raises(BertclsError, match=match):
        evaluate_predictions(gold, probs, labels, **args)


def test_to_dict_is_plain_json():
    gold, probs = random_case(n=3000)
    gold[0] = "unknown-label"
    gold[1] = None
    probs[2] = np.nan
    data = evaluate_predictions(gold, probs, ABC, texts=[f"t{i}" for i in range(3000)]).to_dict()
    text = json.dumps(data, allow_nan=False)  # fails on numpy types and NaN
    assert json.loads(text) == data
    assert data["unknown_gold"] == {"unknown-label": 1}
    assert data["n_missing_gold"] == 1 and data["n_no_prediction"] == 1
    assert data["n_evaluated"] == 2997
    # 3000 distinct scores per class would be 3000 curve points; JSON keeps at most 500.
    assert all(len(curve["precision"]) <= 500 for curve in data["pr_curves"].values())


def test_plots_are_figures_with_labels():
    gold, probs = random_case()
    result = evaluate_predictions(gold, probs, ABC)
    confusion = plot_confusion_matrix(result)
    assert isinstance(confusion, Figure)
    ax = confusion.axes[0]
    assert ax.get_xlabel() == "Predicted label" and ax.get_ylabel() == "Gold label"
    cell_texts = [t.get_text() for t in ax.texts]
    assert len(cell_texts) == 9
    assert cell_texts[0].startswith(str(result.confusion[0][0]))
    pr = plot_pr_curves(result)
    assert len(pr.axes[0].get_lines()) == 3
    reliability = plot_reliability(result)
    assert "ECE" in reliability.axes[0].get_title()


def test_write_report_html_json_and_plots(tmp_path):
    gold = ["a", "b", "c", "a", "b", "c", "zzz"]
    predicted = ["b", "b", "c", "a", "b", "a", "a"]
    texts = ["<script>alert('x')</script> & more", "b", "c", "a", "b", "c", "?"]
    result = evaluate_predictions(gold, one_hot(predicted, ABC, 0.9), ABC, texts=texts)
    details = {"Pipeline": tmp_path / "model-best", "Columns": ["text", "label"]}
    paths = write_report(
        result,
        tmp_path / "out" / "report.html",
        json_path=tmp_path / "out" / "report.json",
        plots_dir=tmp_path / "plots",
        title="Eval <b>run</b>",
        details=details,
    )
    assert set(paths) == {"html", "json", "confusion_matrix", "pr_curves", "reliability"}
    page = paths["html"].read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in page
    assert "<script" not in page
    assert "Eval &lt;b&gt;run&lt;/b&gt;" in page
    assert page.count("data:image/png;base64,") == 3
    assert "http://" not in page and "https://" not in page
    assert "zzz" in page  # unknown gold label is reported
    assert str(tmp_path / "model-best") in page
    for name in ("confusion_matrix", "pr_curves", "reliability"):
        assert paths[name] == tmp_path / "plots" / f"{name}.png"
        assert paths[name].read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    data = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert data["details"]["Columns"] == ["text", "label"]
    assert data["unknown_gold"] == {"zzz": 1}
    assert data["confusion"] == result.confusion
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_write_report_leaves_nothing_when_plotting_fails(tmp_path, monkeypatch):
    gold, probs = random_case()
    result = evaluate_predictions(gold, probs, ABC)

    def broken(result: EvaluationResult) -> Figure:
        raise RuntimeError("plotting broke")

    monkeypatch.setattr(evaluation_report, "plot_pr_curves", broken)
    html_path = tmp_path / "report.html"
    with pytest.raises(RuntimeError, match="plotting broke"):
        write_report(result, html_path, json_path=tmp_path / "r.json", plots_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_write_report_keeps_old_file_when_replace_fails(tmp_path, monkeypatch):
    gold, probs = random_case()
    result = evaluate_predictions(gold, probs, ABC)
    html_path = tmp_path / "report.html"
    html_path.write_text("old report")
    real_replace = os.replace

    def failing_replace(src, dst):
        if str(dst).endswith(".html"):
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(BertclsError, match="disk full"):
        write_report(result, html_path)
    assert html_path.read_text() == "old report"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_write_report_refuses_unsafe_places_before_writing(tmp_path):
    gold, probs = random_case()
    result = evaluate_predictions(gold, probs, ABC)
    (tmp_path / "plots").write_text("a file")
    with pytest.raises(BertclsError, match="plots is a file; it needs a folder"):
        write_report(result, tmp_path / "r.html", plots_dir=tmp_path / "plots")
    with pytest.raises(BertclsError, match="is a folder; it needs a file name"):
        write_report(result, tmp_path)
    with pytest.raises(BertclsError, match="different file names"):
        write_report(result, tmp_path / "r.html", json_path=tmp_path / "r.html")
    assert [p.name for p in tmp_path.iterdir()] == ["plots"]


def test_format_summary_lists_classes_and_counts():
    gold = ["a", "b", "c", None]
    result = evaluate_predictions(gold, one_hot(["a", "b", "b", "a"], ABC), ABC)
    summary = format_summary(result)
    for word in ("precision", "recall", "f1-score", "support", "accuracy", "macro avg"):
        assert word in summary
    assert "Evaluated 3 of 4 rows" in summary
    assert "missing gold: 1" in summary
    c_line = next(line for line in summary.splitlines() if line.strip().startswith("c "))
    assert c_line.split()[1:] == ["0.000", "0.000", "0.000", "1"]
    assert f"{result.accuracy:.3f}" in summary and not math.isnan(result.accuracy)


def test_confusion_shares_never_round_a_few_rows_away():
    assert [format_share(s) for s in (0.0, 1.0, 0.964, 0.5)] == ["0%", "100%", "96%", "50%"]
    assert format_share(3 / 725) == "0.4%" and format_share(722 / 725) == "99.6%"
    assert format_share(1 / 5000) == "0.02%" and format_share(4999 / 5000) == "99.98%"
