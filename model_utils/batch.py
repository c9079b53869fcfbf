"""Batch classification of an uploaded CSV, TSV or JSONL file, with evaluation metrics.

:func:`classify_file` reads the upload (:func:`model_utils.tables.read_table`: the upload limits,
UTF-8, format), classifies the chosen text column (and an optional second-text column) in batches
sorted by length with dynamic padding, so little compute is spent on padding, and with a label
column computes accuracy, macro-F1 and a confusion matrix
(:func:`model_utils.tables.classification_metrics`). Everything returned is plain data; rows with
an empty text are skipped and counted, and the result says whether it covers the whole file
(``complete``).
"""

from __future__ import annotations

import csv
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
from model_utils.errors import Notice, UserError, define
from model_utils.inputs import clip_cell, fit_pairs
from model_utils.tables import classification_metrics, read_table, require_columns

define({
    "batch.no_text": "Every row has an empty {column!r} column: nothing to classify.",
    "batch.upload_first": "Upload a CSV, TSV or JSONL file first.",
    "batch.choose_text_column": "Choose the text column.",
    "batch.skipped": "{count} of {total} row(s) have an empty {column!r} and were skipped (rows {rows}); results "
                     "cover {kept} rows.",
    "batch.truncated": "{count} row(s) were longer than {limit} tokens; only their start was classified.",
    "batch.unlabelled": "{count} classified row(s) have no label; metrics use the other {labelled}.",
    "batch.no_labels": "No row has a label, so there are no metrics.",
    "batch.unknown_labels": "Labels unknown to the model (always counted wrong): {labels}.",
    "batch.multi_label": "Multi-label model: metrics compare the top-scoring label with the gold label.",
})

BATCH_SIZE = 32  # rows per forward pass
Progress = Callable[[int, int], None]  # (rows done, rows total)


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
    if not path:
        raise UserError("batch.upload_first")
    columns, table = read_table(path)  # a bad file is named before a missing column choice
    if not text_column:
        raise UserError("batch.choose_text_column")
    require_columns(columns, text_column, label_column, pair_column)
    loaded = load_classifier(model)
    kept = [i for i, row in enumerate(table) if row[text_column].strip()]
    skipped = [i + 1 for i, row in enumerate(table) if not row[text_column].strip()]
    if not kept:
        raise UserError("batch.no_text", column=text_column)
    texts = [table[i][text_column] for i in kept]
    pairs = [table[i][pair_column].strip() or None for i in kept] if pair_column else None
    scores, truncated = predict_texts(loaded, texts, pairs, batch_size, progress)
    names = label_names(loaded.model.config)
    rows = [_row_record(i + 1, table[i], text_column, label_column, names, s) for i, s in zip(kept, scores)]
    result = {"columns": columns, "labels": names, "rows": rows, "total_rows": len(table),
              "classified": len(rows), "skipped_rows": skipped, "complete": not skipped,
              "metrics": None, "notes": []}
    if skipped:
        result["notes"].append(Notice("batch.skipped", count=len(skipped), total=len(table), column=text_column,
                                      rows=_row_list(skipped), kept=len(rows)))
    if truncated:
        result["notes"].append(Notice("batch.truncated", count=truncated,
                                      limit=max_length(loaded.tokenizer, loaded.model.config)))
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
        result["notes"].append(Notice("batch.unlabelled", count=unlabelled, labelled=len(labelled)))
        result["complete"] = False
    if not labelled:
        result["notes"].append(Notice("batch.no_labels"))
        return
    unknown = sorted({r["gold"] for r in labelled} - set(names))
    if unknown:
        result["notes"].append(Notice("batch.unknown_labels", labels=", ".join(unknown)))
    if function == "sigmoid":
        result["notes"].append(Notice("batch.multi_label"))
    result["metrics"] = classification_metrics([r["gold"] for r in labelled], [r["prediction"] for r in labelled],
                                               names + unknown)


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
