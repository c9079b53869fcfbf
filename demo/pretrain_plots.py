"""Figures, tables and text of the Pretrain tab, built from the plain events and summary of a run.

Events are those of ``model_utils.pretrain_session.run_pretraining``: ``train`` (per step: MLM and
NSP loss, masked-token accuracy), ``eval`` (held-out slice), ``probe`` (top-5 of the probe's mask),
``before``/``data``/``done``.
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from demo.i18n import add_messages
from demo.messages import markdown_text, say
from demo.plots import plot_text

MLM_COLOR, NSP_COLOR, HELD_COLOR = "#3b82f6", "#f97316", "#16a34a"
STATUS_PALETTE = {"mask": "#3b82f6", "random": "#f97316", "unchanged": "#16a34a", "special": "#9ca3af"}

MESSAGES = {
    "en": {
        "pretrain.status.mask": "→ [MASK] (80%)", "pretrain.status.random": "→ random token (10%)",
        "pretrain.status.unchanged": "selected, unchanged (10%)", "pretrain.status.special": "special token",
        "pretrain.chart.loss": "loss", "pretrain.chart.accuracy": "masked-token accuracy",
        "pretrain.chart.perplexity": "held-out perplexity", "pretrain.chart.step": "step",
        "pretrain.chart.mlm_train": "MLM loss (training batch)", "pretrain.chart.nsp_train": "NSP loss (training batch)",
        "pretrain.chart.mlm_held": "MLM loss (held-out)", "pretrain.chart.nsp_held": "NSP loss (held-out)",
        "pretrain.chart.acc_train": "accuracy (training batch)", "pretrain.chart.acc_held": "accuracy (held-out)",
        "pretrain.chart.ppl_held": "perplexity (held-out)",
        "pretrain.metric.mlm_loss": "held-out MLM loss", "pretrain.metric.mlm_accuracy": "held-out masked-token accuracy",
        "pretrain.metric.perplexity": "held-out perplexity", "pretrain.metric.nsp_loss": "held-out NSP loss",
        "pretrain.metric.nsp_accuracy": "held-out NSP accuracy", "pretrain.metric.probe_top5": "probe top-5",
        "pretrain.metric.probe_top1": "probe top-1 probability",
        "pretrain.source.pasted": "pasted text", "pretrain.source.bundled": "bundled corpus sample ({documents} documents)",
        "pretrain.source.nothing": "nothing",
        "pretrain.chart.probability": "probability (when in the top-5)",
        "pretrain.chart.hover": "%{{fullData.name}}: %{{y:.3f}} at step %{{x}}",
        "pretrain.example": "**Training example {number} of {count}**: {selected} of {real} tokens selected (MLM "
                            "probability {probability:.0%}): {masked} → [MASK], {random} → random, {unchanged} unchanged.",
        "pretrain.pair": "- **A**: {a}\n- **B**: {b}\n- **NSP label**: `{label}`",
        "pretrain.p_is_next": "- P(IsNext) by the {model} model: {p:.3f}",
        "pretrain.position": "Position {position}: true token **{original}**, the model sees **{shown}**. Loss = −log "
                             "p(true token):",
        "pretrain.position_loss": "- {model} model: −log {p:.4f} = **{nll:.3f}**; top guesses: {guesses}",
        "pretrain.model.base": "base", "pretrain.model.adapted": "adapted",
        "pretrain.measuring": "⚙️ Measuring the base model on the held-out slice ({sentences} sentences); {sequences} "
                              "training sequences from {documents} documents…",
        "pretrain.step": "🏋️ Step {step} / {total}: MLM loss {mlm:.3f}{nsp}",
        "pretrain.step_nsp": ", NSP loss {nsp:.3f}",
    },
    "zh-CN": {
        "pretrain.status.mask": "→ [MASK]（80%）", "pretrain.status.random": "→ 随机词元（10%）",
        "pretrain.status.unchanged": "被选中，保持不变（10%）", "pretrain.status.special": "特殊词元",
        "pretrain.chart.loss": "损失", "pretrain.chart.accuracy": "掩码词元准确率",
        "pretrain.chart.perplexity": "留出部分的困惑度", "pretrain.chart.step": "步数",
        "pretrain.chart.mlm_train": "MLM 损失（训练批次）", "pretrain.chart.nsp_train": "NSP 损失（训练批次）",
        "pretrain.chart.mlm_held": "MLM 损失（留出部分）", "pretrain.chart.nsp_held": "NSP 损失（留出部分）",
        "pretrain.chart.acc_train": "准确率（训练批次）", "pretrain.chart.acc_held": "准确率（留出部分）",
        "pretrain.chart.ppl_held": "困惑度（留出部分）",
        "pretrain.metric.mlm_loss": "留出部分的 MLM 损失", "pretrain.metric.mlm_accuracy": "留出部分的掩码词元准确率",
        "pretrain.metric.perplexity": "留出部分的困惑度", "pretrain.metric.nsp_loss": "留出部分的 NSP 损失",
        "pretrain.metric.nsp_accuracy": "留出部分的 NSP 准确率", "pretrain.metric.probe_top5": "探针 top-5",
        "pretrain.metric.probe_top1": "探针 top-1 概率",
        "pretrain.source.pasted": "粘贴的文本", "pretrain.source.bundled": "内置语料样本（{documents} 篇文档）",
        "pretrain.source.nothing": "无",
        "pretrain.chart.probability": "概率（在 top-5 中时）",
        "pretrain.chart.hover": "%{{fullData.name}}：%{{y:.3f}}，第 %{{x}} 步",
        "pretrain.example": "**训练样本 {number} / {count}**：{real} 个词元中选中 {selected} 个（MLM 概率 {probability:.0%}）："
                            "{masked} 个 → [MASK]，{random} 个 → 随机词元，{unchanged} 个不变。",
        "pretrain.pair": "- **A**：{a}\n- **B**：{b}\n- **NSP 标签**：`{label}`",
        "pretrain.p_is_next": "- {model}模型给出的 P(IsNext)：{p:.3f}",
        "pretrain.position": "位置 {position}：真实词元 **{original}**，模型看到的是 **{shown}**。损失 = −log p(真实词元)：",
        "pretrain.position_loss": "- {model}模型：−log {p:.4f} = **{nll:.3f}**；最可能的猜测：{guesses}",
        "pretrain.model.base": "基础", "pretrain.model.adapted": "适配后",
        "pretrain.measuring": "⚙️ 正在留出部分（{sentences} 个句子）上评估基础模型；{documents} 篇文档共 {sequences} 个训练序列…",
        "pretrain.step": "🏋️ 第 {step} / {total} 步：MLM 损失 {mlm:.3f}{nsp}",
        "pretrain.step_nsp": "，NSP 损失 {nsp:.3f}",
    },
}
add_messages(MESSAGES)


def status_colors(language: str | None = None) -> dict[str, str]:
    """HighlightedText colours by category in ``language`` (a category is the label shown for a status)."""
    return {say(f"pretrain.status.{status}", language): color for status, color in STATUS_PALETTE.items()}


def status_label(status: str) -> str | None:
    """The masking panel's category of a token's status, in the request's language (None: left as it is)."""
    return None if status == "kept" else say(f"pretrain.status.{status}")


def _of(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e.get("kind") == kind]


def curves_figure(events: list[dict]) -> go.Figure:
    """Three panels against the step: losses, masked-token accuracy, held-out perplexity."""
    train, held = _of(events, "train"), _of(events, "eval")
    before = next((e for e in events if e.get("kind") == "before"), None)
    if before:  # the base model's held-out numbers are step 0 of the held-out curves
        held = [{"step": 0, **before["metrics"]}, *held]
    fig = make_subplots(rows=1, cols=3, subplot_titles=(say("pretrain.chart.loss"), say("pretrain.chart.accuracy"),
                                                        say("pretrain.chart.perplexity")))
    steps = [e["step"] for e in train]
    fig.add_trace(go.Scatter(x=steps, y=[e["mlm_loss"] for e in train], name=say("pretrain.chart.mlm_train"),
                             line_color=MLM_COLOR), row=1, col=1)
    if any(e["nsp_loss"] for e in train):
        fig.add_trace(go.Scatter(x=steps, y=[e["nsp_loss"] for e in train], name=say("pretrain.chart.nsp_train"),
                                 line_color=NSP_COLOR), row=1, col=1)
    hsteps = [e["step"] for e in held]
    fig.add_trace(go.Scatter(x=hsteps, y=[e["mlm_loss"] for e in held], name=say("pretrain.chart.mlm_held"),
                             mode="lines+markers", line=dict(color=MLM_COLOR, dash="dot")), row=1, col=1)
    if any("nsp_loss" in e for e in held):
        fig.add_trace(go.Scatter(x=hsteps, y=[e.get("nsp_loss") for e in held], name=say("pretrain.chart.nsp_held"),
                                 mode="lines+markers", line=dict(color=NSP_COLOR, dash="dot")), row=1, col=1)
    fig.add_trace(go.Scatter(x=steps, y=[e.get("mlm_accuracy") for e in train], name=say("pretrain.chart.acc_train"),
                             line_color=MLM_COLOR, showlegend=False), row=1, col=2)
    fig.add_trace(go.Scatter(x=hsteps, y=[e["mlm_accuracy"] for e in held], name=say("pretrain.chart.acc_held"),
                             mode="lines+markers", line=dict(color=HELD_COLOR, dash="dot")), row=1, col=2)
    fig.add_trace(go.Scatter(x=hsteps, y=[e["perplexity"] for e in held], name=say("pretrain.chart.ppl_held"),
                             mode="lines+markers", line_color=HELD_COLOR, showlegend=False), row=1, col=3)
    fig.update_yaxes(tickformat=".0%", rangemode="tozero", row=1, col=2)
    fig.update_xaxes(title_text=say("pretrain.chart.step"))
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25))
    return fig


def timeline_figure(timeline: list[dict]) -> go.Figure:
    """Probability of every word that was ever in the probe's top-5, against the step."""
    fig = go.Figure()
    words: list[str] = []
    for point in timeline:
        words += [p["token_str"] for p in point["predictions"] if p["token_str"] not in words]
    for word in words:
        ys = [next((p["score"] for p in point["predictions"] if p["token_str"] == word), None) for point in timeline]
        fig.add_trace(go.Scatter(x=[p["step"] for p in timeline], y=ys, name=plot_text(word), mode="lines+markers",
                                 connectgaps=False,
                                 hovertemplate=say("pretrain.chart.hover") + "<extra></extra>"))
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=30, b=10), xaxis_title=say("pretrain.chart.step"),
                      yaxis=dict(title=say("pretrain.chart.probability"), tickformat=".2~%", rangemode="tozero"))
    return fig


def timeline_rows(timeline: list[dict]) -> list[list]:
    """One table row per probe: step, then the top-5 as ``word (p)``."""
    return [[p["step"]] + [f"{c['token_str']} ({c['score']:.1%})" for c in p["predictions"]] for p in timeline]


def before_after_table(rows: list[dict]) -> list[list]:
    """Rows ``[metric, base, adapted, change]`` with numbers rounded for display."""
    fmt = lambda v: round(v, 4) if isinstance(v, float) else v  # noqa: E731
    return [[say(f"pretrain.metric.{r['key']}"), fmt(r["base"]), fmt(r["adapted"]), fmt(r["change"])] for r in rows]


def masking_spans(view: dict) -> list[tuple[str, str | None]]:
    """HighlightedText spans: each token as it reached the model, labelled by what masking did to it."""
    spans = []
    for t in view["tokens"]:
        shown = t["input"] if t["status"] in ("kept", "special", "unchanged") else f"{t['original']}→{t['input']}"
        spans.append((f"{shown} ", status_label(t["status"])))
    return spans


def masking_markdown(view: dict) -> str:
    """The NSP pair, its label, the counts of each masking outcome and P(IsNext) of each model."""
    counts = {s: sum(t["status"] == s for t in view["tokens"]) for s in ("mask", "random", "unchanged")}
    real = sum(t["status"] != "special" for t in view["tokens"])
    lines = [say("pretrain.example", number=view["index"] + 1, count=view["count"], selected=sum(counts.values()),
                 real=real, probability=view["mlm_probability"], masked=counts["mask"], random=counts["random"],
                 unchanged=counts["unchanged"])]
    if view.get("nsp_label"):
        lines.append(say("pretrain.pair", a=markdown_text(view["sentence_a"]), b=markdown_text(view["sentence_b"]),
                         label=view["nsp_label"]))
        for key, scores in view.get("scores", {}).items():
            lines.append(say("pretrain.p_is_next", model=say(f"pretrain.model.{key}"), p=scores["p_is_next"]))
    return "\n".join(lines)


def position_choices(view: dict | None) -> list[tuple[str, int]]:
    """Dropdown choices of the selected positions: ``("12: capital → [MASK]", 12)``."""
    if not view:
        return []
    return [(f"{t['position']}: {t['original']} → {t['input']}", t["position"])
            for t in view["tokens"] if t["status"] in ("mask", "random", "unchanged")]


def position_markdown(view: dict | None, position: int | None) -> str:
    """MLM loss at one selected position, ``-log p(true token)``, for the base and adapted models."""
    if not view or position is None:
        return ""
    token = next((t for t in view["tokens"] if t["position"] == int(position)), None)
    if token is None:
        return ""
    lines = [say("pretrain.position", position=token["position"], original=markdown_text(token["original"]),
                 shown=markdown_text(token["input"]))]
    for key, scores in view.get("scores", {}).items():
        at = next((p for p in scores["positions"] if p["position"] == token["position"]), None)
        if at:
            guesses = ", ".join(f"{markdown_text(g['token_str'])} ({g['prob']:.1%})" for g in at["top"])
            lines.append(say("pretrain.position_loss", model=say(f"pretrain.model.{key}"), p=at["prob"], nll=at["nll"],
                             guesses=guesses))
    return "\n".join(lines)


def progress_line(events: list[dict], status: str) -> str:
    """The status of a running job: the job panel's ``status`` line, with the latest losses once training steps."""
    train = _of(events, "train")
    if not train:
        data = next((e for e in events if e.get("kind") == "data"), None)
        if data:
            return say("pretrain.measuring", sentences=data["heldout_sentences"], sequences=data["train_sequences"],
                       documents=data["documents"])
        return status
    last = train[-1]
    nsp = say("pretrain.step_nsp", nsp=last["nsp_loss"]) if last["nsp_loss"] else ""
    clock = status[status.find(" · "):] if " · " in status else ""  # the job panel's time spent and left
    return say("pretrain.step", step=last["step"], total=last.get("total", "?"), mlm=last["mlm_loss"], nsp=nsp) + clock
