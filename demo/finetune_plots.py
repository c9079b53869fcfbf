"""Plotly figures and Markdown of the Fine-tune tab, built from the plain events of a training job.

Events are the dicts of ``model_utils.finetune.EventCallback`` (``kind`` "train", "eval",
"progress", each with a ``run``: "pretrained" or "scratch").
"""

from __future__ import annotations

import plotly.graph_objects as go

from demo.messages import markdown_text, say

RUN_NAMES = {"pretrained": "from the pretrained model", "scratch": "from scratch (random init)"}
RUN_COLORS = {"pretrained": "#3b82f6", "scratch": "#f97316"}


def _runs(events: list[dict], kind: str) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {}
    for event in events:
        if event.get("kind") == kind:
            runs.setdefault(event.get("run", "pretrained"), []).append(event)
    return runs


def loss_figure(events: list[dict]) -> go.Figure:
    """Training loss against the optimisation step, one line per run."""
    fig = go.Figure()
    for run, points in _runs(events, "train").items():
        fig.add_trace(go.Scatter(x=[p["step"] for p in points], y=[p["loss"] for p in points], mode="lines+markers",
                                 name=RUN_NAMES.get(run, run), line_color=RUN_COLORS.get(run)))
    fig.update_layout(xaxis_title="step", yaxis_title="training loss", height=300,
                      margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=1.12))
    return fig


def validation_figure(events: list[dict]) -> go.Figure:
    """Validation accuracy (solid) and macro-F1 (dotted) against the step, one colour per run."""
    fig = go.Figure()
    for run, points in _runs(events, "eval").items():
        steps = [p["step"] for p in points]
        for metric, dash in (("accuracy", "solid"), ("macro_f1", "dot")):
            fig.add_trace(go.Scatter(x=steps, y=[p[metric] for p in points], mode="lines+markers",
                                     name=f"{metric} · {RUN_NAMES.get(run, run)}",
                                     line=dict(color=RUN_COLORS.get(run), dash=dash)))
    fig.update_layout(xaxis_title="step", yaxis=dict(title="validation", range=[0, 1.02], tickformat=".0%"),
                      height=300, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=1.2))
    return fig


def progress_line(events: list[dict]) -> tuple[int, int, str] | None:
    """``(step, total, run)`` of the latest progress event, or None before the first step."""
    latest = next((e for e in reversed(events) if e.get("kind") == "progress"), None)
    return None if latest is None else (latest["step"], latest["total"], latest.get("run", "pretrained"))


def summary_markdown(summary: dict) -> str:
    """Final figures of a job: checkpoint, metrics of each run, steps, time, data counts."""
    lines = []
    if summary.get("checkpoint"):
        lines.append(f"✅ Saved as **`{summary['checkpoint']}`**: pick it in the Classify tab.")
    if summary.get("removed"):
        lines.append(say("checkpoints.removed", names=", ".join(f"local:{name}" for name in summary["removed"])))
    if summary.get("stopped"):
        lines.append(f"⏹ Stopped at step {summary['steps']} of {summary['max_steps']}.")
    lines.append("\n| run | accuracy | macro-F1 | steps | seconds |\n|---|---|---|---|---|")
    for run in ("pretrained", "scratch"):
        part = summary.get(run)
        if part:
            metrics = part["metrics"]
            acc = f"{metrics['accuracy']:.2%}" if "accuracy" in metrics else "–"
            f1 = f"{metrics['macro_f1']:.3f}" if "macro_f1" in metrics else "–"
            lines.append(f"| {RUN_NAMES[run]} | {acc} | {f1} | {part['steps']} | {part['seconds']:.1f} |")
    lines.append(f"\n{summary['train_rows']} training rows, {summary['validation_rows']} validation rows"
                 + (f", {summary['skipped']} rows skipped (empty text or label)" if summary.get("skipped") else "")
                 + f"; labels: {', '.join(markdown_text(label) for label in summary['labels'])}.")
    return "\n".join(lines)
