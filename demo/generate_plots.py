"""Figures and coloured text of the Generate tab, built from the plain records of ``model_utils.generate`` and
``model_utils.perplexity``.

* :func:`filter_chart`: the next-token bars before and after the sampling filters;
* :func:`tokens_html`: text coloured by each token's probability under the model, details on hover
  (every piece of text escaped: it comes from the user or from the model);
* :func:`surprisal_chart`, :func:`words_chart`, :func:`mask_heatmap`: perplexity and BERT vs GPT.
"""

from __future__ import annotations

import html
import math

import plotly.graph_objects as go

from demo.attention_plots import token_labels
from demo.i18n import add_messages
from demo.messages import say
from demo.plots import BAR_COLOR, CONTROL_COLOR, plot_text

MODEL_COLOR, TEMPERATURE_COLOR = "#cbd5e1", "#93c5fd"
TOKEN_STYLE = "padding:1px 2px;margin:0 1px;border-radius:4px;border:1px solid rgba(0,0,0,.12);color:#111"
USER_STYLE = "outline:2px solid #7c3aed;outline-offset:1px"
PROMPT_STYLE = "color:#6b7280"
SHOWN_CHARS = 40  # end of the context quoted in the chart's title

MESSAGES = {
    "en": {
        "generate.plot.title": "Next token after “{context}”",
        "generate.plot.settings": "temperature {temperature:g} · top-k {top_k} · top-p {top_p:g} · {kept:,} of "
                                  "{vocab:,} tokens can be drawn",
        "generate.plot.model": "model (temperature 1)", "generate.plot.temperature": "after the temperature",
        "generate.plot.final": "drawn from (after top-k and top-p)",
        "generate.plot.probability": "probability",
        "generate.plot.others": "the {count:,} tokens not shown: {model:.1%} of the model's probability, {final:.1%} "
                                "after the filters",
        "generate.plot.removed_top_k": "✗ top-k", "generate.plot.removed_top_p": "✗ top-p",
        "generate.hover.probability": "probability {probability:.2%} (rank {rank})",
        "generate.hover.sampled": "drawn with probability {probability:.2%} after the filters",
        "generate.hover.by_you": "chosen by you", "generate.hover.alternatives": "the model's top tokens here:",
        "generate.hover.unscored": "not scored: nothing comes before it",
        "generate.plot.surprisal": "Surprisal of each token (−log₂ p, bits)", "generate.plot.bits": "bits",
        "generate.plot.words_title": "Probability of each true word",
        "generate.plot.masked": "{model}: both sides (masked LM)",
        "generate.plot.causal": "{model}: left side only (causal LM)",
        "generate.plot.word_axis": "word", "generate.plot.mask_full": "{model}: every token sees every token",
        "generate.plot.mask_causal": "{model}: each token sees only itself and the tokens before it",
        "generate.plot.mask_other": "{model}: attention mask",
        "generate.plot.key_axis": "may look at (key)", "generate.plot.query_axis": "token (query)",
        "generate.plot.allowed": "allowed", "generate.plot.blocked": "masked",
    },
    "zh-CN": {
        "generate.plot.title": "“{context}”之后的下一个词元",
        "generate.plot.settings": "温度 {temperature:g} · top-k {top_k} · top-p {top_p:g} · {vocab:,} 个词元中有 "
                                  "{kept:,} 个可能被抽到",
        "generate.plot.model": "模型（温度 1）", "generate.plot.temperature": "调温度之后",
        "generate.plot.final": "实际抽样分布（top-k 和 top-p 之后）",
        "generate.plot.probability": "概率",
        "generate.plot.others": "未显示的 {count:,} 个词元：占模型概率的 {model:.1%}，过滤后占 {final:.1%}",
        "generate.plot.removed_top_k": "✗ top-k", "generate.plot.removed_top_p": "✗ top-p",
        "generate.hover.probability": "概率 {probability:.2%}（排名第 {rank}）",
        "generate.hover.sampled": "经过过滤后以 {probability:.2%} 的概率被抽到",
        "generate.hover.by_you": "由你选择", "generate.hover.alternatives": "模型在这里最看好的词元：",
        "generate.hover.unscored": "未打分：它前面没有任何内容",
        "generate.plot.surprisal": "每个词元的意外程度（−log₂ p，比特）", "generate.plot.bits": "比特",
        "generate.plot.words_title": "每个真实词的概率",
        "generate.plot.masked": "{model}：看两侧（掩码语言模型）",
        "generate.plot.causal": "{model}：只看左侧（因果语言模型）",
        "generate.plot.word_axis": "词", "generate.plot.mask_full": "{model}：每个词元都能看到所有词元",
        "generate.plot.mask_causal": "{model}：每个词元只能看到自己和前面的词元",
        "generate.plot.mask_other": "{model}：注意力掩码",
        "generate.plot.key_axis": "可以看的位置（键）", "generate.plot.query_axis": "词元（查询）",
        "generate.plot.allowed": "允许", "generate.plot.blocked": "被遮蔽",
    },
}
add_messages(MESSAGES)


def shown_token(text: str) -> str:
    """A token's text made visible: a leading or trailing space as ␣, a newline as ⏎, nothing as ∅."""
    if not text:
        return "∅"
    text = text.replace("\n", "⏎")
    if text.startswith(" "):
        text = "␣" + text[1:]
    return text[:-1] + "␣" if text.endswith(" ") and len(text) > 1 else text


def _context_tail(result: dict) -> str:
    context = result.get("prompt", "") + "".join(t["text"] for t in result.get("tokens", []))
    context = " ".join(context.split())
    return context if len(context) <= SHOWN_CHARS else "…" + context[-SHOWN_CHARS:]


def filter_chart(result: dict) -> go.Figure:
    """Horizontal bars of the most likely next tokens: the model's probability, after the temperature, and
    the distribution sampling draws from (renormalised after top-k and top-p); removed tokens are marked."""
    candidates = result["candidates"]
    labels = []
    for c in candidates:
        mark = f"  {say('generate.plot.removed_' + c['removed_by'])}" if c["removed_by"] else ""
        labels.append(plot_text(f"{c['rank']}. {shown_token(c['text'])}{mark}"))
    fig = go.Figure()
    for key, name, color in (("probability", "generate.plot.model", MODEL_COLOR),
                             ("after_temperature", "generate.plot.temperature", TEMPERATURE_COLOR),
                             ("after_top_p", "generate.plot.final", BAR_COLOR)):
        values = [c[key] for c in candidates]
        fig.add_trace(go.Bar(y=labels, x=values, orientation="h", name=say(name), marker_color=color,
                             hovertemplate="%{y}: %{x:.2%}<extra>" + say(name) + "</extra>"))
    title = say("generate.plot.title", context=plot_text(_context_tail(result)))
    subtitle = say("generate.plot.settings", temperature=result["temperature"], top_k=result["top_k"],
                   top_p=result["top_p"], kept=result["kept"], vocab=result["vocab_size"])
    subtitle += "<br>" + say("generate.plot.others", count=result["vocab_size"] - len(candidates),
                             model=result["rest"]["probability"], final=result["rest"]["after_top_p"])
    fig.update_layout(barmode="group", height=max(380, 110 + 40 * len(labels)), bargap=0.25,
                      title=dict(text=f"{title}<br><sup>{subtitle}</sup>"),
                      xaxis=dict(title=say("generate.plot.probability"), tickformat=".0%", rangemode="tozero"),
                      yaxis=dict(autorange="reversed", type="category"),
                      legend=dict(orientation="h", y=1.0, yanchor="bottom", x=0), margin=dict(l=10, r=10, t=130, b=40))
    return fig


def probability_color(probability: float | None) -> str:
    """Background of a token: red for unlikely (1 in 10,000 or less), yellow, green for likely; grey if unscored."""
    if probability is None:
        return "#e5e7eb"
    share = min(1.0, max(0.0, (math.log10(max(probability, 1e-12)) + 4) / 4))
    return f"hsl({round(120 * share)}, 75%, 82%)"


def _hover(token: dict, by_you: bool) -> str:
    if token.get("probability") is None:
        return say("generate.hover.unscored")
    lines = [say("generate.hover.probability", probability=token["probability"], rank=token["rank"])]
    if token.get("sampled_probability") is not None:
        lines.append(say("generate.hover.sampled", probability=token["sampled_probability"]))
    if by_you:
        lines.append(say("generate.hover.by_you"))
    if token.get("alternatives"):
        lines.append(say("generate.hover.alternatives"))
        lines += [f"  {shown_token(a['text'])}  {a['probability']:.2%}" for a in token["alternatives"]]
    return "\n".join(lines)


def tokens_html(prompt: str, tokens: list[dict], chosen_by: list[str] | None = None) -> str:
    """The prompt (grey) and the tokens after it, each coloured by its probability, details on hover.

    ``chosen_by``: "user" marks a token the user picked (outlined). Everything is escaped.
    """
    chosen_by = chosen_by or []
    parts = [f'<span style="{PROMPT_STYLE}">{html.escape(prompt)}</span>'] if prompt else []
    for i, token in enumerate(tokens):
        by_you = i < len(chosen_by) and chosen_by[i] == "user"
        text = token.get("text") or ""
        shown = html.escape(text) if text.strip() or not token.get("special") else ""
        if token.get("special"):
            shown += f'<small style="{PROMPT_STYLE}">{html.escape(token["token"])}</small>'
        style = f"{TOKEN_STYLE};background:{probability_color(token.get('probability'))}" + \
            (f";{USER_STYLE}" if by_you else "")
        parts.append(f'<span class="gen-token" style="{style}" '
                     f'title="{html.escape(_hover(token, by_you), quote=True)}">{shown or "∅"}</span>')
    return "".join(parts)


def scored_html(text: str, tokens: list[dict]) -> str:
    """``text`` with each scored token coloured by its probability (the characters between tokens as typed)."""
    parts, cursor = [], 0
    for token in tokens:
        start, end = token["start"], token["end"]
        if start < cursor:
            continue
        parts.append(html.escape(text[cursor:start]))
        style = f"{TOKEN_STYLE};background:{probability_color(token.get('probability'))}"
        hover = html.escape(_hover(token, False), quote=True)
        parts.append(f'<span class="gen-token" style="{style}" title="{hover}">{html.escape(text[start:end])}</span>')
        cursor = end
    parts.append(html.escape(text[cursor:]))
    return "".join(parts)


def surprisal_chart(result: dict) -> go.Figure:
    """−log₂ p of each scored token, in text order."""
    scored = [(i, t) for i, t in enumerate(result["tokens"]) if t["logprob"] is not None]
    labels = [plot_text(f"{shown_token(t['text'])} ({i + 1})") for i, t in scored]
    bits = [-t["logprob"] / math.log(2) for _, t in scored]
    fig = go.Figure(go.Bar(x=labels, y=bits, marker_color=[probability_color(t["probability"]) for _, t in scored],
                           marker_line_color="#64748b", marker_line_width=1,
                           hovertemplate="%{x}: %{y:.2f} " + say("generate.plot.bits") + "<extra></extra>"))
    fig.update_layout(title=say("generate.plot.surprisal"), height=340, margin=dict(l=10, r=10, t=50, b=10),
                      xaxis=dict(type="category", tickangle=-45), yaxis=dict(title=say("generate.plot.bits")))
    return fig


def words_chart(result: dict) -> go.Figure:
    """Two bars per word: the probability of the true word from both sides (masked LM) and from the left only
    (causal LM), on a log scale; a missing bar is a word that model could not score."""
    words = result["words"]
    labels = [plot_text(f"{w['word']} ({i + 1})") for i, w in enumerate(words)]
    fig = go.Figure()
    for key, guess, name, color, model in (
            ("masked_probability", "masked_guess", "generate.plot.masked", BAR_COLOR, result["masked_model"]),
            ("causal_probability", "causal_guess", "generate.plot.causal", CONTROL_COLOR, result["causal_model"])):
        fig.add_trace(go.Bar(
            x=labels, y=[w[key] for w in words], name=plot_text(say(name, model=model)), marker_color=color,
            customdata=[[plot_text(w[guess] or "—")] for w in words],
            hovertemplate="%{x}: %{y:.2%}<br>→ %{customdata[0]}<extra></extra>"))
    fig.update_layout(barmode="group", height=380, title=say("generate.plot.words_title"),
                      yaxis=dict(type="log", title=say("generate.plot.probability"), dtick=1, exponentformat="power"),
                      xaxis=dict(type="category", title=say("generate.plot.word_axis")),
                      legend=dict(orientation="h", y=1.12), margin=dict(l=10, r=10, t=80, b=10))
    return fig


def mask_heatmap(mask: dict) -> go.Figure:
    """Which positions each token may attend to in one model (from its real attention weights)."""
    labels = [plot_text(label) for label in token_labels(mask["tokens"])]
    allowed = mask["allowed"]
    full = all(all(row) for row in allowed)
    title = "generate.plot.mask_full" if full else "generate.plot.mask_causal" if mask["causal"] \
        else "generate.plot.mask_other"
    words = [say("generate.plot.blocked"), say("generate.plot.allowed")]
    fig = go.Figure(go.Heatmap(z=allowed, x=labels, y=labels, zmin=0, zmax=1, showscale=False,
                               colorscale=[[0, "#f1f5f9"], [1, BAR_COLOR]],
                               customdata=[[words[v] for v in row] for row in allowed],
                               hovertemplate="%{y} → %{x}: %{customdata}<extra></extra>", xgap=1, ygap=1))
    fig.update_xaxes(type="category", tickangle=-60, title_text=say("generate.plot.key_axis"))
    fig.update_yaxes(type="category", autorange="reversed", title_text=say("generate.plot.query_axis"))
    side = max(360, min(640, 140 + 22 * len(labels)))
    fig.update_layout(title=plot_text(say(title, model=mask["model"])), height=side,
                      margin=dict(l=10, r=10, t=50, b=10))
    return fig
