"""Render helpers of the Classify tab: plain results -> gr.Label dicts, Plotly figures, spans.

Every function takes the plain data returned by ``model_utils.classify``/``explain``/``batch``
and returns what a Gradio component displays; nothing here touches a model.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from demo.messages import markdown_text, say, translate
from demo.plots import plot_text

SEGMENT_BREAK = "  ‖  "  # shown between the first and second text of a pair


def label_value(scores: list[dict]) -> dict[str, float]:
    """``[{"label", "score"}]`` -> the ``{label: score}`` dict gr.Label displays."""
    return {r["label"]: float(r["score"]) for r in scores}


def scores_figure(scores: list[dict]) -> go.Figure:
    """Horizontal bar chart of every label's score, best on top."""
    ordered = list(reversed(scores))
    fig = go.Figure(go.Bar(
        x=[r["score"] for r in ordered], y=[plot_text(r["label"]) for r in ordered], orientation="h",
        text=[f"{r['score']:.3f}" for r in ordered], textposition="auto",
        marker_color=["#f97316" if r is scores[0] else "#60a5fa" for r in ordered],
    ))
    fig.update_layout(height=80 + 32 * len(scores), margin=dict(l=10, r=10, t=10, b=10),
                      xaxis=dict(range=[0, max(1.0, max(r["score"] for r in scores))], title=say("classify.axis_score")))
    return fig


def highlighted_words(explanation: dict) -> list[tuple[str, float | None]]:
    """Explanation -> gr.HighlightedText spans over the user's text, scores scaled to [-1, 1].

    Text between words (spaces, a pair separator) is kept as unscored spans so the sentence
    reads as typed; positive scores pushed the chosen label up, negative ones pushed it down.
    """
    peak = max((abs(w["score"]) for w in explanation["words"]), default=0.0) or 1.0
    sources = [explanation["text"]] + ([explanation["text_pair"]] if explanation.get("text_pair") else [])
    spans: list[tuple[str, float | None]] = []
    for segment, source in enumerate(sources):
        if segment:
            spans.append((SEGMENT_BREAK, None))
        cursor = 0
        for word in (w for w in explanation["words"] if w["segment"] == segment):
            if word["start"] > cursor:
                spans.append((source[cursor:word["start"]], None))
            spans.append((word["word"], round(word["score"] / peak, 4)))
            cursor = max(cursor, word["end"])
        if cursor < len(source):  # a truncated tail, or trailing spaces
            spans.append((source[cursor:], None))
    return spans


def completeness_note(explanation: dict) -> str:
    """One line of numbers behind the explanation (language-neutral symbols)."""
    total = sum(w["score"] for w in explanation["words"])
    head = f"**{markdown_text(explanation['label'])}**: f(x) = {explanation['score']:.4f} · Σ = {total:+.4f}"
    if explanation.get("truncated"):
        head = say("classify.truncated") + " " + head
    if explanation.get("delta") is None:
        return head
    ok = "✓" if explanation["converged"] else "✗"
    gap = explanation["score"] - explanation["baseline_score"]
    return (f"{head} · f(x) − f(baseline) = {gap:+.4f} · |Σ − (f(x) − f(baseline))| = "
            f"{explanation['delta']:.1e} ≤ {explanation['tolerance']:.0e} {ok} · "
            + say("classify.steps", steps=explanation["n_steps"]))


def predictions_frame(result: dict) -> pd.DataFrame:
    """Batch result -> table of row number, text, prediction, score (and gold/correct with labels)."""
    keys = ["row", "text", "prediction", "score"] + (["gold", "correct"] if result["metrics"] is not None else [])
    rows = [{"row": r["row"], "text": r["text"], "prediction": r["prediction"], "score": round(r["score"], 4),
             "gold": r["gold"], "correct": r["correct"]} for r in result["rows"]]
    frame = pd.DataFrame(rows, columns=keys)
    return frame.rename(columns={key: say(f"classify.col_{key}") for key in keys})


def confusion_figure(metrics: dict) -> go.Figure:
    """Confusion matrix heatmap: rows are gold labels, columns predictions, counts in the cells."""
    labels, matrix = [plot_text(label) for label in metrics["labels"]], metrics["confusion"]
    fig = go.Figure(go.Heatmap(
        z=matrix, x=labels, y=labels, colorscale="Blues", text=matrix, texttemplate="%{text}",
        hovertemplate=say("classify.confusion_hover") + "<extra></extra>",  # Plotly's %{y}: braces doubled
    ))
    fig.update_layout(xaxis_title=say("classify.axis_predicted"), yaxis_title=say("classify.axis_gold"),
                      yaxis_autorange="reversed",
                      height=160 + 40 * len(labels), margin=dict(l=10, r=10, t=10, b=10))
    return fig


def batch_summary(result: dict) -> str:
    """Markdown: rows classified out of the file, per-label metrics, and every note."""
    lines = [say("classify.rows", classified=result["classified"], total=result["total_rows"])
             + (" ✓" if result["complete"] else say("classify.partial"))]
    metrics = result["metrics"]
    if metrics:
        lines.append("\n" + say("classify.metrics_header") + "\n|---|---|---|---|---|")
        lines += [f"| {markdown_text(m['label'])} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |"
                  for m in metrics["per_label"]]
    lines += [f"\n⚠️ {markdown_text(translate(note))}" for note in result["notes"]]
    return "\n".join(lines)
