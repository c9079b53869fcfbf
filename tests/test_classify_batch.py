"""Batch mode: file reading and limits, predictions equal classify(), metrics by hand."""

from __future__ import annotations

import csv
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from classify_helpers import load_local, save_tiny_classifier, save_tiny_pretraining

from model_utils.batch import classify_file, normalize_label, write_predictions_csv
from model_utils.tables import classification_metrics as compute_metrics, read_table
from model_utils.classify import classify, load_classifier

ROWS = [
    ("the movie was great !", "positive"),
    ("i hated the acting , it was boring", "negative"),
    ("not bad", "neutral"),
    ("the best film ever , really", "1"),  # a label id, mapped to "positive"
    ("awful music and a terrible plot . the worst story ever , so boring", "NEGATIVE"),
    ("fine", "positive"),
]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    return load_local(save_tiny_classifier(tmp_path_factory.mktemp("batch") / "clf", seed=1))


def write_csv(path, rows, header=("text", "label"), delimiter=","):
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_compute_metrics_by_hand():
    gold = ["a", "a", "a", "b", "b", "c"]
    pred = ["a", "b", "a", "b", "c", "c"]
    m = compute_metrics(gold, pred, ["a", "b", "c"])
    assert m["confusion"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert m["accuracy"] == pytest.approx(4 / 6)
    # a: P=2/2 R=2/3 F1=0.8; b: P=1/2 R=1/2 F1=0.5; c: P=1/2 R=1 F1=2/3
    assert m["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert [x["support"] for x in m["per_label"]] == [3, 2, 1]


def test_macro_f1_ignores_labels_absent_from_gold_and_predictions():
    m = compute_metrics(["x", "y"], ["x", "x"], ["x", "y", "unused"])
    # x: P=1/2 R=1 F1=2/3; y: F1=0; "unused" never occurs and is left out of the average.
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0) / 2)
    assert m["confusion"] == [[1, 0, 0], [1, 0, 0], [0, 0, 0]]


def test_normalize_label():
    names = ["negative", "positive"]
    assert [normalize_label(v, names) for v in ["positive", " Negative ", "1", "7", "", "meh"]] == [
        "positive", "negative", "positive", "7", None, "meh"]


def test_predictions_equal_classify_and_metrics_match(loaded, tmp_path):
    path = write_csv(tmp_path / "data.csv", ROWS)
    progress = []
    result = classify_file(path, "text", "label", model=loaded, batch_size=2,
                           progress=lambda done, total: progress.append((done, total)))
    assert result["complete"] and result["classified"] == result["total_rows"] == len(ROWS)
    assert progress[0] == (0, 6) and progress[-1] == (6, 6) and len(progress) == 4
    for row, (text, _) in zip(result["rows"], ROWS):
        best = classify(text, model=loaded)[0]
        assert row["text"] == text and row["prediction"] == best["label"]
        assert row["score"] == pytest.approx(best["score"], abs=1e-5)  # padding does not change scores
    gold = ["positive", "negative", "neutral", "positive", "negative", "positive"]
    assert [r["gold"] for r in result["rows"]] == gold
    expected = compute_metrics(gold, [r["prediction"] for r in result["rows"]], ["negative", "positive", "neutral"])
    assert result["metrics"] == expected
    assert sum(map(sum, result["metrics"]["confusion"])) == len(ROWS)


def test_tsv_and_jsonl_give_the_same_predictions(loaded, tmp_path):
    csv_result = classify_file(write_csv(tmp_path / "d.csv", ROWS), "text", "label", model=loaded)
    tsv_result = classify_file(write_csv(tmp_path / "d.tsv", ROWS, delimiter="\t"), "text", "label", model=loaded)
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text("\n".join(json.dumps({"text": t, "label": lab, "id": i}) for i, (t, lab) in enumerate(ROWS)))
    jsonl_result = classify_file(jsonl, "text", "label", model=loaded)
    assert jsonl_result["columns"] == ["text", "label", "id"]
    for other in (tsv_result, jsonl_result):
        assert [r["prediction"] for r in other["rows"]] == [r["prediction"] for r in csv_result["rows"]]
        assert other["metrics"] == csv_result["metrics"]


def test_pair_column(loaded, tmp_path):
    path = write_csv(tmp_path / "p.csv", [("the plot was bad", "but the music was great"), ("fun", "")],
                     header=("premise", "hypothesis"))
    result = classify_file(path, "premise", model=loaded, pair_column="hypothesis")
    first = classify("the plot was bad", model=loaded, text_pair="but the music was great")[0]
    assert result["rows"][0]["score"] == pytest.approx(first["score"], abs=1e-5)
    assert result["rows"][1]["score"] == pytest.approx(classify("fun", model=loaded)[0]["score"], abs=1e-5)
    assert result["metrics"] is None


def test_empty_rows_are_skipped_and_reported(loaded, tmp_path):
    rows = [("good", "positive"), ("", "negative"), ("   ", "positive"), ("bad", "")]
    result = classify_file(write_csv(tmp_path / "e.csv", rows), "text", "label", model=loaded)
    assert result["complete"] is False
    assert result["skipped_rows"] == [2, 3] and result["classified"] == 2 and result["total_rows"] == 4
    assert any("2 of 4 row(s)" in note and "skipped" in note for note in result["notes"])
    assert result["metrics"]["n"] == 1  # "bad" has no label
    assert any("no label" in note for note in result["notes"])


def test_truncated_rows_are_reported(loaded, tmp_path, monkeypatch):
    monkeypatch.setenv("PLM_MAX_SEQ_LEN", "8")
    rows = [("the movie was great " * 5, "positive"), ("fun", "positive")]
    result = classify_file(write_csv(tmp_path / "t.csv", rows), "text", "label", model=loaded)
    assert result["classified"] == 2
    assert any(note.startswith("1 row(s) were longer than 8 tokens") for note in result["notes"])


def test_predictions_csv_round_trip(loaded, tmp_path):
    result = classify_file(write_csv(tmp_path / "d.csv", ROWS + [("=cmd()", "positive")]), "text", "label",
                           model=loaded)
    out = write_predictions_csv(result, tmp_path / "out.csv")
    with out.open(encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(ROWS) + 1
    assert table[0]["prediction"] == result["rows"][0]["prediction"]
    assert float(table[0]["score"]) == pytest.approx(result["rows"][0]["score"], abs=1e-6)
    assert set(table[0]) >= {"score_negative", "score_positive", "score_neutral", "gold", "correct"}
    assert table[-1]["text"] == "'=cmd()"  # a spreadsheet will not run it as a formula


@pytest.mark.parametrize("name, content, message", [
    ("big.csv", "text\n" + "x" * 3 * 2**20, "too large"),
    ("latin1.csv", "text\ncaf\xe9\n".encode("latin-1"), "not UTF-8"),
    ("data.xlsx", "text\nhi\n", "Unsupported file type"),
    ("empty.csv", "", "empty"),
    ("header.csv", "text,label\n", "no data rows"),
    ("bad.jsonl", '{"text": "ok"}\n{not json}\n', "line 2: Expecting property name"),
    ("list.jsonl", '["text"]\n', "JSON object"),
    ("ragged.csv", "text\na,b\n", "data row 1 has 2 values but the header names 1 columns"),
    ("long-row.csv", "text,label\nx,1\ny,2,3\n", "data row 2 has 3 values"),
])
def test_bad_files_are_clear_errors(tmp_path, monkeypatch, name, content, message):
    monkeypatch.setenv("PLM_MAX_UPLOAD_MB", "2")
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ValueError, match=message):
        read_table(path)


def test_row_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("PLM_MAX_UPLOAD_ROWS", "5")
    path = write_csv(tmp_path / "many.csv", [("good", "positive")] * 6)
    with pytest.raises(ValueError, match="6 rows; the limit is 5"):
        read_table(path)
    monkeypatch.setenv("PLM_MAX_UPLOAD_ROWS", "6")
    assert len(read_table(path)[1]) == 6


def test_missing_column_and_all_empty(loaded, tmp_path):
    path = write_csv(tmp_path / "d.csv", ROWS)
    with pytest.raises(ValueError, match="no column 'review'.*text, label"):
        classify_file(path, "review", model=loaded)
    with pytest.raises(ValueError, match="no column 'gold'"):
        classify_file(path, "text", "gold", model=loaded)
    empty = write_csv(tmp_path / "e.csv", [("", "positive"), (" ", "negative")])
    with pytest.raises(ValueError, match="Every row has an empty 'text'"):
        classify_file(empty, "text", model=loaded)


def test_not_a_classifier(tmp_path):
    pre = save_tiny_pretraining(tmp_path / "pre")
    with pytest.raises(ValueError, match="not a text classifier"):
        load_classifier(load_local(pre))


LABEL = st.sampled_from(["a", "b", "c", "d"])


@given(st.lists(st.tuples(LABEL, LABEL), min_size=1, max_size=40))
@settings(max_examples=40, deadline=None)
def test_metric_invariants(pairs):
    gold, pred = [g for g, _ in pairs], [p for _, p in pairs]
    m = compute_metrics(gold, pred, ["a", "b", "c", "d"])
    matrix = m["confusion"]
    assert sum(map(sum, matrix)) == len(pairs)
    assert m["accuracy"] == pytest.approx(sum(matrix[i][i] for i in range(4)) / len(pairs))
    assert 0.0 <= m["macro_f1"] <= 1.0
    assert (m["macro_f1"] == 1.0) == (gold == pred)


@given(st.lists(st.text(min_size=1, max_size=30).filter(lambda t: t.strip() and "\x00" not in t),
                min_size=1, max_size=15))
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_csv_reader_round_trips_any_text(tmp_path, texts):
    path = write_csv(tmp_path / "any.csv", [(t, "x") for t in texts])
    columns, rows = read_table(path)
    assert columns == ["text", "label"]
    assert [r["text"] for r in rows] == texts
