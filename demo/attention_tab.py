"""Attention tab: bertviz head/model views (offline), Plotly heatmaps, per-head summary, rollout and
the attention formula ``softmax(QKᵀ/√d_k)V`` with the model's real numbers.

Data flow: "Run" -> :func:`run_attention` -> ``model_utils.attention`` (eager attention through the
model manager) -> render helpers (``model_utils.attention_views`` for bertviz, ``demo.attention_plots``
for Plotly). The result lives in a per-user ``gr.State`` so moving the layer/head pickers only redraws.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

from demo import attention_plots as plots
from demo.common import TabParts, examples, model_dropdown, text_limit, user_errors
from demo.i18n import I18N
from demo.messages import for_display, localized, localized_table, markdown_text

EXAMPLES = [
    ["The animal didn't cross the street because it was too tired.", ""],
    ["The cat sat on the mat.", "The dog slept on the sofa."],
    ["Paris is the capital of France.", ""],
    ["I went to the store to buy some milk.", "Then I went home and made coffee."],
]
SUMMARY_COLUMNS = ["layer", "head", "entropy", "cls", "sep", "self", "previous", "next"]
SUMMARY_HEADERS_ZH = ["层", "头", "熵", "cls", "sep", "自身", "前一个", "后一个"]

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
        "attn_heatmaps": "Heatmaps",
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
    },
}


# ---------------------------------------------------------------------------- rendering


def _clamp(value: Any, upper: int) -> int:
    try:
        return min(max(int(value), 0), upper)
    except (TypeError, ValueError):
        return 0


def _views(result: dict, layer: int) -> tuple[str, str, list[str], str]:
    """bertviz iframes, their standalone HTML files, and notices about left-out layers."""
    from model_utils import attention_views as views

    head_doc, head_notice = views.head_view_html(result, layer)
    model_doc, model_notice = views.model_view_html(result, layer)
    folder = Path(tempfile.mkdtemp(prefix="plm-attention-"))
    files = []
    for name, doc in (("attention_head_view.html", head_doc), ("attention_model_view.html", model_doc)):
        (folder / name).write_text(doc, encoding="utf-8")
        files.append(str(folder / name))
    shown_layers = len(views.model_view_layers(result, layer))
    head_frame = views.iframe(head_doc, views.view_height(result, "head"), "bertviz head view")
    model_frame = views.iframe(model_doc, views.view_height(result, "model", shown_layers), "bertviz model view")
    return head_frame, model_frame, files, " ".join(n for n in (head_notice, model_notice) if n)


def _with_weights(state: dict) -> dict:
    """The run's result with its attentions as the float32 array kept in the state."""
    return {**state["result"], "attentions": state["weights"]}


def refresh_views(state: dict | None, layer: Any) -> tuple:
    """Redraw the bertviz views around ``layer`` when they could not hold every layer; else skip."""
    from model_utils import attention_views as views

    if not state:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    result = _with_weights(state)
    layer = _clamp(layer, result["num_layers"] - 1)
    if len(views.model_view_layers(result, layer)) == result["num_layers"] and \
            len(views.head_view_layers(result, layer)) == result["num_layers"]:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    head_frame, model_frame, files, layers_notice = _views(result, layer)
    notice = localized(" ".join(n for n in (result["notice"], layers_notice) if n))
    return gr.Markdown(markdown_text(notice), visible=bool(notice)), head_frame, model_frame, files


def render_figures(state: dict | None, layer: Any, head: Any, image_format: str) -> tuple:
    """Heatmap of (layer, head), grid of the layer's heads, rollout through layer, summary chart."""
    if not state:
        return None, None, None, None
    result = state["result"]
    layer = _clamp(layer, result["num_layers"] - 1)
    head = _clamp(head, result["num_heads"] - 1)
    tokens, weights = result["tokens"], state["weights"]
    heatmap = plots.attention_heatmap(weights[layer, head], tokens, f"Layer {layer}, head {head}")
    grid = plots.layer_grid(weights[layer], tokens, layer)
    rollout = plots.rollout_heatmap(state["rollout"][layer], tokens, layer)
    summary = plots.summary_chart(state["summary"], result["num_layers"], result["num_heads"])
    return (plots.with_export(heatmap, image_format, f"attention_L{layer}_H{head}"),
            plots.with_export(grid, image_format, f"attention_layer{layer}_heads"),
            plots.with_export(rollout, image_format, f"attention_rollout_L{layer}"),
            plots.with_export(summary, image_format, "attention_head_summary"))


def _summary_table(rows: list[dict]) -> dict:
    data = [[r[c] if c in ("layer", "head") or r[c] is None else round(r[c], 4) for c in SUMMARY_COLUMNS]
            for r in rows]
    return localized_table(data, SUMMARY_COLUMNS, SUMMARY_HEADERS_ZH)


# ---------------------------------------------------------------------------- handlers


@user_errors
def run_attention(checkpoint: str, text: str, text_pair: str, layer: Any, head: Any, image_format: str,
                  progress: gr.Progress = gr.Progress()) -> tuple:
    """Compute the attention of ``text`` [+ ``text_pair``] and fill every view of the tab."""
    import numpy as np

    from model_utils.attention import attention, attention_rollout, head_summary

    progress(0.05, desc="Loading the model and computing attention…")
    result = attention(text, checkpoint or None, text_pair or None)
    weights = np.asarray(result.pop("attentions"), dtype=np.float32)  # 4x smaller than lists in the state
    layer = _clamp(layer, result["num_layers"] - 1)
    head = _clamp(head, result["num_heads"] - 1)
    progress(0.5, desc="Summarising heads and rolling out attention…")
    state = {"result": result, "weights": weights, "text": text, "text_pair": text_pair or None,
             "checkpoint": result["checkpoint"],
             "rollout": np.asarray(attention_rollout(weights), dtype=np.float32),
             "summary": head_summary(weights, result["cls_positions"], result["sep_positions"])}
    progress(0.7, desc="Rendering the views…")
    head_frame, model_frame, files, layers_notice = _views(_with_weights(state), layer)
    notice = localized(" ".join(n for n in (result["notice"], layers_notice) if n))
    if notice:
        gr.Warning(for_display(notice))
    queries = [(label, i) for i, label in enumerate(plots.token_labels(result["tokens"]))]
    return (state, gr.Markdown(markdown_text(notice), visible=bool(notice)),
            gr.Slider(maximum=result["num_layers"] - 1, value=layer),
            gr.Slider(maximum=result["num_heads"] - 1, value=head),
            gr.Dropdown(choices=queries, value=min(1, len(queries) - 1)),
            head_frame, model_frame, files, _summary_table(state["summary"]),
            *render_figures(state, layer, head, image_format))


def _math_markdown(m: dict) -> str:
    """The formula with this query's real numbers, as Markdown."""
    fmt = lambda xs: "[" + ", ".join(f"{x:.3f}" for x in xs) + "]"  # noqa: E731
    labels = plots.token_labels(m["tokens"])
    order = sorted((j for j in range(len(m["weights"])) if not m["masked"][j]), key=lambda j: -m["weights"][j])[:3]
    terms = " + ".join(f"{m['weights'][j]:.3f}·v[{labels[j]}]" for j in order)
    scale_note = (f"1/√d_k = {1 / m['sqrt_dk']:.4f}" if abs(m["scale"] * m["sqrt_dk"] - 1) < 1e-6
                  else f"{m['scale']:.4f} (this layer also divides by its index + 1)")
    masked = sum(m["masked"])
    lines = [
        f"### Attention(Q, K, V) = softmax(QKᵀ / √d_k) · V — layer {m['layer']}, head {m['head']}, "
        f"query **{labels[m['query']]}**",
        f"1. **Query vector** q = W_Q·h (d_k = {m['head_dim']}): `{fmt(m['query_vector'])}`",
        f"2. **Scores** s_j = q·k_j for each of the {len(labels)} keys (table below).",
        f"3. **Scale**: s_j × {scale_note} (√d_k = {m['sqrt_dk']:.4f}).",
        (f"4. **Causal mask**: the {masked} keys after the query get −∞, so weight 0." if masked
         else "4. **Mask**: none (every token may attend to every token)."),
        "5. **Softmax**: w_j = exp(s_j·scale) / Σ exp(s_i·scale) — the weights sum to "
        f"{sum(m['weights']):.4f}.",
        f"6. **Weighted sum of values**: output = Σ_j w_j·v_j = {terms} + … = `{fmt(m['output'])}`",
        f"\n✔ These weights equal the attention the model itself returned "
        f"(largest difference {m['max_abs_diff']:.1e}).",
    ]
    return "\n".join(lines)


@user_errors
def explain_query(state: dict | None, layer: Any, head: Any, query: Any, image_format: str) -> tuple:
    """The attention formula for (layer, head, query) of the last run, with its real numbers."""
    from model_utils.attention import attention_math

    if not state:
        raise ValueError("Press Run first, then pick a query token.")
    result = state["result"]
    m = attention_math(state["text"], state["checkpoint"], state["text_pair"],
                       layer=_clamp(layer, result["num_layers"] - 1), head=_clamp(head, result["num_heads"] - 1),
                       query=_clamp(query, len(result["tokens"]) - 1))
    labels = plots.token_labels(m["tokens"])
    table = [[labels[j], round(m["scores"][j], 5), None if m["masked"][j] else round(m["scaled"][j], 5),
              m["masked"][j], round(m["weights"][j], 6), round(m["model_weights"][j], 6)]
             for j in range(len(labels))]
    chart = plots.with_export(plots.math_chart(m), image_format, f"attention_math_L{m['layer']}_H{m['head']}")
    return _math_markdown(m), table, chart


# ---------------------------------------------------------------------------- layout


def build_tab() -> TabParts:
    """Lay out the Attention tab and wire its events (api names: attention, attention_math)."""
    gr.Markdown(I18N("attn_intro"))
    state = gr.State(None)
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
    with gr.Tabs():
        with gr.Tab(I18N("attn_head_view"), id="attn-head-view"):
            head_html = gr.HTML(I18N("attn_placeholder"), elem_id="attn-head-html")
        with gr.Tab(I18N("attn_model_view"), id="attn-model-view"):
            model_html = gr.HTML(I18N("attn_placeholder"), elem_id="attn-model-html")
        with gr.Tab(I18N("attn_heatmaps"), id="attn-heatmaps"):
            heatmap = gr.Plot(show_label=False, elem_id="attn-heatmap")
            grid = gr.Plot(show_label=False, elem_id="attn-grid")
        with gr.Tab(I18N("attn_summary"), id="attn-summary"):
            summary_plot = gr.Plot(show_label=False, elem_id="attn-summary-plot")
            summary_table = gr.Dataframe(headers=SUMMARY_COLUMNS, label=I18N("attn_summary_table"),
                                         interactive=False)
        with gr.Tab(I18N("attn_rollout"), id="attn-rollout"):
            rollout = gr.Plot(show_label=False, elem_id="attn-rollout-plot")
        with gr.Tab(I18N("attn_math"), id="attn-math"):
            gr.Markdown(I18N("attn_math_intro"))
            with gr.Row():
                query = gr.Dropdown(choices=[], label=I18N("attn_query"), elem_id="attn-query")
                explain = gr.Button(I18N("attn_explain"), elem_id="attn-explain")
            math_md = gr.Markdown(elem_id="attn-math-md")
            math_plot = gr.Plot(show_label=False, elem_id="attn-math-plot")
            math_table = gr.Dataframe(headers=["key", "q·k", "q·k / √d_k", "masked", "softmax weight",
                                               "model's weight"], interactive=False)
    figures = [heatmap, grid, rollout, summary_plot]
    run_event = dict(fn=run_attention, inputs=[model, text, pair, layer, head, image_format],
                     outputs=[state, notice, layer, head, query, head_html, model_html, files, summary_table,
                              *figures])
    run.click(api_name="attention", **run_event)
    text.submit(api_name=False, **run_event)
    gr.on([layer.release, head.release, image_format.change], render_figures,
          inputs=[state, layer, head, image_format], outputs=figures, api_name=False)
    layer.release(refresh_views, inputs=[state, layer], outputs=[notice, head_html, model_html, files],
                  api_name=False)
    gr.on([explain.click, query.input], explain_query, inputs=[state, layer, head, query, image_format],
          outputs=[math_md, math_table, math_plot], api_name="attention_math")
    examples(EXAMPLES, inputs=[text, pair])
    return TabParts(pickers=[("attention", model)])
