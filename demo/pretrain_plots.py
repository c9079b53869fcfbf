"""Figures, tables and text of the Pretrain tab, built from the plain events and summary of a run.

Events are those of ``model_utils.pretrain_session.run_pretraining``: ``train`` (per step: MLM and
NSP loss, masked-token accuracy), ``eval`` (held-out slice), ``probe`` (top-5 of the probe's mask),
``before``/``data``/``done``.
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from demo.messages import in_language, markdown_text
from demo.plots import plot_text

MLM_COLOR, NSP_COLOR, HELD_COLOR = "#3b82f6", "#f97316", "#16a34a"
# HighlightedText categories of the masking panel, with their colours.
STATUS_LABELS = {"mask": "→ [MASK] (80%)", "random": "→ random token (10%)", "unchanged": "selected, unchanged (10%)",
                 "special": "special token", "kept": None}
STATUS_COLORS = {"→ [MASK] (80%)": "#3b82f6", "→ random token (10%)": "#f97316",
                 "selected, unchanged (10%)": "#16a34a", "special token": "#9ca3af"}


def _of(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e.get("kind") == kind]


def curves_figure(events: list[dict]) -> go.Figure:
    """Three panels against the step: losses, masked-token accuracy, held-out perplexity."""
    train, held = _of(events, "train"), _of(events, "eval")
    before = next((e for e in events if e.get("kind") == "before"), None)
    if before:  # the base model's held-out numbers are step 0 of the held-out curves
        held = [{"step": 0, **before["metrics"]}, *held]
    fig = make_subplots(rows=1, cols=3, subplot_titles=("loss", "masked-token accuracy", "held-out perplexity"))
    steps = [e["step"] for e in train]
    fig.add_trace(go.Scatter(x=steps, y=[e["mlm_loss"] for e in train], name="MLM loss (training batch)",
                             line_color=MLM_COLOR), row=1, col=1)
    if any(e["nsp_loss"] for e in train):
        fig.add_trace(go.Scatter(x=steps, y=[e["nsp_loss"] for e in train], name="NSP loss (training batch)",
                                 line_color=NSP_COLOR), row=1, col=1)
    hsteps = [e["step"] for e in held]
    fig.add_trace(go.Scatter(x=hsteps, y=[e["mlm_loss"] for e in held], name="MLM loss (held-out)",
                             mode="lines+markers", line=dict(color=MLM_COLOR, dash="dot")), row=1, col=1)
    if any("nsp_loss" in e for e in held):
        fig.add_trace(go.Scatter(x=hsteps, y=[e.get("nsp_loss") for e in held], name="NSP loss (held-out)",
                                 mode="lines+markers", line=dict(color=NSP_COLOR, dash="dot")), row=1, col=1)
    fig.add_trace(go.Scatter(x=steps, y=[e.get("mlm_accuracy") for e in train], name="accuracy (training batch)",
                             line_color=MLM_COLOR, showlegend=False), row=1, col=2)
    fig.add_trace(go.Scatter(x=hsteps, y=[e["mlm_accuracy"] for e in held], name="accuracy (held-out)",
                             mode="lines+markers", line=dict(color=HELD_COLOR, dash="dot")), row=1, col=2)
    fig.add_trace(go.Scatter(x=hsteps, y=[e["perplexity"] for e in held], name="perplexity (held-out)",
                             mode="lines+markers", line_color=HELD_COLOR, showlegend=False), row=1, col=3)
    fig.update_yaxes(tickformat=".0%", rangemode="tozero", row=1, col=2)
    fig.update_xaxes(title_text="step")
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
                                 hovertemplate="%{fullData.name}: %{y:.3f} at step %{x}<extra></extra>"))
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="step",
                      yaxis=dict(title="probability (when in the top-5)", tickformat=".2~%", rangemode="tozero"))
    return fig


def timeline_rows(timeline: list[dict]) -> list[list]:
    """One table row per probe: step, then the top-5 as ``word (p)``."""
    return [[p["step"]] + [f"{c['token_str']} ({c['score']:.1%})" for c in p["predictions"]] for p in timeline]


def before_after_table(rows: list[dict]) -> list[list]:
    """Rows ``[metric, base, adapted, change]`` with numbers rounded for display."""
    fmt = lambda v: round(v, 4) if isinstance(v, float) else v  # noqa: E731
    return [[r["metric"], fmt(r["base"]), fmt(r["adapted"]), fmt(r["change"])] for r in rows]


def masking_spans(view: dict) -> list[tuple[str, str | None]]:
    """HighlightedText spans: each token as it reached the model, labelled by what masking did to it."""
    spans = []
    for t in view["tokens"]:
        shown = t["input"] if t["status"] in ("kept", "special", "unchanged") else f"{t['original']}→{t['input']}"
        spans.append((f"{shown} ", STATUS_LABELS[t["status"]]))
    return spans


def masking_markdown(view: dict) -> str:
    """The NSP pair, its label, the counts of each masking outcome and P(IsNext) of each model."""
    counts = {s: sum(t["status"] == s for t in view["tokens"]) for s in ("mask", "random", "unchanged")}
    real = sum(t["status"] != "special" for t in view["tokens"])
    lines = [f"**Training example {view['index'] + 1} of {view['count']}**: {sum(counts.values())} of {real} "
             f"tokens selected (MLM probability {view['mlm_probability']:.0%}): {counts['mask']} → [MASK], "
             f"{counts['random']} → random, {counts['unchanged']} unchanged."]
    if view.get("nsp_label"):
        lines.append(f"- **A**: {view['sentence_a']}\n- **B**: {view['sentence_b']}\n- **NSP label**: "
                     f"`{view['nsp_label']}`")
        for key, scores in view.get("scores", {}).items():
            lines.append(f"- P(IsNext) by the {key} model: {scores['p_is_next']:.3f}")
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
    lines = [f"Position {token['position']}: true token **{markdown_text(token['original'])}**, the model sees "
             f"**{markdown_text(token['input'])}**. Loss = −log p(true token):"]
    for key, scores in view.get("scores", {}).items():
        at = next((p for p in scores["positions"] if p["position"] == token["position"]), None)
        if at:
            guesses = ", ".join(f"{markdown_text(g['token_str'])} ({g['prob']:.1%})" for g in at["top"])
            lines.append(f"- {key} model: −log {at['prob']:.4f} = **{at['nll']:.3f}**; top guesses: {guesses}")
    return "\n".join(lines)


def progress_line(events: list[dict], total: int) -> str:
    """One status line from the latest training event."""
    train = _of(events, "train")
    if not train:
        data = next((e for e in events if e.get("kind") == "data"), None)
        if data:
            return in_language(
                f"⚙️ Measuring the base model on the held-out slice ({data['heldout_sentences']} sentences); "
                f"{data['train_sequences']} training sequences from {data['documents']} documents…",
                f"⚙️ 正在留出部分（{data['heldout_sentences']} 个句子）上评估基础模型；"
                f"{data['documents']} 篇文档共 {data['train_sequences']} 个训练序列…")
        return in_language("⚙️ Loading the base model and the text…", "⚙️ 正在加载基础模型和文本…")
    last = train[-1]
    nsp = f", NSP loss {last['nsp_loss']:.3f}" if last["nsp_loss"] else ""
    nsp_zh = f"，NSP 损失 {last['nsp_loss']:.3f}" if last["nsp_loss"] else ""
    return in_language(f"🏋️ Step {last['step']} / {total}: MLM loss {last['mlm_loss']:.3f}{nsp}",
                       f"🏋️ 第 {last['step']} / {total} 步：MLM 损失 {last['mlm_loss']:.3f}{nsp_zh}")
