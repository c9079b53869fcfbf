"""A room's items, answers and the model's outputs as CSV (one row per answer)."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone

COLUMNS = ["room", "item", "kind", "question", "model", "model_answer", "model_top", "learner", "answer",
           "agrees_with_model", "answered_at_utc"]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    """A cell a spreadsheet shows as text: user text starting like a formula gets a leading quote."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _question(item: dict) -> str:
    payload = item["payload"]
    if item["kind"] == "next-sentence":
        return f"{payload['first']} || {payload['second']}"
    if item["kind"] == "attention":
        return f"{payload['text']} || word={payload['word']} layer={payload['layer']} head={payload['head']}"
    return payload.get("text", json.dumps(payload, ensure_ascii=False))


def _when(seconds: float | None) -> str:
    return "" if seconds is None else datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")


def to_csv(records: list[dict]) -> str:
    """CSV text of :meth:`classroom.rooms.Classroom.records`; items nobody answered get one row too."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for record in records:
        item, model = record["item"], record["model"] or {}
        top = "; ".join(f"{r['answer']}={r['score']:.4f}" for r in model.get("top", []))
        common = [record["room"], item["position"], item["kind"], _question(item), item["model"],
                  model.get("best", ""), top]
        answers = record["answers"] or [{"learner": "", "answer": "", "answered_at": None}]
        for answer in answers:
            agrees = "" if record["model_best"] is None or not answer["learner"] else \
                str(answer["answer"] == record["model_best"]).lower()
            writer.writerow([_cell(v) for v in common + [answer["learner"], answer["answer"], agrees,
                                                         _when(answer["answered_at"])]])
    return out.getvalue()
