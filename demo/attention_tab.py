"""Attention tab: bertviz head/model views (offline), Plotly heatmaps, per-head summary, rollout and
the attention formula ``softmax(QKᵀ/√d_k)V`` with the model's real numbers.

Data flow: "Run" -> :func:`run_attention` -> ``model_utils.attention`` (eager attention through the
model manager; one forward pass per input, cached) -> render helpers (``demo.attention_views`` for bertviz,
``demo.attention_plots`` for Plotly). The result lives in a per-user ``gr.State``; only the open sub-tab's view
is drawn (the others when they are opened), and every change of the layer/head pickers redraws it from that
state, the latest change only.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

import numpy as np

from demo import attention_plots as plots
from demo.common import (TabParts, clear_on_failure, examples, model_dropdown, table_output, text_limit, ui_error,
                        user_errors)
from demo import attention_views as views
from demo.i18n import I18N, add_messages, add_strings
from demo.messages import for_display, markdown_text, say, table, translate
from model_utils import attention_arrays, attention_math
from model_utils.attention import attention_rollout, head_summary

EXAMPLES = [
    ["The animal didn't cross the street because it was too tired.", ""],
    ["The cat sat on the mat.", "The dog slept on the sofa."],
    ["Paris is the capital of France.", ""],
    ["I went to the store to buy some milk.", "Then I went home and made coffee."],
]
SUMMARY_COLUMNS = ["layer", "head", "entropy", "cls", "sep", "self", "previous", "next"]
SUMMARY_HEADERS = [f"attn_col_{c}" for c in SUMMARY_COLUMNS]
MATH_HEADERS = ["attn_col_key", "attn_col_qk", "attn_col_scaled", "attn_col_masked", "attn_col_weight",
                "attn_col_model_weight"]

STRINGS = {
    "en": {
        "tab_attention": "Attention",
        "attn_intro": "See where every token looks. Type a sentence (or a pair: segments A and B), press "
                      "**Run**, then explore bertviz's head and model views, heatmaps, a per-head summary, "
                      "attention rollout, and the formula softmax(QKᵀ/√d_k)V with the model's real numbers. "
                      "Everything works without internet.",
        "attn_text": "Text (segment A)",
        "attn_pair": "Second text (segment B, optional)",
        "attn_layer": "Layer",
        "attn_head": "Head",
        "attn_image_format": "Chart download format (camera button of each chart)",
        "attn_head_view": "Head view",
        "attn_model_view": "Model view",
        "attn_heatmaps": "Heatmap",
        "attn_grid": "All heads of the layer",
        "attn_summary": "Head summary",
        "attn_rollout": "Rollout",
        "attn_math": "Attention math",
        "attn_downloads": "Standalone bertviz views (HTML, work offline)",
        "attn_query": "Query token",
        "attn_explain": "Show the computation",
        "attn_math_intro": "Pick a layer and head above and a query token here: the scores q·k of that token "
                           "against every key, their scaling by √d_k, the softmax and the weighted sum of "
                           "values are computed from the model's own Q/K/V projections.",
        "attn_summary_table": "Per-head statistics",
        "attn_placeholder": "Press Run to see the attention.",
        "attn_col_layer": "layer", "attn_col_head": "head", "attn_col_entropy": "entropy", "attn_col_cls": "cls",
        "attn_col_sep": "sep", "attn_col_self": "self", "attn_col_previous": "previous", "attn_col_next": "next",
        "attn_col_key": "key", "attn_col_qk": "q·k", "attn_col_scaled": "q·k / √d_k", "attn_col_masked": "masked",
        "attn_col_weight": "softmax weight", "attn_col_model_weight": "model's weight",
    },
    "zh-CN": {
        "tab_attention": "注意力",
        "attn_intro": "查看每个词元关注哪里。输入一句话（或一对句子：片段 A 和 B），点击**运行**，然后浏览 bertviz 的"
                      "头视图和模型视图、热力图、每个注意力头的统计、注意力 rollout，以及用模型真实数值计算的公式 "
                      "softmax(QKᵀ/√d_k)V。无需联网。",
        "attn_text": "文本（片段 A）",
        "attn_pair": "第二段文本（片段 B，可选）",
        "attn_layer": "层",
        "attn_head": "注意力头",
        "attn_image_format": "图表下载格式（每个图表的相机按钮）",
        "attn_head_view": "头视图",
        "attn_model_view": "模型视图",
        "attn_heatmaps": "热力图",
        "attn_grid": "该层的全部注意力头",
        "attn_summary": "注意力头统计",
        "attn_rollout": "Rollout",
        "attn_math": "注意力计算",
        "attn_downloads": "独立的 bertviz 视图（HTML，可离线使用）",
        "attn_query": "查询词元",
        "attn_explain": "显示计算过程",
        "attn_math_intro": "在上方选择层和注意力头，在这里选择查询词元：该词元与每个键的得分 q·k、除以 √d_k 的缩放、"
                           "softmax 以及对值向量的加权求和，都由模型自己的 Q/K/V 投影计算得出。",
        "attn_summary_table": "每个注意力头的统计",
        "attn_placeholder": "点击运行查看注意力。",
        "attn_col_layer": "层", "attn_col_head": "头", "attn_col_entropy": "熵", "attn_col_cls": "cls",
        "attn_col_sep": "sep", "attn_col_self": "自身", "attn_col_previous": "前一个", "attn_col_next": "后一个",
        "attn_col_key": "键", "attn_col_qk": "q·k", "attn_col_scaled": "q·k / √d_k", "attn_col_masked": "被遮蔽",
        "attn_col_weight": "softmax 权重", "attn_col_model_weight": "模型给出的权重",
    },
}


MESSAGES = {
    "en": {
        "attention.head_view_layers": "The head view shows layers {first}–{last} of 0–{top} to keep the page "
                                      "responsive; pick another layer or shorten the text to see the others.",
        "attention.model_view_layers": "The model view shows layers {first}–{last} of 0–{top} to keep the page "
                                       "responsive; pick another layer or shorten the text to see the others.",
        "attention.run_first": "Press Run first, then pick a query token.",
        "attention.progress_load": "Loading the model and computing attention…",
        "attention.progress_views": "Rendering the views…",
        "attention.heatmap_title": "Layer {layer}, head {head}",
        "attention.math_title": "### Attention(Q, K, V) = softmax(QKᵀ / √d_k) · V — layer {layer}, head {head}, "
                                "query **{query}**",
        "attention.math_query": "1. **Query vector** q = W_Q·h (d_k = {dim}): `{vector}`",
        "attention.math_scores": "2. **Scores** s_j = q·k_j for each of the {keys} keys (table below).",
        "attention.math_scale": "3. **Scale**: s_j × {scale} (√d_k = {sqrt_dk:.4f}).",
        "attention.math_scale_plain": "1/√d_k = {value:.4f}",
        "attention.math_scale_layer": "{value:.4f} (this layer also divides by its index + 1)",
        "attention.math_causal": "4. **Causal mask**: the {masked} keys after the query get −∞, so weight 0.",
        "attention.math_no_mask": "4. **Mask**: none (every token may attend to every token).",
        "attention.math_softmax": "5. **Softmax**: w_j = exp(s_j·scale) / Σ exp(s_i·scale) — the weights sum to "
                                  "{total:.4f}.",
        "attention.math_sum": "6. **Weighted sum of values**: output = Σ_j w_j·v_j = {terms} + … = `{vector}`",
        "attention.math_check": "✔ These weights equal the attention the model itself returned (largest "
                                "difference {diff:.1e}).",
    },
    "zh-CN": {
        "attention.head_view_layers": "为了页面流畅，注意力头视图只显示第 {first}–{last} 层（共 0–{top} 层）；选择其他层或缩短文本可查看其余各层。",
        "attention.model_view_layers": "为了页面流畅，模型视图只显示第 {first}–{last} 层（共 0–{top} 层）；选择其他层或缩短文本可查看其余各层。",
        "attention.run_first": "请先点击运行，再选择查询词元。",
        "attention.progress_load": "正在加载模型并计算注意力…",
        "attention.progress_views": "正在绘制视图…",
        "attention.heatmap_title": "第 {layer} 层，第 {head} 个注意力头",
        "attention.math_title": "### Attention(Q, K, V) = softmax(QKᵀ / √d_k) · V — 第 {layer} 层，第 {head} 个注意力头，"
                                "查询 **{query}**",
        "attention.math_query": "1. **查询向量** q = W_Q·h（d_k = {dim}）：`{vector}`",
        "attention.math_scores": "2. **得分** s_j = q·k_j，共 {keys} 个键（见下表）。",
        "attention.math_scale": "3. **缩放**：s_j × {scale}（√d_k = {sqrt_dk:.4f}）。",
        "attention.math_scale_plain": "1/√d_k = {value:.4f}",
        "attention.math_scale_layer": "{value:.4f}（这一层还会再除以层号 + 1）",
        "attention.math_causal": "4. **因果遮蔽**：查询之后的 {masked} 个键得到 −∞，权重为 0。",
        "attention.math_no_mask": "4. **遮蔽**：无（每个词元都可以关注所有词元）。",
        "attention.math_softmax": "5. **Softmax**：w_j = exp(s_j·scale) / Σ exp(s_i·scale) —— 权重之和为 {total:.4f}。",
        "attention.math_sum": "6. **对值向量加权求和**：output = Σ_j w_j·v_j = {terms} + … = `{vector}`",
        "attention.math_check": "✔ 这些权重与模型自己返回的注意力一致（最大差异 {diff:.1e}）。",
        "attention.pair_needs_fast": "句子对需要快速分词器；这个检查点只有慢速分词器。",
        "attention.no_weights": "该模型没有返回注意力权重；请用 attn_implementation='eager' 加载（本页的模型管理器就是这样做的）。",
        "attention.math_unsupported": "注意力计算视图暂不支持 {model}。",
        "attention.out_of_range": "{what_zh}必须在 0 到 {last} 之间，实际是 {value!r}。",
        "attention.cut": "输入有 {total} 个词元；只显示前 {kept} 个（上限 {limit}）。",
        "attention.cut_from": "从文本 {segment} 截去：“{snippet}”。",
    },
}
add_strings(STRINGS)
add_messages(MESSAGES)


# ---------------------------------------------------------------------------- rendering

# The views of the results, as the ids of their sub-tabs. Only the open one is drawn (the others are drawn
# when opened), so an answer carries one chart, not every view of every layer (12.8 MB at 128 tokens before).
CHART_VIEWS = ("attn-heatmaps", "attn-grid", "attn-rollout", "attn-summary")
BERTVIZ_VIEWS = ("attn-head-view", "attn-model-view")
DEFAULT_VIEW = CHART_VIEWS[0]


def _clamp(value: Any, upper: int) -> int:
    try:
        return min(max(int(float(value)), 0), upper)
    except (TypeError, ValueError, OverflowError):
        return 0


def _bertviz(result: dict, layer: int, view: str) -> tuple[str, list[str], list[str]]:
    """The open bertviz view around ``layer`` as an iframe, its standalone HTML file, and a notice about
    left-out layers (if any)."""
    make, kind, name = ((views.head_view_html, "head", "attention_head_view.html") if view == "attn-head-view"
                        else (views.model_view_html, "model", "attention_model_view.html"))
    document, layers = make(result, layer)
    path = Path(tempfile.mkdtemp(prefix="plm-attention-")) / name
    path.write_text(document, encoding="utf-8")
    frame = views.iframe(document, views.view_height(result, kind, len(layers)), f"bertviz {kind} view")
    top = result["num_layers"] - 1
    notices = [say(f"attention.{kind}_view_layers", first=layers[0], last=layers[-1], top=top)] \
        if len(layers) <= top else []
    return frame, [str(path)], notices


def _notice(result: dict, layer_notices: list[str]) -> str:
    """Everything the user should know about a run (what was cut, which layers the views hold), in their language."""
    return " ".join([translate(n) for n in result["notices"]] + layer_notices)


def _with_weights(state: dict) -> dict:
    """The run's result with its attentions as the float32 array kept in the state."""
    return {**state["result"], "attentions": state["weights"]}


def bertviz_values(state: dict | None, layer: Any, view: str, others: Any = gr.skip()) -> tuple:
    """(notice, head view, model view, files): the open bertviz view drawn around ``layer``; ``others`` for
    the closed one (``gr.skip()`` keeps it, ``None`` clears it)."""
    if not state or view not in BERTVIZ_VIEWS:
        return others, others, others, others
    result = _with_weights(state)
    frame, files, layer_notices = _bertviz(result, _clamp(layer, result["num_layers"] - 1), view)
    frames = (frame, others) if view == "attn-head-view" else (others, frame)
    return _notice_markdown(_notice(result, layer_notices)), *frames, files


def _notice_markdown(notice: str) -> gr.Markdown:
    return gr.Markdown(markdown_text(notice), visible=bool(notice))


def refresh_bertviz(state: dict | None, layer: Any, view: str) -> tuple:
    """Redraw the open bertviz view around ``layer`` when it could not hold every layer; else skip."""
    if not state or view not in BERTVIZ_VIEWS:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    result = _with_weights(state)
    window = views.head_view_layers if view == "attn-head-view" else views.model_view_layers
    if len(window(result, _clamp(layer, result["num_layers"] - 1))) == result["num_layers"]:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    return bertviz_values(state, layer, view)


def chart_values(state: dict | None, layer: Any, head: Any, image_format: str, view: str,
                 others: Any = gr.skip()) -> tuple:
    """(summary table, heatmap, grid, rollout, summary chart) with only the open ``view`` drawn, from the
    session's state (no forward pass); ``others`` for the closed views."""
    values = [others] * 5
    if not state or view not in CHART_VIEWS:
        return tuple(values)
    result = state["result"]
    layer = _clamp(layer, result["num_layers"] - 1)
    head = _clamp(head, result["num_heads"] - 1)
    tokens, weights = result["tokens"], state["weights"]
    if view == "attn-heatmaps":
        title = say("attention.heatmap_title", layer=layer, head=head)
        values[1] = plots.with_export(plots.attention_heatmap(weights[layer, head], tokens, title), image_format,
                                      f"attention_L{layer}_H{head}")
    elif view == "attn-grid":
        values[2] = plots.with_export(plots.layer_grid(weights[layer], tokens, layer), image_format,
                                      f"attention_layer{layer}_heads")
    elif view == "attn-rollout":
        values[3] = plots.with_export(plots.rollout_heatmap(_derived(state, "rollout")[layer], tokens, layer), image_format,
                                      f"attention_rollout_L{layer}")
    else:
        rows = _derived(state, "summary")
        summary = plots.summary_chart(rows, result["num_layers"], result["num_heads"])
        values[4] = plots.with_export(summary, image_format, "attention_head_summary")
        values[0] = _summary_table(rows)
    return tuple(values)


def render_figures(state: dict | None, layer: Any, head: Any, image_format: str, view: str = DEFAULT_VIEW) -> tuple:
    """The open view redrawn for the chosen layer/head, from the session's state: (notice, head view, model view,
    files, summary table, heatmap, grid, rollout, summary chart), ``gr.skip()`` for what stays as it is."""
    return (*refresh_bertviz(state, layer, view), *chart_values(state, layer, head, image_format, view))


def open_view(view: str) -> Any:
    """The event run when the sub-tab ``view`` is opened: remember it and draw it from the session's state."""
    def show(state: dict | None, layer: Any, head: Any, image_format: str) -> tuple:
        return (view, *bertviz_values(state, layer, view), *chart_values(state, layer, head, image_format, view))

    show.__name__ = f"open_{view.replace('-', '_')}"
    return user_errors(show)


def _derived(state: dict, name: str) -> Any:
    """The run's attention rollout or per-head summary, computed on first use and kept in the session's state."""
    if name not in state:
        weights, result = state["weights"], state["result"]
        state[name] = (np.asarray(attention_rollout(weights), dtype=np.float32) if name == "rollout" else
                       head_summary(weights, result["cls_positions"], result["sep_positions"]))
    return state[name]


def _summary_table(rows: list[dict]) -> dict:
    data = [[r[c] if c in ("layer", "head") or r[c] is None else round(r[c], 4) for c in SUMMARY_COLUMNS]
            for r in rows]
    return table(data, SUMMARY_HEADERS)


# ---------------------------------------------------------------------------- handlers


@user_errors
def run_attention(checkpoint: str, text: str, text_pair: str, layer: Any, head: Any, image_format: str,
                  view: str = DEFAULT_VIEW, progress: gr.Progress = gr.Progress()) -> tuple:
    """Compute the attention of ``text`` [+ ``text_pair``] and draw the open view (the others when opened)."""
    progress(0.05, desc=say("attention.progress_load"))
    result = attention_arrays(text, checkpoint or None, text_pair or None)
    weights = result.pop("weights")
    layer = _clamp(layer, result["num_layers"] - 1)
    head = _clamp(head, result["num_heads"] - 1)
    # rollout and the per-head summary are computed when their view is first drawn (~70 ms at 128 tokens)
    state = {"result": result, "weights": weights, "text": text, "text_pair": text_pair or None,
             "checkpoint": result["checkpoint"]}
    progress(0.8, desc=say("attention.progress_views"))
    view = view if view in CHART_VIEWS + BERTVIZ_VIEWS else DEFAULT_VIEW
    frames: tuple = (None, None, None)
    layer_notices: list[str] = []
    if view in BERTVIZ_VIEWS:
        frame, files, layer_notices = _bertviz(_with_weights(state), layer, view)
        frames = (frame, None, files) if view == "attn-head-view" else (None, frame, files)
    notice = _notice(result, layer_notices)
    if notice:
        gr.Warning(for_display(notice))
    queries = [(label, i) for i, label in enumerate(plots.token_labels(result["tokens"]))]
    return (state, _notice_markdown(notice), gr.Slider(maximum=result["num_layers"] - 1, value=layer),
            gr.Slider(maximum=result["num_heads"] - 1, value=head),
            gr.Dropdown(choices=queries, value=min(1, len(queries) - 1)),
            *frames, *chart_values(state, layer, head, image_format, view, others=None))


def _math_markdown(m: dict) -> str:
    """The formula with this query's real numbers, as Markdown in the request's language."""
    fmt = lambda xs: "[" + ", ".join(f"{x:.3f}" for x in xs) + "]"  # noqa: E731
    labels = [markdown_text(label) for label in plots.token_labels(m["tokens"])]
    order = sorted((j for j in range(len(m["weights"])) if not m["masked"][j]), key=lambda j: -m["weights"][j])[:3]
    terms = " + ".join(f"{m['weights'][j]:.3f}·v[{labels[j]}]" for j in order)
    plain = abs(m["scale"] * m["sqrt_dk"] - 1) < 1e-6
    scale = say("attention.math_scale_plain", value=1 / m["sqrt_dk"]) if plain else \
        say("attention.math_scale_layer", value=m["scale"])
    masked = sum(m["masked"])
    lines = [
        say("attention.math_title", layer=m["layer"], head=m["head"], query=labels[m["query"]]),
        say("attention.math_query", dim=m["head_dim"], vector=fmt(m["query_vector"])),
        say("attention.math_scores", keys=len(labels)),
        say("attention.math_scale", scale=scale, sqrt_dk=m["sqrt_dk"]),
        say("attention.math_causal", masked=masked) if masked else say("attention.math_no_mask"),
        say("attention.math_softmax", total=sum(m["weights"])),
        say("attention.math_sum", terms=terms, vector=fmt(m["output"])),
        "\n" + say("attention.math_check", diff=m["max_abs_diff"]),
    ]
    return "\n".join(lines)


@user_errors
def explain_query(state: dict | None, layer: Any, head: Any, query: Any, image_format: str) -> tuple:
    """The attention formula for (layer, head, query) of the last run, with its real numbers (from the cached
    forward pass of that input when it is still cached)."""
    if not state:
        raise ui_error(say("attention.run_first"))
    result = state["result"]
    m = attention_math(state["text"], state["checkpoint"], state["text_pair"],
                       layer=_clamp(layer, result["num_layers"] - 1), head=_clamp(head, result["num_heads"] - 1),
                       query=_clamp(query, len(result["tokens"]) - 1))
    labels = plots.token_labels(m["tokens"])
    rows = [[labels[j], round(m["scores"][j], 5), None if m["masked"][j] else round(m["scaled"][j], 5),
             m["masked"][j], round(m["weights"][j], 6), round(m["model_weights"][j], 6)]
            for j in range(len(labels))]
    chart = plots.with_export(plots.math_chart(m), image_format, f"attention_math_L{m['layer']}_H{m['head']}")
    return _math_markdown(m), table(rows, MATH_HEADERS), chart


# ---------------------------------------------------------------------------- layout


def build_tab() -> TabParts:
    """Lay out the Attention tab and wire its events (api names: attention, attention_math)."""
    gr.Markdown(I18N("attn_intro"))
    state = gr.State(None)
    shown = gr.State(DEFAULT_VIEW)  # the open sub-tab: the only view drawn
    with gr.Row():
        with gr.Column(scale=3):
            model = model_dropdown("attention", elem_id="attn-model")
            text = gr.Textbox(label=I18N("attn_text"), lines=2, elem_id="attn-text", max_length=text_limit(),
                              value=EXAMPLES[0][0])
            pair = gr.Textbox(label=I18N("attn_pair"), lines=1, elem_id="attn-pair", max_length=text_limit())
            run = gr.Button(I18N("run"), variant="primary", elem_id="attn-run")
        with gr.Column(scale=2):
            layer = gr.Slider(0, 11, value=0, step=1, label=I18N("attn_layer"), elem_id="attn-layer")
            head = gr.Slider(0, 11, value=0, step=1, label=I18N("attn_head"), elem_id="attn-head")
            image_format = gr.Radio(["png", "svg"], value="png", label=I18N("attn_image_format"))
            files = gr.File(label=I18N("attn_downloads"), file_count="multiple", interactive=False)
    notice = gr.Markdown(visible=False, elem_id="attn-notice")
    sub_tabs = {}
    with gr.Tabs():
        with gr.Tab(I18N("attn_heatmaps"), id="attn-heatmaps") as sub_tabs["attn-heatmaps"]:
            heatmap = gr.Plot(show_label=False, elem_id="attn-heatmap")
        with gr.Tab(I18N("attn_grid"), id="attn-grid") as sub_tabs["attn-grid"]:
            grid = gr.Plot(show_label=False, elem_id="attn-grid")
        with gr.Tab(I18N("attn_rollout"), id="attn-rollout") as sub_tabs["attn-rollout"]:
            rollout = gr.Plot(show_label=False, elem_id="attn-rollout-plot")
        with gr.Tab(I18N("attn_summary"), id="attn-summary") as sub_tabs["attn-summary"]:
            summary_plot = gr.Plot(show_label=False, elem_id="attn-summary-plot")
            summary_table = table_output(SUMMARY_HEADERS, label=I18N("attn_summary_table"))
        with gr.Tab(I18N("attn_head_view"), id="attn-head-view") as sub_tabs["attn-head-view"]:
            head_html = gr.HTML(I18N("attn_placeholder"), elem_id="attn-head-html")
        with gr.Tab(I18N("attn_model_view"), id="attn-model-view") as sub_tabs["attn-model-view"]:
            model_html = gr.HTML(I18N("attn_placeholder"), elem_id="attn-model-html")
        with gr.Tab(I18N("attn_math"), id="attn-math") as sub_tabs["attn-math"]:
            gr.Markdown(I18N("attn_math_intro"))
            with gr.Row():
                query = gr.Dropdown(choices=[], label=I18N("attn_query"), elem_id="attn-query")
                explain = gr.Button(I18N("attn_explain"), elem_id="attn-explain")
            math_md = gr.Markdown(elem_id="attn-math-md")
            math_plot = gr.Plot(show_label=False, elem_id="attn-math-plot")
            math_table = table_output(MATH_HEADERS)
    bertviz_outputs = [notice, head_html, model_html, files]
    chart_outputs = [summary_table, heatmap, grid, rollout, summary_plot]
    run_event = dict(fn=run_attention, inputs=[model, text, pair, layer, head, image_format, shown],
                     outputs=[state, notice, layer, head, query, head_html, model_html, files, *chart_outputs])
    for event in (run.click(api_name="attention", **run_event), text.submit(api_name=False, **run_event)):
        clear_on_failure(event, [notice, head_html, model_html, files, *chart_outputs], keep=[layer, head, query])
    for view, tab in sub_tabs.items():  # a view is drawn when its sub-tab is opened
        tab.select(open_view(view), inputs=[state, layer, head, image_format],
                   outputs=[shown, *bertviz_outputs, *chart_outputs], api_visibility="private")
    # Every change of the pickers (typing, arrow keys, dragging) redraws the open chart from the session's
    # state; while one redraw runs, only the latest change waits (no backlog of stale layers).
    gr.on([layer.input, head.input, image_format.change], user_errors(render_figures),
          inputs=[state, layer, head, image_format, shown], outputs=[*bertviz_outputs, *chart_outputs],
          api_visibility="private", trigger_mode="always_last", concurrency_limit=None)
    gr.on([explain.click, query.input], explain_query, inputs=[state, layer, head, query, image_format],
          outputs=[math_md, math_table, math_plot], api_name="attention_math")
    examples(EXAMPLES, inputs=[text, pair])
    return TabParts(pickers=[("attention", model)])
