"""Plotly figures and Markdown of the Fine-tune tab, built from the plain events of a training job.

Events are the dicts of ``model_utils.finetune.EventCallback`` (``kind`` "train", "eval",
"progress", each with a ``run``: "pretrained" or "scratch").
"""

from __future__ import annotations

import plotly.graph_objects as go

from demo.i18n import add_messages
from demo.messages import markdown_text, say

MESSAGES = {
    "en": {
        "finetune.run.pretrained": "from the pretrained model", "finetune.run.scratch": "from scratch (random init)",
        "finetune.axis_step": "step", "finetune.axis_loss": "training loss", "finetune.axis_validation": "validation",
        "finetune.metric.accuracy": "accuracy", "finetune.metric.macro_f1": "macro-F1",
        "finetune.saved": "✅ Saved as **`{checkpoint}`**: pick it in the Classify tab.",
        "finetune.stopped_at": "⏹ Stopped at step {steps} of {max_steps}.",
        "finetune.table": "| run | accuracy | macro-F1 | steps | seconds |",
        "finetune.rows": "{train} training rows, {validation} validation rows",
        "finetune.skipped": ", {skipped} rows skipped (empty text or label)",
        "finetune.labels": "; labels: {labels}.",
    },
    "zh-CN": {
        "finetune.run.pretrained": "从预训练模型开始", "finetune.run.scratch": "从零开始（随机初始化）",
        "finetune.axis_step": "步数", "finetune.axis_loss": "训练损失", "finetune.axis_validation": "验证集",
        "finetune.metric.accuracy": "准确率", "finetune.metric.macro_f1": "宏平均 F1",
        "finetune.saved": "✅ 已保存为 **`{checkpoint}`**：可在“文本分类”页选择它。",
        "finetune.stopped_at": "⏹ 在第 {steps} / {max_steps} 步停止。",
        "finetune.table": "| 运行 | 准确率 | 宏平均 F1 | 步数 | 秒 |",
        "finetune.rows": "训练集 {train} 行，验证集 {validation} 行",
        "finetune.skipped": "，跳过 {skipped} 行（文本或标签为空）",
        "finetune.labels": "；标签：{labels}。",
    },
}
add_messages(MESSAGES)


def run_name(run: str) -> str:
    """How a run ("pretrained", "scratch") is named in the request's language."""
    return say(f"finetune.run.{run}") if run in ("pretrained", "scratch") else run


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
                                 name=run_name(run), line_color=RUN_COLORS.get(run)))
    fig.update_layout(xaxis_title=say("finetune.axis_step"), yaxis_title=say("finetune.axis_loss"), height=300,
                      margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=1.12))
    return fig


def validation_figure(events: list[dict]) -> go.Figure:
    """Validation accuracy (solid) and macro-F1 (dotted) against the step, one colour per run."""
    fig = go.Figure()
    for run, points in _runs(events, "eval").items():
        steps = [p["step"] for p in points]
        for metric, dash in (("accuracy", "solid"), ("macro_f1", "dot")):
            fig.add_trace(go.Scatter(x=steps, y=[p[metric] for p in points], mode="lines+markers",
                                     name=f"{say(f'finetune.metric.{metric}')} · {run_name(run)}",
                                     line=dict(color=RUN_COLORS.get(run), dash=dash)))
    fig.update_layout(xaxis_title=say("finetune.axis_step"),
                      yaxis=dict(title=say("finetune.axis_validation"), range=[0, 1.02], tickformat=".0%"),
                      height=300, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=1.2))
    return fig


def summary_markdown(summary: dict) -> str:
    """Final figures of a job: checkpoint, metrics of each run, steps, time, data counts."""
    lines = []
    if summary.get("checkpoint"):
        lines.append(say("finetune.saved", checkpoint=summary["checkpoint"]))
    if summary.get("removed"):
        lines.append(say("checkpoints.removed", names=", ".join(f"local:{name}" for name in summary["removed"])))
    if summary.get("stopped"):
        lines.append(say("finetune.stopped_at", steps=summary["steps"], max_steps=summary["max_steps"]))
    lines.append("\n" + say("finetune.table") + "\n|---|---|---|---|---|")
    for run in ("pretrained", "scratch"):
        part = summary.get(run)
        if part:
            metrics = part["metrics"]
            acc = f"{metrics['accuracy']:.2%}" if "accuracy" in metrics else "–"
            f1 = f"{metrics['macro_f1']:.3f}" if "macro_f1" in metrics else "–"
            lines.append(f"| {run_name(run)} | {acc} | {f1} | {part['steps']} | {part['seconds']:.1f} |")
    lines.append("\n" + say("finetune.rows", train=summary["train_rows"], validation=summary["validation_rows"])
                 + (say("finetune.skipped", skipped=summary["skipped"]) if summary.get("skipped") else "")
                 + say("finetune.labels", labels=", ".join(markdown_text(label) for label in summary["labels"])))
    return "\n".join(lines)
