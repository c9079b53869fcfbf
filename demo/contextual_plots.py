"""Plotly figures and CSV files of the Contextual lab, built from the plain records of ``model_utils.contextual``.

Occurrences are labelled "3 · river" (number, then the sense label if any) so repeated labels keep
their own row; sentences appear in hover text with the word in «guillemets». Everything typed by a
user goes through :func:`demo.plots.plot_text`. Titles and axis names are in the request's language
(codes ``contextual.plot.*`` of the catalogue). Figures are exported with the Attention tab's mechanism
(:func:`demo.attention_plots.with_export`: Plotly's own camera button, PNG or SVG, no kaleido).
"""

from __future__ import annotations

import csv
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go

from demo.i18n import add_messages
from demo.messages import say
from demo.plots import BAR_COLOR, CONTROL_COLOR, plot_text

PALETTE = ["#3b82f6", "#f97316", "#10b981", "#a855f7", "#ef4444", "#eab308", "#14b8a6", "#ec4899", "#64748b"]
UNLABELLED = "—"
HOVER_SENTENCES_UP_TO = 50  # larger matrices show labels only in their hover text (the page stays light)
_EXPORT_ROOT = Path(tempfile.gettempdir()) / "plm-contextual-exports"

MESSAGES = {
    "en": {
        "contextual.plot.heatmap": "Cosine similarity of the occurrences of “{word}” at layer {layer}",
        "contextual.plot.embeddings": "embedding output",
        "contextual.plot.lines": "Mean similarity per layer: same sense vs different senses",
        "contextual.plot.lines_all": "Mean similarity per layer (all pairs)",
        "contextual.plot.within": "same sense", "contextual.plot.between": "different senses", "contextual.plot.all": "all pairs",
        "contextual.plot.layer_axis": "layer (0 = embeddings)", "contextual.plot.similarity_axis": "mean cosine similarity",
        "contextual.plot.projection": "PCA of the occurrences at layer {layer} (axes explain {first:.0%} and {second:.0%})",
        "contextual.plot.probe": "Sense probe: held-out accuracy per layer ({folds}-fold, {count} occurrences)",
        "contextual.plot.held_out": "held-out accuracy", "contextual.plot.train": "accuracy on its own training folds", "contextual.plot.chance": "chance {value:.0%}",
        "contextual.plot.accuracy_axis": "accuracy", "contextual.plot.sentences": "Sentence similarity ({pooling} pooling, last layer)",
        "contextual.plot.sentence_axis": "sentence",
    },
    "zh-CN": {
        "contextual.plot.heatmap": "“{word}”各次出现在第 {layer} 层的余弦相似度",
        "contextual.plot.embeddings": "嵌入层输出",
        "contextual.plot.lines": "每层的平均相似度：同一词义 vs 不同词义",
        "contextual.plot.lines_all": "每层的平均相似度（所有配对）",
        "contextual.plot.within": "同一词义", "contextual.plot.between": "不同词义", "contextual.plot.all": "所有配对",
        "contextual.plot.layer_axis": "层（0 = 嵌入层）", "contextual.plot.similarity_axis": "平均余弦相似度",
        "contextual.plot.projection": "第 {layer} 层各次出现的 PCA 投影（两轴分别解释 {first:.0%} 和 {second:.0%} 的方差）",
        "contextual.plot.probe": "词义探针：每层的留出准确率（{folds} 折，{count} 次出现）",
        "contextual.plot.held_out": "留出准确率", "contextual.plot.train": "在自身训练折上的准确率", "contextual.plot.chance": "随机水平 {value:.0%}",
        "contextual.plot.accuracy_axis": "准确率", "contextual.plot.sentences": "句子相似度（{pooling} 池化，最后一层）",
        "contextual.plot.sentence_axis": "句子",
    },
}


add_messages(MESSAGES)


def occurrence_labels(result: dict) -> list[str]:
    """Axis labels of the occurrences: "3 · river", or "3" without a sense label."""
    return [plot_text(f"{o['index'] + 1} · {o['label']}" if o["label"] else str(o["index"] + 1))
            for o in result["occurrences"]]


def marked_sentence(result: dict, occurrence: dict, width: int = 90) -> str:
    """The occurrence's sentence with the word in «guillemets», cut around it to about ``width`` characters."""
    sentence = result["sentences"][occurrence["sentence"]]
    start, end = occurrence["start"], occurrence["end"]
    left = max(0, start - width // 2)
    text = ("…" if left else "") + sentence[left:start] + "«" + sentence[start:end] + "»" + sentence[end:end + width // 2]
    return plot_text(text + ("…" if end + width // 2 < len(sentence) else ""))


def _pair_hover(texts: list[str], labels: list[str]) -> dict:
    """Heatmap hover settings: both sentences of a cell when there are few, else the two labels."""
    if len(texts) > HOVER_SENTENCES_UP_TO:
        return {"hovertemplate": "%{y} · %{x}<br>cos %{z:.4f}<extra></extra>"}
    custom = [[[texts[i], texts[j]] for j in range(len(texts))] for i in range(len(texts))]
    return {"customdata": custom, "hovertemplate": "%{customdata[0]}<br>%{customdata[1]}<br>cos %{z:.4f}<extra></extra>"}


def _layer_name(layer: int) -> str:
    return f"0 ({say('contextual.plot.embeddings')})" if layer == 0 else str(layer)


def similarity_heatmap(result: dict, layer: int) -> go.Figure:
    """The occurrences' cosine-similarity matrix at ``layer``, sentences in the hover text."""
    labels = occurrence_labels(result)
    matrix = np.asarray(result["layers"][layer]["matrix"], dtype=np.float32)
    hover = [marked_sentence(result, o, width=60) for o in result["occurrences"]]
    fig = go.Figure(go.Heatmap(z=matrix, x=labels, y=labels, colorscale="Viridis", zmin=float(min(0.0, matrix.min())),
                               zmax=1, **_pair_hover(hover, labels)))
    side = max(420, min(900, 140 + 16 * len(labels)))
    fig.update_xaxes(type="category", tickangle=-60)
    fig.update_yaxes(type="category", autorange="reversed")
    fig.update_layout(title=say("contextual.plot.heatmap", word=plot_text(result["word"]), layer=_layer_name(layer)),
                      height=side, margin=dict(l=10, r=10, t=60, b=10))
    return fig


def layer_lines(result: dict, layer: int) -> go.Figure:
    """Mean within-sense and between-sense similarity per layer (all pairs without labels); ``layer`` marked."""
    layers = result["layers"]
    x = [r["layer"] for r in layers]
    labelled = any(r["within"] is not None for r in layers)
    series = (("within", BAR_COLOR), ("between", CONTROL_COLOR)) if labelled else (("all", BAR_COLOR),)
    fig = go.Figure()
    for key, color in series:
        fig.add_trace(go.Scatter(x=x, y=[r[key] for r in layers], mode="lines+markers", name=say(f"contextual.plot.{key}"),
                                 line=dict(color=color), hovertemplate="layer %{x}: %{y:.4f}<extra></extra>"))
    fig.add_vline(x=layer, line_dash="dot", line_color="#888")
    fig.update_layout(title=say("contextual.plot.lines" if labelled else "lines_all"), height=360,
                      xaxis=dict(title=say("contextual.plot.layer_axis"), dtick=1),
                      yaxis=dict(title=say("contextual.plot.similarity_axis")), legend=dict(orientation="h", y=1.12),
                      margin=dict(l=10, r=10, t=70, b=30))
    return fig


def projection_scatter(result: dict, layer: int) -> go.Figure:
    """The occurrences at ``layer`` projected onto 2 PCA axes, one colour per sense label."""
    record = result["layers"][layer]
    points = np.asarray(record["points"], dtype=np.float64).reshape(-1, 2)
    senses = [o["label"] or UNLABELLED for o in result["occurrences"]]
    fig = go.Figure()
    for k, sense in enumerate(dict.fromkeys(senses)):
        rows = [i for i, s in enumerate(senses) if s == sense]
        fig.add_trace(go.Scatter(
            x=points[rows, 0], y=points[rows, 1], mode="markers+text", name=plot_text(sense),
            text=[str(i + 1) for i in rows], textposition="top center",
            marker=dict(size=11, color=PALETTE[k % len(PALETTE)]),
            customdata=[marked_sentence(result, result["occurrences"][i]) for i in rows],
            hovertemplate="%{customdata}<extra>" + plot_text(sense) + "</extra>"))
    first, second = record["explained"]
    fig.update_layout(title=say("contextual.plot.projection", layer=_layer_name(layer), first=first, second=second),
                      height=460, xaxis=dict(title="PC 1", zeroline=False), yaxis=dict(title="PC 2", zeroline=False),
                      legend=dict(orientation="h", y=1.1), margin=dict(l=10, r=10, t=70, b=30))
    return fig


def probe_chart(probe: dict, layer: int) -> go.Figure:
    """Held-out probe accuracy per layer (± one standard deviation over folds), its chance level, and the
    accuracy on the probe's own training folds for contrast."""
    rows = probe["layers"]
    x = [r["layer"] for r in rows]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=[r["accuracy"] for r in rows], mode="lines+markers", name=say("contextual.plot.held_out"),
                             error_y=dict(type="data", array=[r["std"] for r in rows], visible=True),
                             line=dict(color=BAR_COLOR), hovertemplate="layer %{x}: %{y:.1%}<extra></extra>"))
    fig.add_trace(go.Scatter(x=x, y=[r["train_accuracy"] for r in rows], mode="lines", name=say("contextual.plot.train"),
                             line=dict(color="#9ca3af", dash="dash"), hovertemplate="layer %{x}: %{y:.1%}<extra></extra>"))
    fig.add_hline(y=probe["chance"], line_dash="dot", line_color=CONTROL_COLOR,
                  annotation_text=say("contextual.plot.chance", value=probe["chance"]), annotation_position="bottom right")
    fig.add_vline(x=layer, line_dash="dot", line_color="#888")
    fig.update_layout(title=say("contextual.plot.probe", folds=probe["folds"], count=probe["count"]), height=380,
                      xaxis=dict(title=say("contextual.plot.layer_axis"), dtick=1),
                      yaxis=dict(title=say("contextual.plot.accuracy_axis"), range=[0, 1.05], tickformat=".0%"),
                      legend=dict(orientation="h", y=1.12), margin=dict(l=10, r=10, t=70, b=30))
    return fig


def sentence_heatmap(result: dict) -> go.Figure:
    """Cosine-similarity matrix of sentence embeddings, sentences in the hover text."""
    sentences = result["sentences"]
    labels = [str(i + 1) for i in range(len(sentences))]
    short = [plot_text(s if len(s) <= 90 else s[:89] + "…") for s in sentences]
    matrix = np.asarray(result["matrix"], dtype=np.float32)
    fig = go.Figure(go.Heatmap(z=matrix, x=labels, y=labels, colorscale="Viridis", zmin=float(min(0.0, matrix.min())),
                               zmax=1, texttemplate="%{z:.2f}" if len(labels) <= 12 else None,
                               **_pair_hover(short, labels)))
    fig.update_xaxes(type="category", title=say("contextual.plot.sentence_axis"))
    fig.update_yaxes(type="category", autorange="reversed", title=say("contextual.plot.sentence_axis"))
    fig.update_layout(title=say("contextual.plot.sentences", pooling=result["pooling"]), height=max(380, min(900, 160 + 22 * len(labels))),
                      margin=dict(l=10, r=10, t=60, b=10))
    return fig


# ---------------------------------------------------------------------------- CSV


def export_dir(max_age_s: float) -> Path:
    """A new folder for one result's files; folders of earlier results older than ``max_age_s`` are removed."""
    _EXPORT_ROOT.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in _EXPORT_ROOT.iterdir():
        try:
            if now - old.stat().st_mtime > max_age_s:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:  # removed by another request meanwhile
            continue
    return Path(tempfile.mkdtemp(dir=_EXPORT_ROOT))


def _safe_cell(value: Any) -> Any:
    """Text a spreadsheet would run as a formula gets a leading quote (CSV injection); numbers stay."""
    return "'" + value if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _write(path: Path, header: list[str], rows: list[list[Any]]) -> str:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows([_safe_cell(cell) for cell in row] for row in rows)
    return str(path)


def word_csvs(result: dict, folder: Path) -> list[str]:
    """The lab's data as CSV: occurrences, per-layer summary, similarities and projections of every layer."""
    occurrences = result["occurrences"]
    probe = {r["layer"]: r for r in (result["probe"] or {}).get("layers", [])}
    chance = (result["probe"] or {}).get("chance")
    summary = [[r["layer"], r["all"], r["within"], r["between"], probe.get(r["layer"], {}).get("accuracy"),
                probe.get(r["layer"], {}).get("std"), probe.get(r["layer"], {}).get("train_accuracy"), chance]
               for r in result["layers"]]
    pairs = [[r["layer"], i + 1, j + 1, r["matrix"][i][j]] for r in result["layers"]
             for i in range(len(occurrences)) for j in range(i, len(occurrences))]
    points = [[r["layer"], o["index"] + 1, o["label"] or "", x, y] for r in result["layers"]
              for o, (x, y) in zip(occurrences, r["points"])]
    return [
        _write(folder / "contextual_occurrences.csv", ["occurrence", "sentence", "label", "word", "start", "end",
                                                       "tokens", "text"],
               [[o["index"] + 1, o["sentence"] + 1, o["label"] or "", o["text"], o["start"], o["end"],
                 " ".join(o["tokens"]), result["sentences"][o["sentence"]]] for o in occurrences]),
        _write(folder / "contextual_layers.csv", ["layer", "mean_all", "mean_within", "mean_between",
                                                  "probe_accuracy", "probe_std", "probe_train_accuracy", "chance"],
               summary),
        _write(folder / "contextual_similarity.csv", ["layer", "occurrence_a", "occurrence_b", "cosine"], pairs),
        _write(folder / "contextual_projection.csv", ["layer", "occurrence", "label", "pc1", "pc2"], points),
    ]


def sentence_csv(result: dict, folder: Path) -> str:
    """The sentence-similarity matrix as CSV (one row and one column per sentence)."""
    sentences = result["sentences"]
    return _write(folder / "sentence_similarity.csv", ["sentence", *[str(i + 1) for i in range(len(sentences))], "text"],
                  [[i + 1, *row, sentences[i]] for i, row in enumerate(result["matrix"])])


def neighbours_table(result: dict) -> list[list[Any]]:
    """Rows (rank, similarity, word, sentence with the word marked, source) of a nearest-neighbours result."""
    rows = []
    for rank, n in enumerate(result["neighbours"], start=1):
        sentence = n["sentence"]
        marked = sentence[:n["start"]] + "«" + sentence[n["start"]:n["end"]] + "»" + sentence[n["end"]:]
        rows.append([rank, round(n["similarity"], 4), n["word"], marked, n["source"]])
    return rows
