"""Plotly figures shared by the tabs, built from the plain data of ``model_utils`` functions.

Any tab may add a helper here; each takes lists/dicts and returns a ``go.Figure``.
"""

from __future__ import annotations

import html

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from demo.i18n import add_messages
from demo.messages import say

BAR_COLOR = "#3b82f6"
CONTROL_COLOR = "#f97316"

MESSAGES = {
    "en": {
        "plots.mask_title": "{model} · mask {number}", "plots.probability": "probability",
        "plots.original_order": "original order", "plots.shuffled_control": "control: sentence of another text",
        "plots.mean": "mean {value:.2f}", "plots.sentence_pair": "sentence pair",
    },
    "zh-CN": {
        "plots.mask_title": "{model} · 第 {number} 个掩码", "plots.probability": "概率",
        "plots.original_order": "原始顺序", "plots.shuffled_control": "对照：另一篇文本的句子",
        "plots.mean": "平均 {value:.2f}", "plots.sentence_pair": "句子对",
    },
}
add_messages(MESSAGES)


def plot_text(text: str) -> str:
    """User-derived ``text`` (a label, a token) as Plotly should show it: literally.

    Plotly renders a few HTML tags in axis and hover text (``<a href>`` becomes a live link,
    ``<b>`` bold); escaped, ``<``, ``>`` and ``&`` show as typed.
    """
    return html.escape(str(text), quote=False)


def _short(name: str, width: int = 28) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def mask_bars(results: list[dict]) -> go.Figure:
    """Per-mask horizontal probability bars: one row per mask, one column per model.

    ``results`` holds one ``run_fill_mask`` record per model (``{"model", "predictions"}``).
    """
    usable = [r for r in results if r.get("predictions")]
    if not usable:
        return go.Figure()
    rows = max(len(r["predictions"]) for r in usable)
    titles = [say("plots.mask_title", model=plot_text(_short(r["model"])), number=m + 1)
              for m in range(rows) for r in usable]
    fig = make_subplots(rows=rows, cols=len(usable), subplot_titles=titles,
                        horizontal_spacing=0.12, vertical_spacing=min(0.12, 0.3 / rows))
    for col, result in enumerate(usable, start=1):
        for row, candidates in enumerate(result["predictions"], start=1):
            fig.add_trace(go.Bar(
                x=[c["score"] for c in candidates], y=[plot_text(c["token_str"]) for c in candidates],
                orientation="h", marker_color=BAR_COLOR, showlegend=False,
                text=[f"{c['score']:.1%}" for c in candidates], textposition="auto",
                hovertemplate="%{y}: %{x:.4f}<extra></extra>"), row=row, col=col)
            fig.update_yaxes(autorange="reversed", row=row, col=col)
            fig.update_xaxes(tickformat=".2~%", rangemode="tozero", row=row, col=col)
    fig.update_layout(height=max(280, 230 * rows), margin=dict(l=10, r=10, t=40, b=20))
    return fig


def probability_bars(probabilities: dict[str, float], title: str = "") -> go.Figure:
    """Vertical bars of named probabilities (e.g. IsNext / NotNext)."""
    names = list(probabilities)
    values = [probabilities[n] for n in names]
    fig = go.Figure(go.Bar(x=names, y=values, marker_color=[BAR_COLOR, CONTROL_COLOR][: len(names)] or None,
                           text=[f"{v:.1%}" for v in values], textposition="auto"))
    fig.update_layout(title=title, yaxis=dict(range=[0, 1], tickformat=".0%", title=say("plots.probability")),
                      height=300, margin=dict(l=10, r=10, t=40 if title else 10, b=20))
    return fig


def paragraph_chart(result: dict) -> go.Figure:
    """P(IsNext) of each consecutive sentence pair vs the shuffled control, with their means."""
    fig = go.Figure()
    for key, name, color in (("pairs", say("plots.original_order"), BAR_COLOR),
                             ("control", say("plots.shuffled_control"), CONTROL_COLOR)):
        records = result[key]
        fig.add_trace(go.Bar(
            x=[r["index"] for r in records], y=[r["is_next"] for r in records], name=name,
            marker_color=color, customdata=[[r["first"], r["second"]] for r in records],
            hovertemplate="A: %{customdata[0]}<br>B: %{customdata[1]}<br>P(IsNext)=%{y:.3f}"
                          f"<extra>{name}</extra>"))
    for mean_key, color in (("mean_is_next", BAR_COLOR), ("mean_control", CONTROL_COLOR)):
        fig.add_hline(y=result[mean_key], line_dash="dash", line_color=color,
                      annotation_text=say("plots.mean", value=result[mean_key]), annotation_position="top left")
    fig.update_layout(barmode="group", height=360, margin=dict(l=10, r=10, t=30, b=30),
                      xaxis=dict(title=say("plots.sentence_pair"), dtick=1),
                      yaxis=dict(title="P(IsNext)", range=[0, 1.05], tickformat=".0%"),
                      legend=dict(orientation="h", y=1.1))
    return fig
