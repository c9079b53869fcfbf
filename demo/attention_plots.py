"""Plotly figures of the Attention tab, built from the plain data of ``model_utils.attention``.

Token axes are categorical with position-tagged labels ("the (1)", "the (4)"), so a repeated token
keeps its own row and column; matrices stay numpy arrays (fast to build) and are sent as lists
rounded to the 4 decimals their hover shows. :func:`with_export` attaches Plotly's own
toolbar configuration so its camera button saves PNG or SVG.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from demo.i18n import add_messages
from demo.messages import say
from demo.plots import plot_text

COLORSCALE = "Blues"
SUMMARY_METRICS = ("entropy", "cls", "sep", "self", "previous", "next")
DECIMALS = 4  # values are sent rounded to what the hover shows (%{z:.4f}): smaller answers, nothing lost on screen

MESSAGES = {
    "en": {
        "attention.plot.key_axis": "key (attended to)", "attention.plot.query_axis": "query (attending)",
        "attention.plot.hover": "%{{y}} → %{{x}}<br>weight %{{z:.4f}}",
        "attention.plot.head": "head {head}", "attention.plot.layer_heads": "All heads of layer {layer}",
        "attention.plot.summary.entropy": "Entropy (bits)", "attention.plot.summary.cls": "Share to [CLS]",
        "attention.plot.summary.sep": "Share to [SEP]", "attention.plot.summary.self": "Share to itself",
        "attention.plot.summary.previous": "Share to previous token",
        "attention.plot.summary.next": "Share to next token",
        "attention.plot.summary_hover": "layer %{{y}}, head %{{x}}<br>{metric}: %{{z:.3f}}",
        "attention.plot.head_axis": "head", "attention.plot.layer_axis": "layer",
        "attention.plot.summary_title": "Per-head summary (averaged over query tokens)",
        "attention.plot.share": "share", "attention.plot.bits": "bits",
        "attention.plot.rollout": "Attention rollout through layer {layer} (heads averaged, residual added, "
                                  "layers multiplied)",
        "attention.plot.scaled": "q·k / √d_k (scaled score)", "attention.plot.softmax": "softmax → attention weight",
        "attention.plot.scaled_name": "scaled score", "attention.plot.weight_name": "weight",
        "attention.plot.math_title": "Layer {layer}, head {head}, query “{query}”",
        "attention.plot.math_causal": " — keys after the query are masked (causal)",
    },
    "zh-CN": {
        "attention.plot.key_axis": "键（被关注的词元）", "attention.plot.query_axis": "查询（发出关注的词元）",
        "attention.plot.hover": "%{{y}} → %{{x}}<br>权重 %{{z:.4f}}",
        "attention.plot.head": "注意力头 {head}", "attention.plot.layer_heads": "第 {layer} 层的全部注意力头",
        "attention.plot.summary.entropy": "熵（比特）", "attention.plot.summary.cls": "关注 [CLS] 的比例",
        "attention.plot.summary.sep": "关注 [SEP] 的比例", "attention.plot.summary.self": "关注自身的比例",
        "attention.plot.summary.previous": "关注前一个词元的比例",
        "attention.plot.summary.next": "关注后一个词元的比例",
        "attention.plot.summary_hover": "第 %{{y}} 层，注意力头 %{{x}}<br>{metric}：%{{z:.3f}}",
        "attention.plot.head_axis": "注意力头", "attention.plot.layer_axis": "层",
        "attention.plot.summary_title": "各注意力头的统计（对查询词元取平均）",
        "attention.plot.share": "比例", "attention.plot.bits": "比特",
        "attention.plot.rollout": "到第 {layer} 层为止的注意力 rollout（各头取平均、加上残差、逐层相乘）",
        "attention.plot.scaled": "q·k / √d_k（缩放后的分数）", "attention.plot.softmax": "softmax → 注意力权重",
        "attention.plot.scaled_name": "缩放后的分数", "attention.plot.weight_name": "权重",
        "attention.plot.math_title": "第 {layer} 层，注意力头 {head}，查询“{query}”",
        "attention.plot.math_causal": " —— 查询之后的键被遮蔽（因果注意力）",
    },
}
add_messages(MESSAGES)


def token_labels(tokens: list[str]) -> list[str]:
    """Readable, position-tagged labels: byte-level BPE's "Ġ" shown as a space marker."""
    return [f"{t.replace('Ġ', '␣').replace('▁', '␣')} ({i})" for i, t in enumerate(tokens)]


def _plot_labels(tokens: list[str]) -> list[str]:
    """:func:`token_labels` as Plotly should show them (literally, never as its HTML subset)."""
    return [plot_text(label) for label in token_labels(tokens)]


def _token_axes(fig: go.Figure, show_titles: bool = True) -> None:
    fig.update_xaxes(type="category", tickangle=-60, title_text=say("attention.plot.key_axis") if show_titles else None)
    fig.update_yaxes(type="category", autorange="reversed",
                     title_text=say("attention.plot.query_axis") if show_titles else None)


def attention_heatmap(matrix: Any, tokens: list[str], title: str) -> go.Figure:
    """Heatmap of one ``[query][key]`` attention matrix with token labels on both axes."""
    labels = _plot_labels(tokens)
    fig = go.Figure(go.Heatmap(z=np.asarray(matrix, dtype=np.float32), x=labels, y=labels, colorscale=COLORSCALE,
                               zmin=0, hovertemplate=say("attention.plot.hover") + "<extra></extra>"))
    _token_axes(fig)
    side = max(420, min(900, 120 + 18 * len(tokens)))
    fig.update_layout(title=title, height=side, margin=dict(l=10, r=10, t=60, b=10))
    return fig


def layer_grid(layer_attention: Any, tokens: list[str], layer: int) -> go.Figure:
    """All heads of one layer as small heatmaps sharing one colour scale."""
    weights = np.asarray(layer_attention, dtype=np.float32)
    heads = weights.shape[0]
    cols = min(4, heads)
    rows = math.ceil(heads / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[say("attention.plot.head", head=h) for h in range(heads)],
                        horizontal_spacing=0.03, vertical_spacing=0.08 / max(1, rows - 1) + 0.02)
    labels = _plot_labels(tokens)
    for h in range(heads):
        fig.add_trace(go.Heatmap(z=weights[h], x=labels, y=labels, coloraxis="coloraxis",
                                 hovertemplate=f"{say('attention.plot.head', head=h)}<br>"
                                               + say("attention.plot.hover") + "<extra></extra>"),
                      row=h // cols + 1, col=h % cols + 1)
    _token_axes(fig, show_titles=False)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    fig.update_layout(title=say("attention.plot.layer_heads", layer=layer), coloraxis=dict(colorscale=COLORSCALE, cmin=0),
                      height=120 + 230 * rows, margin=dict(l=10, r=10, t=70, b=10))
    return fig


def summary_chart(rows: list[dict], num_layers: int, num_heads: int) -> go.Figure:
    """One layer x head heatmap per summary metric, to spot heads worth a closer look.

    The shares (0–1) use one colour scale (bar on the right); entropy has its own (bar on the left).
    """
    metrics = [m for m in SUMMARY_METRICS if any(r[m] is not None for r in rows)]
    cols = min(3, len(metrics))
    n_rows = math.ceil(len(metrics) / cols)
    fig = make_subplots(rows=n_rows, cols=cols, subplot_titles=[say(f"attention.plot.summary.{m}") for m in metrics],
                        horizontal_spacing=0.06, vertical_spacing=0.18 if n_rows > 1 else 0.1)
    for i, metric in enumerate(metrics):
        z = [[None] * num_heads for _ in range(num_layers)]
        for r in rows:
            z[r["layer"]][r["head"]] = r[metric]
        fig.add_trace(go.Heatmap(z=z, coloraxis="coloraxis2" if metric == "entropy" else "coloraxis",
                                 hovertemplate=say("attention.plot.summary_hover",
                                                   metric=say(f"attention.plot.summary.{metric}"))
                                 + "<extra></extra>"),
                      row=i // cols + 1, col=i % cols + 1)
    fig.update_xaxes(title_text=say("attention.plot.head_axis"), dtick=1)
    fig.update_yaxes(title_text=say("attention.plot.layer_axis"), dtick=1, autorange="reversed")
    fig.update_layout(title=say("attention.plot.summary_title"), height=140 + 300 * n_rows,
                      coloraxis=dict(colorscale=COLORSCALE, cmin=0, cmax=1,
                                     colorbar=dict(title=say("attention.plot.share"))),
                      coloraxis2=dict(colorscale="Viridis", colorbar=dict(title=say("attention.plot.bits"), x=-0.12,
                                                                          len=0.5, y=1, yanchor="top")),
                      margin=dict(l=90, r=10, t=70, b=10))
    return fig


def rollout_heatmap(matrix: Any, tokens: list[str], layer: int) -> go.Figure:
    """Attention rollout accumulated through ``layer`` (Abnar & Zuidema, 2020)."""
    return attention_heatmap(matrix, tokens, say("attention.plot.rollout", layer=layer))


def math_chart(math_view: dict) -> go.Figure:
    """Scaled scores and softmax weights of one query over all keys; masked keys drawn in grey."""
    labels = _plot_labels(math_view["tokens"])
    keys = list(range(len(labels)))
    masked = math_view["masked"]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=[say("attention.plot.scaled"), say("attention.plot.softmax")])
    scaled = [None if m else s for s, m in zip(math_view["scaled"], masked)]
    fig.add_trace(go.Bar(x=keys, y=scaled, name=say("attention.plot.scaled_name"), marker_color="#4c78a8",
                         hovertext=labels, hovertemplate="%{hovertext}: %{y:.4f}<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Bar(x=keys, y=math_view["weights"], name=say("attention.plot.weight_name"), marker_color=[
        "#bbbbbb" if m else "#f58518" for m in masked], hovertext=labels,
        hovertemplate="%{hovertext}: %{y:.4f}<extra></extra>"), row=2, col=1)
    fig.update_xaxes(tickmode="array", tickvals=keys, ticktext=labels, tickangle=-60, row=2, col=1)
    title = (say("attention.plot.math_title", layer=math_view["layer"], head=math_view["head"],
                 query=labels[math_view["query"]])
             + (say("attention.plot.math_causal") if any(masked) else ""))
    fig.update_layout(title=title, height=560, showlegend=False, margin=dict(l=10, r=10, t=80, b=10))
    return fig


def export_config(image_format: str, filename: str) -> dict:
    """Plotly config whose toolbar camera button downloads ``image_format`` ("png" or "svg")."""
    fmt = image_format if image_format in ("png", "svg") else "png"
    return {"displaylogo": False, "displayModeBar": True,
            "toImageButtonOptions": {"format": fmt, "filename": filename, "scale": 2 if fmt == "png" else 1}}


def _plain(value: Any) -> Any:
    """Plotly's binary array spec ({"dtype", "bdata", "shape"}) as a rounded nested list, else unchanged.

    Plotly (Python) stores numpy arrays in that binary form; Gradio's bundled Plotly.js cannot read it.
    """
    if not (isinstance(value, dict) and "bdata" in value and "dtype" in value):
        return value
    array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
    shape = value.get("shape")
    if shape:
        array = array.reshape([int(n) for n in str(shape).split(",")])
    return np.round(array.astype(np.float64), DECIMALS).tolist() if array.dtype.kind == "f" else array.tolist()


def with_export(fig: go.Figure, image_format: str, filename: str):
    """``gr.Plot`` value carrying ``fig`` plus :func:`export_config` (Gradio passes ``config`` to Plotly)."""
    from gradio.components.plot import PlotData

    spec = fig.to_dict()
    spec["data"] = [{key: _plain(value) for key, value in trace.items()} for trace in spec["data"]]
    spec["config"] = export_config(image_format, filename)
    return PlotData(type="plotly", plot=json.dumps(spec))
