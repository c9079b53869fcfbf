"""Plotly figures of the Attention tab, built from the plain data of ``model_utils.attention``.

Every figure uses numeric axes with token tick labels (a sentence often repeats a token, and
Plotly would merge repeated category labels). :func:`with_export` attaches Plotly's own
toolbar configuration so its camera button saves PNG or SVG.
"""

from __future__ import annotations

import json
import math

import plotly.graph_objects as go
from plotly.subplots import make_subplots

COLORSCALE = "Blues"
SUMMARY_METRICS = ("entropy", "cls", "sep", "self", "previous", "next")
SUMMARY_TITLES = {"entropy": "Entropy (bits)", "cls": "Share to [CLS]", "sep": "Share to [SEP]",
                  "self": "Share to itself", "previous": "Share to previous token",
                  "next": "Share to next token"}


def token_labels(tokens: list[str]) -> list[str]:
    """Readable, position-tagged labels: byte-level BPE's "Ġ" shown as a space marker."""
    return [f"{t.replace('Ġ', '␣').replace('▁', '␣')} ({i})" for i, t in enumerate(tokens)]


def _token_axes(fig: go.Figure, tokens: list[str], row: int | None = None, col: int | None = None,
                show: bool = True) -> None:
    ticks = dict(tickmode="array", tickvals=list(range(len(tokens))), ticktext=token_labels(tokens),
                 showticklabels=show)
    fig.update_xaxes(title_text="key (attended to)" if show else None, tickangle=-60, row=row, col=col, **ticks)
    fig.update_yaxes(title_text="query (attending)" if show else None, autorange="reversed",
                     row=row, col=col, **ticks)


def _hover(tokens: list[str]) -> list[list[str]]:
    labels = token_labels(tokens)
    return [[f"{q} → {k}" for k in labels] for q in labels]


def attention_heatmap(matrix: list[list[float]], tokens: list[str], title: str) -> go.Figure:
    """Heatmap of one ``[query][key]`` attention matrix with token labels on both axes."""
    fig = go.Figure(go.Heatmap(z=matrix, text=_hover(tokens), colorscale=COLORSCALE, zmin=0,
                               hovertemplate="%{text}<br>weight %{z:.4f}<extra></extra>"))
    _token_axes(fig, tokens)
    side = max(420, min(900, 120 + 18 * len(tokens)))
    fig.update_layout(title=title, height=side, margin=dict(l=10, r=10, t=60, b=10))
    return fig


def layer_grid(layer_attention: list[list[list[float]]], tokens: list[str], layer: int) -> go.Figure:
    """All heads of one layer as small heatmaps sharing one colour scale."""
    heads = len(layer_attention)
    cols = min(4, heads)
    rows = math.ceil(heads / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[f"head {h}" for h in range(heads)],
                        horizontal_spacing=0.03, vertical_spacing=0.08 / max(1, rows - 1) + 0.02)
    hover = _hover(tokens)
    for h, matrix in enumerate(layer_attention):
        fig.add_trace(go.Heatmap(z=matrix, text=hover, coloraxis="coloraxis",
                                 hovertemplate=f"head {h}<br>%{{text}}<br>weight %{{z:.4f}}<extra></extra>"),
                      row=h // cols + 1, col=h % cols + 1)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False, autorange="reversed")
    fig.update_layout(title=f"All heads of layer {layer}", coloraxis=dict(colorscale=COLORSCALE, cmin=0),
                      height=120 + 230 * rows, margin=dict(l=10, r=10, t=70, b=10))
    return fig


def summary_chart(rows: list[dict], num_layers: int, num_heads: int) -> go.Figure:
    """One layer x head heatmap per summary metric, to spot heads worth a closer look.

    The shares (0–1) use one colour scale (bar on the right); entropy has its own (bar on the left).
    """
    metrics = [m for m in SUMMARY_METRICS if any(r[m] is not None for r in rows)]
    cols = min(3, len(metrics))
    n_rows = math.ceil(len(metrics) / cols)
    fig = make_subplots(rows=n_rows, cols=cols, subplot_titles=[SUMMARY_TITLES[m] for m in metrics],
                        horizontal_spacing=0.06, vertical_spacing=0.18 if n_rows > 1 else 0.1)
    for i, metric in enumerate(metrics):
        z = [[None] * num_heads for _ in range(num_layers)]
        for r in rows:
            z[r["layer"]][r["head"]] = r[metric]
        fig.add_trace(go.Heatmap(z=z, coloraxis="coloraxis2" if metric == "entropy" else "coloraxis",
                                 hovertemplate=f"layer %{{y}}, head %{{x}}<br>{SUMMARY_TITLES[metric]}: "
                                               "%{z:.3f}<extra></extra>"),
                      row=i // cols + 1, col=i % cols + 1)
    fig.update_xaxes(title_text="head", dtick=1)
    fig.update_yaxes(title_text="layer", dtick=1, autorange="reversed")
    fig.update_layout(title="Per-head summary (averaged over query tokens)", height=140 + 300 * n_rows,
                      coloraxis=dict(colorscale=COLORSCALE, cmin=0, cmax=1, colorbar=dict(title="share")),
                      coloraxis2=dict(colorscale="Viridis", colorbar=dict(title="bits", x=-0.12, len=0.5, y=1,
                                                                          yanchor="top")),
                      margin=dict(l=90, r=10, t=70, b=10))
    return fig


def rollout_heatmap(matrix: list[list[float]], tokens: list[str], layer: int) -> go.Figure:
    """Attention rollout accumulated through ``layer`` (Abnar & Zuidema, 2020)."""
    return attention_heatmap(matrix, tokens, f"Attention rollout through layer {layer} "
                                             "(heads averaged, residual added, layers multiplied)")


def math_chart(math_view: dict) -> go.Figure:
    """Scaled scores and softmax weights of one query over all keys; masked keys drawn in grey."""
    labels = token_labels(math_view["tokens"])
    keys = list(range(len(labels)))
    masked = math_view["masked"]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=["q·k / √d_k (scaled score)", "softmax → attention weight"])
    scaled = [None if m else s for s, m in zip(math_view["scaled"], masked)]
    fig.add_trace(go.Bar(x=keys, y=scaled, name="scaled score", marker_color="#4c78a8",
                         hovertext=labels, hovertemplate="%{hovertext}: %{y:.4f}<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Bar(x=keys, y=math_view["weights"], name="weight", marker_color=[
        "#bbbbbb" if m else "#f58518" for m in masked], hovertext=labels,
        hovertemplate="%{hovertext}: %{y:.4f}<extra></extra>"), row=2, col=1)
    fig.update_xaxes(tickmode="array", tickvals=keys, ticktext=labels, tickangle=-60, row=2, col=1)
    title = (f"Layer {math_view['layer']}, head {math_view['head']}, query “{labels[math_view['query']]}”"
             + (" — keys after the query are masked (causal)" if any(masked) else ""))
    fig.update_layout(title=title, height=560, showlegend=False, margin=dict(l=10, r=10, t=80, b=10))
    return fig


def export_config(image_format: str, filename: str) -> dict:
    """Plotly config whose toolbar camera button downloads ``image_format`` ("png" or "svg")."""
    fmt = image_format if image_format in ("png", "svg") else "png"
    return {"displaylogo": False, "displayModeBar": True,
            "toImageButtonOptions": {"format": fmt, "filename": filename, "scale": 2 if fmt == "png" else 1}}


def with_export(fig: go.Figure, image_format: str, filename: str):
    """``gr.Plot`` value carrying ``fig`` plus :func:`export_config` (Gradio passes ``config`` to Plotly)."""
    from gradio.components.plot import PlotData

    spec = json.loads(fig.to_json())
    spec["config"] = export_config(image_format, filename)
    return PlotData(type="plotly", plot=json.dumps(spec))
