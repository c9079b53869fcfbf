"""Fill-Mask tab: per-mask top-k, the best joint filling, candidate words, up to 3 models side by side.

The computing event (``api_name="fill_mask"``) is batched and returns plain JSON, one record
per chosen model; a second, private step renders it (Plotly bars, filled sentences, table).
"""

from __future__ import annotations

import re
from typing import Any

import gradio as gr

from demo import plots
from demo.common import (TabParts, clear_on_failure, examples, model_dropdown, table_output, text_limit, ui_error,
                        user_errors)
from demo.i18n import I18N, add_messages, add_strings
from demo.messages import markdown_text, request_language, table, translate
from model_utils.config import get_settings
from model_utils.errors import raise_if_error
from model_utils.fill_mask import MASK_PATTERN, fill_mask_requests

MAX_BATCH = 16  # requests answered by one batched forward pass

STRINGS = {
    "en": {
        "tab_fill_mask": "Fill-Mask",
        "fm_intro": "Write `[MASK]` where a word is missing (`<mask>` works too, whatever the model). "
                    "Several masks are filled one at a time, most confident first.",
        "fm_text": "Text with [MASK]",
        "fm_placeholder": "Paris is the [MASK] of France.",
        "fm_top_k": "Predictions per mask (top-k)",
        "fm_targets": "Candidate words (optional)",
        "fm_targets_info": "Comma-separated; only these words are scored.",
        "fm_models_info": "Pick up to 3 models to compare them side by side.",
        "fm_run": "Fill the masks",
        "fm_filled": "Filled sentence",
        "fm_chart": "Probabilities per mask",
        "fm_table": "Top-k predictions",
        "fm_raw": "Raw output (JSON)",
    },
    "zh-CN": {
        "tab_fill_mask": "掩码填充",
        "fm_intro": "在缺词的位置写 `[MASK]`（任何模型都可以用 `<mask>`）。"
                    "多个掩码按置信度从高到低逐个填充。",
        "fm_text": "含 [MASK] 的文本",
        "fm_placeholder": "巴黎是法国的[MASK]都。",
        "fm_top_k": "每个掩码的预测数 (top-k)",
        "fm_targets": "候选词（可选）",
        "fm_targets_info": "用逗号分隔；只为这些词打分。",
        "fm_models_info": "最多选择 3 个模型并排比较。",
        "fm_run": "填充掩码",
        "fm_filled": "填充后的句子",
        "fm_chart": "每个掩码的概率",
        "fm_table": "Top-k 预测",
        "fm_raw": "原始输出 (JSON)",
    },
}

EXAMPLES = [
    ["Paris is the [MASK] of France.", ""],
    ["I [MASK] this movie, it was really [MASK]!", ""],
    ["The weather today is [MASK].", "sunny, rainy, cold, hot"],
    ["The doctor said that [MASK] would be late.", "he, she, they"],
    ["北京是中国的[MASK]都。", ""],
]
TABLE_HEADERS = ["fm_col_model", "fm_col_mask", "fm_col_rank", "fm_col_token", "fm_col_probability"]
STRINGS["en"].update({"fm_col_model": "model", "fm_col_mask": "mask", "fm_col_rank": "rank", "fm_col_token": "token",
                      "fm_col_probability": "probability"})
STRINGS["zh-CN"].update({"fm_col_model": "模型", "fm_col_mask": "掩码", "fm_col_rank": "排名", "fm_col_token": "词元",
                         "fm_col_probability": "概率"})

MESSAGES = {"zh-CN": {
    "fill_mask.no_mask_token": "该模型的分词器没有掩码词元，无法填充掩码。",
    "fill_mask.empty": "请输入含 [MASK] 的文本。",
    "fill_mask.no_mask": "没有找到掩码：请在缺词的位置写 [MASK]{own}。",
    "fill_mask.too_many_masks": "掩码太多（{count} 个）；最多允许 {limit} 个。",
    "fill_mask.masks_far_apart": "两个掩码相隔 {gap} 个词元，但模型一次最多读 {limit} 个词元；请让它们靠近一些。",
    "fill_mask.no_candidate": "该模型无法为任何一个候选词打分。",
    "fill_mask.top_k": "top-k 必须是 1 到 {limit} 之间的数。",
    "fill_mask.too_many_models": "一次最多比较 {limit} 个模型。",
    "fill_mask.models_not_names": "请用名称选择模型：一个模型名列表。",
    "fill_mask.window": "文本有 {length} 个词元，而模型最多读 {limit} 个：只用了第 {first}-{last} 个词元（掩码附近）。",
    "fill_mask.candidate_unknown": "候选词 {word!r} 不在词表中，已忽略。",
    "fill_mask.candidate_split": "候选词 {word!r} 不是单个词元；按 {token!r} 打分。",
}}
add_strings(STRINGS)
add_messages(MESSAGES)


@user_errors
def fill_mask_batch(texts: list[str], models: list[Any], top_ks: list[int], targets: list[str],
                    request: gr.Request | None = None) -> tuple[list[dict]]:
    """Batched event: one ``{"text", "results": [...per model]}`` dict per request.

    ``model_utils.fill_mask.fill_mask_requests`` checks each request on its own (the event skips
    Gradio's preprocessing, whose checks would fail the whole batch for one bad request, so values
    arrive raw): a bad one gets its error, a model that fails its error in that model's place, and
    the others their answers. A lone request that fails is shown as an error. Errors and notices are
    said in each request's own language.
    """
    outputs = fill_mask_requests([{"text": t, "models": m, "top_k": k, "targets": w}
                                  for t, m, k, w in zip(texts, models, top_ks, targets)])
    requests = request if isinstance(request, (list, tuple)) else [request] * len(outputs)
    said = [_in_language(output, request_language(r)) for output, r in zip(outputs, requests)]
    if all("error" in output for output in said):
        first = outputs[0]
        if "error" in first or len(first["results"]) == 1:
            raise_if_error(first if "error" in first else first["results"][0])
        raise ui_error(said[0]["error"])
    return (said,)


def _in_language(output: dict, language: str) -> dict:
    """A request's output with its errors and notices said in ``language`` (codes kept for the API).

    A request whose every model failed gets an ``error`` of its own, naming each model's.
    """
    if "error" in output:
        return {**output, "error": translate(output, language)}
    results = []
    for result in output["results"]:
        if "error" in result:
            results.append({**result, "error": translate(result, language)})
        else:
            results.append({**result, "notices": [translate(n, language) for n in result["notices"]]})
    if all("error" in r for r in results):
        joined = results[0]["error"] if len(results) == 1 else "; ".join(f"{r['model']}: {r['error']}" for r in results)
        return {**output, "results": results, "error": joined}
    return {**output, "results": results}


def _escape(text: str) -> str:
    return re.sub(r"([\\`*_{}\[\]<>#|~])", r"\\\1", text)


def filled_markdown(text: str, result: dict) -> str:
    """The input with each mask replaced by its filler in bold (joint filling when several masks)."""
    if result.get("joint"):
        tokens = {s["mask"]: s["token_str"] for s in result["joint"]["steps"]}
        score = result["joint"]["score"]
    else:
        tokens = {i: p[0]["token_str"] for i, p in enumerate(result["predictions"])}
        score = result["predictions"][0][0]["score"] if result["predictions"] else 0.0
    pieces = MASK_PATTERN.split(text)
    out = [_escape(pieces[0])]
    for index, piece in enumerate(pieces[1:]):
        out.append(f"**{_escape(tokens.get(index, '?').strip())}**" + _escape(piece))
    return f"`{result['model']}` (p = {score:.3g}): " + "".join(out)


def render_fill_mask(output: dict) -> tuple[Any, str, dict, str]:
    """Turn the JSON output into (bar chart, filled sentences, top-k table, notices)."""
    if not output:
        return None, "", [], ""
    if output.get("error"):
        raise ui_error(output["error"])
    results = output["results"]
    errors = [(r["model"], r["error"]) for r in results if "error" in r]
    good = [r for r in results if "error" not in r]
    if errors and not good:
        raise ui_error("; ".join(f"{model}: {message}" for model, message in errors))
    filled = "\n\n".join(filled_markdown(output["text"], r) for r in good)
    rows = [[r["model"], m + 1, rank + 1, c["token_str"], round(c["score"], 5)]
            for r in good for m, cands in enumerate(r["predictions"]) for rank, c in enumerate(cands)]
    notices = [f"`{model}`: {markdown_text(message)}" for model, message in errors]
    notices += [f"`{r['model']}`: {markdown_text(n)}" for r in good for n in r["notices"]]
    return (plots.mask_bars(good), filled, table(rows, TABLE_HEADERS), "\n".join(f"⚠️ {n}" for n in notices))


def build_tab() -> TabParts:
    """Lay out the Fill-Mask tab and wire its events."""
    gr.Markdown(I18N("fm_intro"))
    with gr.Row():
        with gr.Column(scale=3):
            text = gr.Textbox(label=I18N("fm_text"), placeholder="Paris is the [MASK] of France.",
                              value="Paris is the [MASK] of France.", lines=3, elem_id="fm-text", max_length=text_limit())
            with gr.Row():
                top_k = gr.Slider(1, get_settings().max_top_k, value=5, step=1, label=I18N("fm_top_k"),
                                  elem_id="fm-top-k")
                targets = gr.Textbox(label=I18N("fm_targets"), info=I18N("fm_targets_info"),
                                     elem_id="fm-targets", max_length=text_limit())
        with gr.Column(scale=2):
            models = model_dropdown("fill-mask", multiselect=True, max_choices=get_settings().max_compare,
                                    elem_id="fm-models")
            run = gr.Button(I18N("fm_run"), variant="primary", elem_id="fm-run")
    notices = gr.Markdown(elem_id="fm-notices")
    filled = gr.Markdown(label=I18N("fm_filled"), elem_id="fm-filled")
    chart = gr.Plot(label=I18N("fm_chart"), elem_id="fm-chart")
    table = table_output(TABLE_HEADERS, label=I18N("fm_table"), elem_id="fm-table")
    with gr.Accordion(I18N("fm_raw"), open=False):
        raw = gr.JSON(elem_id="fm-raw")
    examples(EXAMPLES, inputs=[text, targets])
    event = gr.on([run.click, text.submit], fill_mask_batch, inputs=[text, models, top_k, targets],
                  outputs=[raw], api_name="fill_mask", batch=True, max_batch_size=MAX_BATCH,
                  concurrency_limit=1, concurrency_id="fill_mask", preprocess=False)
    rendered = event.success(render_fill_mask, inputs=[raw], outputs=[chart, filled, table, notices],
                             api_visibility="private", queue=False)
    clear_on_failure(event, [raw, chart, filled, table, notices])
    clear_on_failure(rendered, [chart, filled, table, notices])
    return TabParts(pickers=[("fill-mask", models)])
