"""Fill-Mask tab: per-mask top-k, the best joint filling, candidate words, up to 3 models side by side.

The computing event (``api_name="fill_mask"``) is batched and returns plain JSON, one record
per chosen model; a second, private step renders it (Plotly bars, filled sentences, table).
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

import gradio as gr

from demo import plots
from demo.common import TabParts, examples, logger, model_dropdown, text_limit, user_errors, user_message
from demo.i18n import I18N
from demo.messages import localized, localized_table, markdown_text
from model_utils.fill_mask import MASK_PATTERN, check_request, run_fill_mask

MAX_COMPARE = 3  # models compared side by side
MAX_BATCH = 16  # requests answered by one batched forward pass
MAX_TOP_K = 20  # the top-k slider's range, which API requests are held to as well

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
TABLE_HEADERS = ["model", "mask", "rank", "token", "probability"]
TABLE_HEADERS_ZH = ["模型", "掩码", "排名", "词元", "概率"]


def model_list(models: str | list[str] | None) -> list[str]:
    """The chosen models as a list without duplicates; ValueError if more than MAX_COMPARE or not names."""
    if isinstance(models, str):
        models = [models]
    names_only = all(isinstance(m, (str, type(None))) for m in models or [])
    if not isinstance(models, (list, tuple, type(None))) or not names_only:
        raise ValueError("Choose the models by name: a list of model names.")
    chosen = list(dict.fromkeys(m.strip() for m in (models or []) if m and m.strip()))
    if len(chosen) > MAX_COMPARE:
        raise ValueError(f"Compare at most {MAX_COMPARE} models at once.")
    return chosen or [""]  # "" = the default model


def top_k_value(top_k: Any) -> int:
    """A request's top-k as an int (5 when unset); ValueError unless it is a number from 1 to MAX_TOP_K."""
    try:
        number = float(5 if top_k is None else top_k)
    except (TypeError, ValueError):
        number = float("nan")
    if not 1 <= number <= MAX_TOP_K:  # also False for NaN
        raise ValueError(f"top-k must be a number from 1 to {MAX_TOP_K}.")
    return int(number)


def _check(text: Any, chosen: Any, top_k: Any, words: Any) -> str | None:
    """The error message of a bad request (raw API values of any type), or None if it can run."""
    try:
        if not isinstance(text, (str, type(None))) or not isinstance(words, (str, type(None))):
            raise ValueError("The text and the candidate words must be strings.")
        for model in model_list(chosen):
            check_request(text, model or None, top_k_value(top_k), words or None)
    except Exception as err:  # noqa: BLE001 - one request's failure must not fail the others in its batch
        if not isinstance(err, ValueError):
            logger.exception("unexpected error checking a Fill-Mask request")
        return user_message(err)
    return None


@user_errors
def fill_mask_batch(texts: list[str], models: list[Any], top_ks: list[int],
                    targets: list[str]) -> tuple[list[dict]]:
    """Batched event: one ``{"text", "results": [...per model]}`` dict per request.

    Requests are validated one by one first: a bad one gets ``{"error": message}`` and never
    fails the others in its batch; when every request of the batch is bad (always the case
    for a lone request) a ``gr.Error`` is raised instead. The event skips Gradio's
    preprocessing, whose checks (the slider's range) would fail the whole batch for one bad
    request, so values arrive raw and :func:`_check` validates each.
    """
    errors = [_check(*request) for request in zip(texts, models, top_ks, targets)]
    if all(errors):
        raise ValueError(errors[0])
    groups: dict[tuple, list[tuple[int, int]]] = defaultdict(list)
    outputs: list[dict] = []
    for request, (chosen, top_k, words) in enumerate(zip(models, top_ks, targets)):
        names = [] if errors[request] else model_list(chosen)
        outputs.append({"text": texts[request], "results": [None] * len(names)})
        if errors[request]:
            outputs[-1]["error"] = errors[request]
        for slot, name in enumerate(names):
            groups[(name, top_k_value(top_k), words or "")].append((request, slot))
    for (name, top_k, words), members in groups.items():
        try:
            records = run_fill_mask([texts[r] for r, _ in members], name or None, top_k, words or None)
        except ValueError as err:  # validated already; only a race (e.g. an unload) gets here
            records = [{"model": name, "error": str(err)}] * len(members)
        for (request, slot), record in zip(members, records):
            outputs[request]["results"][slot] = record
    return (outputs,)


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
        raise gr.Error(output["error"])
    results = output["results"]
    errors = [(r["model"], localized(r["error"])) for r in results if "error" in r]
    good = [r for r in results if "error" not in r]
    if errors and not good:  # user_errors escapes it for the page's error box
        raise gr.Error("; ".join(f"{model}: {message}" for model, message in errors))
    filled = "\n\n".join(filled_markdown(output["text"], r) for r in good)
    table = [[r["model"], m + 1, rank + 1, c["token_str"], round(c["score"], 5)]
             for r in good for m, cands in enumerate(r["predictions"]) for rank, c in enumerate(cands)]
    notices = [f"`{model}`: {markdown_text(message)}" for model, message in errors]
    notices += [f"`{r['model']}`: {markdown_text(localized(n))}" for r in good for n in r["notices"]]
    return (plots.mask_bars(good), filled, localized_table(table, TABLE_HEADERS, TABLE_HEADERS_ZH),
            "\n".join(f"⚠️ {n}" for n in notices))


def build_tab() -> TabParts:
    """Lay out the Fill-Mask tab and wire its events."""
    gr.Markdown(I18N("fm_intro"))
    with gr.Row():
        with gr.Column(scale=3):
            text = gr.Textbox(label=I18N("fm_text"), placeholder="Paris is the [MASK] of France.",
                              value="Paris is the [MASK] of France.", lines=3, elem_id="fm-text", max_length=text_limit())
            with gr.Row():
                top_k = gr.Slider(1, MAX_TOP_K, value=5, step=1, label=I18N("fm_top_k"), elem_id="fm-top-k")
                targets = gr.Textbox(label=I18N("fm_targets"), info=I18N("fm_targets_info"),
                                     elem_id="fm-targets", max_length=text_limit())
        with gr.Column(scale=2):
            models = model_dropdown("fill-mask", multiselect=True, max_choices=MAX_COMPARE,
                                    elem_id="fm-models")
            run = gr.Button(I18N("fm_run"), variant="primary", elem_id="fm-run")
    notices = gr.Markdown(elem_id="fm-notices")
    filled = gr.Markdown(label=I18N("fm_filled"), elem_id="fm-filled")
    chart = gr.Plot(label=I18N("fm_chart"), elem_id="fm-chart")
    table = gr.Dataframe(headers=TABLE_HEADERS, label=I18N("fm_table"), interactive=False,
                         elem_id="fm-table")
    with gr.Accordion(I18N("fm_raw"), open=False):
        raw = gr.JSON(elem_id="fm-raw")
    examples(EXAMPLES, inputs=[text, targets])
    gr.on([run.click, text.submit], fill_mask_batch, inputs=[text, models, top_k, targets],
          outputs=[raw], api_name="fill_mask", batch=True, max_batch_size=MAX_BATCH,
          concurrency_limit=1, concurrency_id="fill_mask", preprocess=False,
          ).success(user_errors(render_fill_mask), inputs=[raw], outputs=[chart, filled, table, notices],
                    api_visibility="private", queue=False)
    return TabParts(pickers=[("fill-mask", models)])
