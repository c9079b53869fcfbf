"""Tables in, metrics out: the one reader of CSV/TSV/JSONL files and the one set of classification metrics.

:func:`read_table` reads every table the app trains on or classifies (an upload, or the bundled
sample data) with pandas, under the same limits (``PLM_MAX_UPLOAD_MB`` bytes and
``PLM_MAX_UPLOAD_ROWS`` rows unless the caller names others), and returns the column names and
the rows as strings. :func:`classification_metrics` computes accuracy, macro-F1, per-label figures
and the confusion matrix with scikit-learn.
"""

from __future__ import annotations

import csv
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from model_utils.config import get_settings
from model_utils.errors import UserError, define

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}

define({
    "table.file_type": "Unsupported file type {suffix!r}: upload a .csv, .tsv or .jsonl file.",
    "table.too_large": "The file is too large ({size_mb:.1f} MB); the limit is {limit_mb:.1f} MB (PLM_MAX_UPLOAD_MB).",
    "table.not_utf8": "The file is not UTF-8 text (invalid byte at position {position}); save it with UTF-8 "
                      "encoding and upload it again.",
    "table.no_rows": "The file has no data rows.",
    "table.too_many_rows": "The file has {rows} rows; the limit is {limit} (PLM_MAX_UPLOAD_ROWS). Split it or keep "
                           "the first rows.",
    "table.malformed": "The {kind} file is malformed: {detail}",
    "table.empty": "The file is empty.",
    "table.bad_header": "The first line must name every column once; got {header}.",
    "table.bad_json_line": "Line {line} is not a JSON object like {{\"text\": ..., \"label\": ...}}.",
    "table.no_column": "The file has no column {name!r}; its columns are: {columns}.",
})


@dataclass(frozen=True)
class Limits:
    """How much of a file is read: bytes and data rows."""

    max_bytes: int
    max_rows: int

    @classmethod
    def uploads(cls) -> "Limits":
        """The limits of user uploads, from the settings."""
        settings = get_settings()
        return cls(settings.max_upload_bytes, settings.max_upload_rows)


def read_table(path: str | Path, limits: Limits | None = None) -> tuple[list[str], list[dict[str, str]]]:
    """Columns and rows (every cell a string, missing cells "") of a CSV, TSV or JSONL file.

    UserError for another file type, a file over ``limits`` (the upload limits by default), bytes
    that are not UTF-8, a malformed file, a header that does not name each column once, or no rows.
    """
    path, limits = Path(path), limits or Limits.uploads()
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise UserError("table.file_type", suffix=path.suffix or "(none)")
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise UserError("table.too_large", size_mb=size / 2**20, limit_mb=limits.max_bytes / 2**20)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise UserError("table.not_utf8", position=err.start) from err
    if not text.strip():
        raise UserError("table.empty")
    frame = _jsonl_frame(text) if kind == "jsonl" else _delimited_frame(text, kind)
    if frame.empty:
        raise UserError("table.no_rows")
    if len(frame) > limits.max_rows:
        raise UserError("table.too_many_rows", rows=len(frame), limit=limits.max_rows)
    columns = [str(c) for c in frame.columns]
    return columns, [dict(zip(columns, row)) for row in frame.itertuples(index=False, name=None)]


def _delimited_frame(text: str, kind: str) -> pd.DataFrame:
    """A CSV/TSV with a header; blank lines are not rows, short rows get empty cells, long rows are refused."""
    delimiter = "\t" if kind == "tsv" else ","
    names = [name.strip() for name in next(csv.reader(io.StringIO(text.lstrip("\r\n")), delimiter=delimiter), [])]
    if any(not name for name in names) or len(set(names)) != len(names):
        raise UserError("table.bad_header", header=names)
    try:
        with warnings.catch_warnings():  # pandas only warns, and drops cells, when a row is one value too long
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(io.StringIO(text), sep=delimiter, dtype=str, keep_default_na=False, index_col=False,
                                skip_blank_lines=True, engine="python")
    except (pd.errors.ParserError, pd.errors.ParserWarning, csv.Error) as err:
        raise UserError("table.malformed", kind=kind.upper(), detail=_first_bad_row(text, delimiter, len(names))
                        or str(err).strip().splitlines()[-1][:200]) from err
    frame.columns = names
    return frame.fillna("")


def _first_bad_row(text: str, delimiter: str, width: int) -> str | None:
    """Where a delimited file first has more values than its header names (for the error message)."""
    rows = (row for row in csv.reader(io.StringIO(text), delimiter=delimiter) if row)
    for line, row in enumerate(rows, start=1):
        if len(row) > width:
            return f"data row {line - 1} has {len(row)} values but the header names {width} columns."
    return None


def _jsonl_frame(text: str) -> pd.DataFrame:
    """One JSON object per line; columns in order of first appearance; values as strings."""
    records = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError("table.malformed", kind="JSON Lines", detail=f"line {line_no}: {err.msg}.") from err
        if not isinstance(record, dict):
            raise UserError("table.bad_json_line", line=line_no)
        records.append(record)
    return pd.DataFrame(records, dtype=object).map(_as_text) if records else pd.DataFrame()


def _as_text(value: Any) -> str:
    """A JSON value as a cell string: null -> "", strings as is, anything else as JSON."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def require_columns(columns: Sequence[str], *names: str | None) -> None:
    """UserError naming the first of ``names`` that is not one of ``columns`` (None and "" are skipped)."""
    for name in names:
        if name and name not in columns:
            raise UserError("table.no_column", name=name, columns=", ".join(columns))


def classification_metrics(gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> dict:
    """Accuracy, macro-F1, per-label precision/recall/F1/support and the confusion matrix (rows gold).

    Macro-F1 averages over the labels that occur in ``gold`` or ``predicted`` (scikit-learn's rule);
    ``labels`` fixes the order of the per-label records and of the matrix.
    """
    # Imported here: scikit-learn costs ~0.5 s of the app's start-up (python -X importtime -c "import app"),
    # and metrics are needed only once a batch or a training run has results.
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    labels = list(labels)
    present = [name for name in labels if name in set(gold) | set(predicted)]
    precision, recall, f1, support = precision_recall_fscore_support(gold, predicted, labels=labels,
                                                                     zero_division=0)
    matrix = confusion_matrix(gold, predicted, labels=labels)
    per_label = [{"label": name, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s),
                  "predicted": int(matrix[:, i].sum())}
                 for i, (name, p, r, f, s) in enumerate(zip(labels, precision, recall, f1, support))]
    return {"n": len(gold), "accuracy": float(accuracy_score(gold, predicted)),
            "macro_f1": float(f1_score(gold, predicted, labels=present, average="macro", zero_division=0)),
            "labels": labels, "confusion": matrix.tolist(), "per_label": per_label}
