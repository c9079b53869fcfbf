"""Batch classification of an uploaded CSV, TSV or JSONL file, with evaluation metrics.

:func:`read_table` checks the upload (size in bytes and rows from the settings, UTF-8, format)
and returns the rows as strings. :func:`classify_file` classifies the chosen text column (and an
optional second-text column) in batches sorted by length with dynamic padding, so little compute
is spent on padding, and with a label column computes accuracy, macro-F1 and a confusion matrix
(:func:`compute_metrics`). Everything returned is plain data; rows with an empty text are skipped
and counted, and the result says whether it covers the whole file (``complete``).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Callable

import torch

from model_utils.classify import (
    _forward,
    label_names,
    load_classifier,
    max_length,
    scores_from_logits,
    score_function,
)
from model_utils.config import get_settings
from model_utils.inputs import clip_cell, fit_pairs

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
BATCH_SIZE = 32  # rows per forward pass
Progress = Callable[[int, int], None]  # (rows done, rows total)


def read_table(path: str | Path) -> tuple[list[str], list[dict[str, str]]]:
    """Read an uploaded CSV/TSV/JSONL file into (column names, rows of strings).

    Raises ValueError with a user-readable message when the file is too large (bytes or rows,
    limits from the settings), not UTF-8, of an unknown type, malformed, or has no rows.
    """
    path = Path(path)
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ValueError(f"Unsupported file type {path.suffix or '(none)'!r}: upload a .csv, .tsv or .jsonl file.")
    settings = get_settings()
    size = path.stat().st_size
    if size > settings.max_upload_bytes:
        raise ValueError(f"The file is too large ({size / 2**20:.1f} MB); the limit is "
                         f"{settings.max_upload_bytes / 2**20:.1f} MB (PLM_MAX_UPLOAD_MB).")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"The file is not UTF-8 text (invalid byte at position {err.start}); "
                         "save it with UTF-8 encoding and upload it again.") from err
    columns, rows = _parse_jsonl(text) if kind == "jsonl" else _parse_delimited(text, kind)
    if not rows:
        raise ValueError("The file has no data rows.")
    if len(rows) > settings.max_upload_rows:
        raise ValueError(f"The file has {len(rows)} rows; the limit is {settings.max_upload_rows} "
                         "(PLM_MAX_UPLOAD_ROWS). Split it or keep the first rows.")
    return columns, rows


def _parse_delimited(text: str, kind: str) -> tuple[list[str], list[dict[str, str]]]:
    """CSV/TSV with a header row; every value a string, missing cells empty."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if kind == "tsv" else ",")
    try:
        table = [row for row in reader if row]  # blank lines are not rows; ",," rows are (empty) rows
    except csv.Error as err:
        raise ValueError(f"The {kind.upper()} file is malformed (line {reader.line_num}): {err}") from err
    if not table:
        raise ValueError("The file is empty.")
    header = [name.strip() for name in table[0]]
    if any(not name for name in header) or len(set(header)) != len(header):
        raise ValueError(f"The first line must name every column once; got {header}.")
    rows = []
    for line_no, row in enumerate(table[1:], start=2):
        if len(row) > len(header):
            raise ValueError(f"Line {line_no} has {len(row)} values but the header names {len(header)} columns.")
        rows.append({name: (row[i] if i < len(row) else "") for i, name in enumerate(header)})
    return header, rows


def _parse_jsonl(text: str) -> tuple[list[str], list[dict[str, str]]]:
    """One JSON object per line; columns in order of first appearance; values as strings."""
    columns: dict[str, None] = {}
    rows = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"Line {line_no} is not valid JSON: {err.msg}.") from err
        if not isinstance(record, dict):
            raise ValueError(f"Line {line_no} must be a JSON object like {{\"text\": ..., \"label\": ...}}.")
        columns.update(dict.fromkeys(str(k) for k in record))
        rows.append({str(k): _as_text(v) for k, v in record.items()})
    return list(columns), [{c: row.get(c, "") for c in columns} for row in rows]


def _as_text(value: Any) -> str:
    """A JSON value as a cell string: null -> "", strings as is, anything else as JSON."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def encode(tokenizer: Any, texts: list[str], pairs: list[str | None] | None,
           limit: int) -> tuple[list[dict], int]:
    """Tokenize without padding: one dict of id lists per row (rows without a pair get none),
    and how many rows were cut at the length limit.

    Cells are cut to the character limit first and pairs side by side on token ids
    (:mod:`model_utils.inputs`), so a 5 MB cell costs no more than a long sentence.
    """
    clipped = [clip_cell(t) for t in texts]
    clipped_pairs = [clip_cell(p) if p else (None, False) for p in (pairs or [None] * len(texts))]
    fitted = fit_pairs(tokenizer, [t for t, _ in clipped], [p for p, _ in clipped_pairs], limit)
    encoded: list[dict] = [{}] * len(texts)
    for has_pair in (False, True):
        idx = [i for i, f in enumerate(fitted) if (f.second is not None) == has_pair]
        if not idx:
            continue
        extra = {"text_pair": [fitted[i].second for i in idx]} if has_pair else {}
        out = tokenizer([fitted[i].first for i in idx], truncation=True, max_length=limit, **extra)
        keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in out]
        for j, i in enumerate(idx):
            encoded[i] = {k: out[k][j] for k in keys}
    truncated = sum(f.truncated or cut or cut_pair
                    for f, (_, cut), (_, cut_pair) in zip(fitted, clipped, clipped_pairs))
    return encoded, truncated


def predict_texts(loaded: Any, texts: list[str], pairs: list[str | None] | None = None,
                  batch_size: int = BATCH_SIZE, progress: Progress | None = None) -> tuple[torch.Tensor, int]:
    """Scores (rows, labels) for ``texts`` and the number of rows truncated to the length limit.

    Batches are sorted by length and each is padded only to its own longest row.
    """
    tokenizer, config = loaded.tokenizer, loaded.model.config
    encoded, truncated = encode(tokenizer, texts, pairs, max_length(tokenizer, config))
    order = sorted(range(len(texts)), key=lambda i: len(encoded[i]["input_ids"]), reverse=True)
    scores = torch.empty(len(texts), config.num_labels)
    if progress:
        progress(0, len(order))
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        batch = tokenizer.pad([encoded[i] for i in chunk], return_tensors="pt")
        with loaded.lock:  # one batch at a time, so other users' requests interleave
            logits = _forward(loaded.model, batch, loaded.device)
        scores[chunk] = scores_from_logits(logits, config)
        if progress:
            progress(min(start + batch_size, len(order)), len(order))
    return scores, truncated


def classify_file(path: str | Path, text_column: str, label_column: str | None = None,
                  model: Any = None, pair_column: str | None = None, batch_size: int = BATCH_SIZE,
                  progress: Progress | None = None) -> dict:
    """Classify every row of an uploaded file; with ``label_column`` also evaluate.

    Returns ``{"columns", "labels", "rows": [{"row", "text", "prediction", "score", "scores",
    "gold", "correct"}], "total_rows", "classified", "skipped_rows", "complete", "metrics",
    "notes"}`` where ``row`` is the 1-based data row in the file. Raises ValueError for bad files,
    unknown columns, a file without any text, or a checkpoint that is not a classifier.
    """
    columns, table = read_table(path)
    for name in (text_column, label_column, pair_column):
        if name and name not in columns:
            raise ValueError(f"The file has no column {name!r}; its columns are: {', '.join(columns)}.")
    loaded = load_classifier(model)
    kept = [i for i, row in enumerate(table) if row[text_column].strip()]
    skipped = [i + 1 for i, row in enumerate(table) if not row[text_column].strip()]
    if not kept:
        raise ValueError(f"Every row has an empty {text_column!r} column: nothing to classify.")
    texts = [table[i][text_column] for i in kept]
    pairs = [table[i][pair_column].strip() or None for i in kept] if pair_column else None
    scores, truncated = predict_texts(loaded, texts, pairs, batch_size, progress)
    names = label_names(loaded.model.config)
    rows = [_row_record(i + 1, table[i], text_column, label_column, names, s) for i, s in zip(kept, scores)]
    result = {"columns": columns, "labels": names, "rows": rows, "total_rows": len(table),
              "classified": len(rows), "skipped_rows": skipped, "complete": not skipped,
              "metrics": None, "notes": []}
    if skipped:
        result["notes"].append(f"{len(skipped)} of {len(table)} row(s) have an empty {text_column!r} and were "
                               f"skipped (rows {_row_list(skipped)}); results cover {len(rows)} rows.")
    if truncated:
        limit = max_length(loaded.tokenizer, loaded.model.config)
        result["notes"].append(f"{truncated} row(s) were longer than {limit} tokens; only their start was classified.")
    if label_column:
        _add_metrics(result, names, score_function(loaded.model.config))
    return result


def _row_record(row_no: int, row: dict, text_column: str, label_column: str | None,
                names: list[str], scores: torch.Tensor) -> dict:
    """One prediction as plain data; ``gold``/``correct`` are None without a usable label."""
    best = int(scores.argmax())
    gold = normalize_label(row[label_column], names) if label_column else None
    return {"row": row_no, "text": row[text_column], "prediction": names[best], "score": float(scores[best]),
            "scores": {n: float(s) for n, s in zip(names, scores.tolist())}, "gold": gold,
            "correct": None if gold is None else gold == names[best]}


def normalize_label(value: str, names: list[str]) -> str | None:
    """Map a gold label to the model's name for it: exact, case-insensitive, or a label id."""
    value = value.strip()
    if not value:
        return None
    if value in names:
        return value
    by_lower = {n.lower(): n for n in names}
    if value.lower() in by_lower:
        return by_lower[value.lower()]
    if value.isdigit() and int(value) < len(names):
        return names[int(value)]
    return value  # unknown to the model: kept, so it counts as an error


def _add_metrics(result: dict, names: list[str], function: str) -> None:
    """Metrics over rows that have a gold label; notes say what was left out and why."""
    labelled = [r for r in result["rows"] if r["gold"] is not None]
    unlabelled = len(result["rows"]) - len(labelled)
    if unlabelled:
        result["notes"].append(f"{unlabelled} classified row(s) have no label; metrics use the other {len(labelled)}.")
        result["complete"] = False
    if not labelled:
        result["notes"].append("No row has a label, so there are no metrics.")
        return
    unknown = sorted({r["gold"] for r in labelled} - set(names))
    if unknown:
        result["notes"].append(f"Labels unknown to the model (always counted wrong): {', '.join(unknown)}.")
    if function == "sigmoid":
        result["notes"].append("Multi-label model: metrics compare the top-scoring label with the gold label.")
    result["metrics"] = compute_metrics([r["gold"] for r in labelled], [r["prediction"] for r in labelled],
                                        names + unknown)


def compute_metrics(gold: list[str], predicted: list[str], labels: list[str]) -> dict:
    """Accuracy, macro-F1 and the confusion matrix (rows gold, columns predicted) as plain data.

    Macro-F1 averages per-label F1 over the labels that occur in ``gold`` or ``predicted``
    (as scikit-learn does by default); a label with no true or predicted rows scores F1 0.
    """
    index = {name: i for i, name in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for g, p in zip(gold, predicted):
        matrix[index[g]][index[p]] += 1
    per_label = []
    for i, name in enumerate(labels):
        tp = matrix[i][i]
        support, predicted_count = sum(matrix[i]), sum(row[i] for row in matrix)
        precision = tp / predicted_count if predicted_count else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label.append({"label": name, "precision": precision, "recall": recall, "f1": f1,
                          "support": support, "predicted": predicted_count})
    present = [m for m in per_label if m["support"] or m["predicted"]]
    return {"n": len(gold), "accuracy": sum(g == p for g, p in zip(gold, predicted)) / len(gold),
            "macro_f1": sum(m["f1"] for m in present) / len(present), "labels": labels,
            "confusion": matrix, "per_label": per_label}


def _row_list(rows: list[int], shown: int = 10) -> str:
    """'3, 7, 9' or '3, 7, 9, … (+12 more)'."""
    text = ", ".join(str(r) for r in rows[:shown])
    return text + (f", … (+{len(rows) - shown} more)" if len(rows) > shown else "")


def _safe_cell(value: str) -> str:
    """Prefix a quote to text a spreadsheet would run as a formula (CSV injection)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def write_predictions_csv(result: dict, path: str | Path) -> Path:
    """Write the predictions (one score column per label) to a UTF-8 CSV at ``path``."""
    path = Path(path)
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["row", "text", "prediction", "score", "gold", "correct"]
                        + [f"score_{name}" for name in result["labels"]])
        for r in result["rows"]:
            writer.writerow([r["row"], _safe_cell(r["text"]), r["prediction"], f"{r['score']:.6f}",
                             _safe_cell(r["gold"] or ""), "" if r["correct"] is None else r["correct"]]
                            + [f"{r['scores'][name]:.6f}" for name in result["labels"]])
    return path
