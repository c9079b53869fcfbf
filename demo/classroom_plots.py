"""The classroom reveal chart: the class's answers as a histogram beside the model's probabilities."""

from __future__ import annotations

import plotly.graph_objects as go

from classroom.kinds import display_answer, normalize_answer
from demo.plots import BAR_COLOR, CONTROL_COLOR, plot_text

MAX_BARS = 12


def reveal_rows(model: dict, summary: dict, choices: list[str] | None) -> list[tuple[str, float, float]]:
    """``(answer as shown, share of the class, model probability)`` rows: the model's top answers first,
    then the class's other answers by count, at most ``MAX_BARS``."""
    total = summary["total"] or 1
    counts = summary["counts"]
    rows: dict[str, tuple[str, float, float]] = {}
    for record in model.get("top", []):
        key = normalize_answer(record["answer"])
        rows.setdefault(key, (record["answer"], counts.get(key, 0) / total, record["score"]))
    for key, count in sorted(counts.items(), key=lambda kv: -kv[1]):
        rows.setdefault(key, (display_answer(key, choices), count / total, 0.0))
    ranked = sorted(rows.values(), key=lambda r: -(r[1] + r[2]))
    return ranked[:MAX_BARS]


def class_vs_model(model: dict, summary: dict, choices: list[str] | None, labels: tuple[str, str]) -> go.Figure:
    """Horizontal grouped bars per answer: share of the class (``labels[0]``) and model probability (``labels[1]``)."""
    rows = reveal_rows(model, summary, choices)
    names = [plot_text(r[0]) for r in rows]
    fig = go.Figure()
    for index, (label, color) in enumerate(zip(labels, (CONTROL_COLOR, BAR_COLOR)), start=1):
        values = [r[index] for r in rows]
        fig.add_trace(go.Bar(x=values, y=names, orientation="h", name=plot_text(label), marker_color=color,
                             text=[f"{v:.0%}" for v in values], textposition="auto",
                             hovertemplate="%{y}: %{x:.1%}<extra>" + plot_text(label) + "</extra>"))
    fig.update_layout(barmode="group", height=max(260, 46 * len(rows) + 90), margin=dict(l=10, r=10, t=30, b=20),
                      xaxis=dict(range=[0, 1], tickformat=".0%"), yaxis=dict(autorange="reversed"),
                      legend=dict(orientation="h", y=1.12))
    return fig
