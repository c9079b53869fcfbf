"""Next Sentence tab: P(IsNext) of a sentence pair, and a paragraph scored pair by pair
against a shuffled control.

Computing events (``api_name="next_sentence"`` and ``"next_sentence_paragraph"``) return plain
JSON; a private step renders it as a ``gr.Label``, bar charts and a table.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from demo import plots
from demo.common import TabParts, clear_on_failure, examples, model_dropdown, table_output, text_limit, user_errors
from demo.i18n import I18N, add_messages, add_strings
from demo.messages import markdown_text, say, table, translate
from model_utils.manager import get_manager
from model_utils.next_sentence import next_sentence, score_paragraph

STRINGS = {
    "en": {
        "tab_next_sentence": "Next Sentence",
        "ns_intro": "BERT was pretrained to tell whether sentence B really follows sentence A "
                    "(next-sentence prediction). Models without that head, such as RoBERTa and "
                    "DistilBERT, cannot do this.",
        "ns_pair": "Sentence pair",
        "ns_paragraph": "Paragraph",
        "ns_first": "Sentence A",
        "ns_second": "Sentence B",
        "ns_run": "Score the pair",
        "ns_result": "Does B follow A?",
        "ns_chart": "Probabilities",
        "ns_paragraph_text": "Paragraph (several sentences)",
        "ns_paragraph_info": "Each consecutive pair is scored. Control: each sentence followed by a sentence of "
                             "another text (on another topic), the way BERT's pretraining made its \"not next\" "
                             "pairs; a model that learned next-sentence prediction scores the real order high and "
                             "the control low.",
        "ns_seed": "Control seed (which sentences of the other text)",
        "ns_paragraph_run": "Score the paragraph",
        "ns_paragraph_chart": "P(IsNext) per consecutive pair vs the control (a sentence of another text)",
        "ns_paragraph_table": "Pairs",
        "ns_raw": "Raw output (JSON)",
        "ns_col_order": "order", "ns_col_pair": "pair", "ns_col_p": "P(IsNext)",
    },
    "zh-CN": {
        "tab_next_sentence": "下一句预测",
        "ns_intro": "BERT 在预训练时学习判断句子 B 是否紧跟在句子 A 之后（下一句预测）。"
                    "没有该输出头的模型（如 RoBERTa、DistilBERT）无法完成此任务。",
        "ns_pair": "句子对",
        "ns_paragraph": "段落",
        "ns_first": "句子 A",
        "ns_second": "句子 B",
        "ns_run": "计算句子对",
        "ns_result": "B 是否接在 A 之后？",
        "ns_chart": "概率",
        "ns_paragraph_text": "段落（多个句子）",
        "ns_paragraph_info": "为每对相邻句子打分。对照：每个句子后面接一个来自另一篇文本（另一个话题）的句子，"
                             "这正是 BERT 预训练构造“不是下一句”样本的方式；学会了下一句预测的模型会给真实顺序高分、给对照低分。",
        "ns_seed": "对照随机种子（选用另一篇文本的哪些句子）",
        "ns_paragraph_run": "计算段落",
        "ns_paragraph_chart": "相邻句子对的 P(IsNext) 与对照（另一篇文本的句子）",
        "ns_paragraph_table": "句子对",
        "ns_raw": "原始输出 (JSON)",
        "ns_col_order": "顺序", "ns_col_pair": "句对", "ns_col_p": "P(IsNext)",
    },
}

PAIR_EXAMPLES = [
    ["I was very hungry after work.", "So I cooked a big dinner."],
    ["I was very hungry after work.", "Penguins live in the southern hemisphere."],
    ["The match was cancelled.", "It had been raining all day."],
    ["我今天很累。", "所以我早早就睡了。"],
]
PARAGRAPH_EXAMPLES = [
    ["Anna bought a new bike. She rode it to work every day. After a month she was much fitter. "
     "Her colleagues started cycling too."],
    ["The museum opens at nine. Tickets are sold at the entrance. Children under twelve enter for free. "
     "Photography is not allowed inside."],
]
PAIR_LABELS = ("IsNext", "NotNext")


def _model_name(model: str | None) -> str:
    return get_manager().resolve_checkpoint(model or None, "next-sentence", "next-sentence")


@user_errors
def score_pair(first: str, second: str, model: str | None) -> dict:
    """API ``next_sentence``: ``{"model", "is_next", "not_next", "notices"}`` for one pair."""
    result = next_sentence(first, second, model or None)
    return {"model": _model_name(model), **result, "notices": [translate(n) for n in result["notices"]]}


@user_errors
def score_paragraph_event(paragraph: str, model: str | None, seed: float | None) -> dict:
    """API ``next_sentence_paragraph``: consecutive pairs and shuffled control (see score_paragraph)."""
    result = score_paragraph(paragraph, model or None, int(seed or 0))
    return {"model": _model_name(model), **result, "notices": [translate(n) for n in result["notices"]]}


def render_pair(output: dict) -> tuple[dict, Any, str]:
    """(gr.Label value, bar chart, notices) of a pair result."""
    probs = {PAIR_LABELS[0]: output["is_next"], PAIR_LABELS[1]: output["not_next"]}
    notices = "\n\n".join(f"⚠️ {markdown_text(n)}" for n in output.get("notices", []))
    return probs, plots.probability_bars(probs), notices


PARAGRAPH_HEADERS = ["ns_col_order", "ns_col_pair", "ns_first", "ns_second", "ns_col_p"]
MESSAGES = {
    "en": {"next_sentence.original": "original", "next_sentence.shuffled": "control",
           "next_sentence.contrast": "**Real order:** mean P(IsNext) {real:.0%} · **control** (each sentence "
                                     "followed by a sentence of another text): {control:.0%} · **contrast:** "
                                     "{contrast:+.0%}"},
    "zh-CN": {
        "next_sentence.original": "原顺序", "next_sentence.shuffled": "对照",
        "next_sentence.contrast": "**真实顺序：** 平均 P(IsNext) {real:.0%} · **对照**（每个句子后接另一篇文本的句子）："
                                  "{control:.0%} · **差距：** {contrast:+.0%}",
        "vocabulary.unreadable": "这段文本有 {share:.0%} 的词元是 {name} 不认识的（[UNK]）：它的词表不覆盖这种文字，"
                                 "所以它在这里的回答没有多大意义。请使用能读懂它的模型，例如 {suggestion}。",
        "vocabulary.unreadable_offline": "这段文本有 {share:.0%} 的词元是 {name} 不认识的（[UNK]）：它的词表不覆盖这种文字，"
                                         "所以它在这里的回答没有多大意义。能读懂它的模型（例如 {suggestion}）需要访问 "
                                         "Hugging Face Hub（现在无法访问）或本地缓存中的副本。",
        "next_sentence.no_pairs": "没有要打分的句子对。",
        "next_sentence.paragraph_short": "段落模式至少需要两个句子（以 . ! 或 ? 结尾）。",
        "next_sentence.pair_cut": "这对句子有 {length} 个词元，而模型最多读 {limit} 个；较长的句子被截短了。",
        "next_sentence.paragraph_cut": "{total} 个句子中只有前 {kept} 个参与了打分。",
    },
}
add_strings(STRINGS)
add_messages(MESSAGES)


def render_paragraph(output: dict) -> tuple[Any, dict, str]:
    """(chart, pair table, notices) of a paragraph result."""
    orders = (say("next_sentence.original"), "pairs"), (say("next_sentence.shuffled"), "control")
    rows = [[kind, r["index"], r["first"], r["second"], round(r["is_next"], 4)] for kind, key in orders for r in output[key]]
    contrast = say("next_sentence.contrast", real=output["mean_is_next"], control=output["mean_control"],
                   contrast=output["mean_is_next"] - output["mean_control"])
    notices = "\n\n".join([contrast] + [f"⚠️ {markdown_text(n)}" for n in output["notices"]])
    return plots.paragraph_chart(output), table(rows, PARAGRAPH_HEADERS), notices


def _pair_panel(model: gr.Dropdown) -> None:
    with gr.Row():
        first = gr.Textbox(label=I18N("ns_first"), value=PAIR_EXAMPLES[0][0], elem_id="ns-first", max_length=text_limit())
        second = gr.Textbox(label=I18N("ns_second"), value=PAIR_EXAMPLES[0][1], elem_id="ns-second", max_length=text_limit())
    run = gr.Button(I18N("ns_run"), variant="primary", elem_id="ns-run")
    with gr.Row():
        label = gr.Label(label=I18N("ns_result"), num_top_classes=2, elem_id="ns-label")
        chart = gr.Plot(label=I18N("ns_chart"), elem_id="ns-chart")
    pair_notes = gr.Markdown(elem_id="ns-notes")
    with gr.Accordion(I18N("ns_raw"), open=False):
        raw = gr.JSON(elem_id="ns-raw")
    examples(PAIR_EXAMPLES, inputs=[first, second])
    event = gr.on([run.click, second.submit], score_pair, inputs=[first, second, model], outputs=[raw],
                  api_name="next_sentence")
    event.success(render_pair, inputs=[raw], outputs=[label, chart, pair_notes], api_visibility="private",
                  queue=False)
    clear_on_failure(event, [raw, label, chart, pair_notes])


def _paragraph_panel(model: gr.Dropdown) -> None:
    paragraph = gr.Textbox(label=I18N("ns_paragraph_text"), info=I18N("ns_paragraph_info"), lines=5,
                           value=PARAGRAPH_EXAMPLES[0][0], elem_id="ns-paragraph", max_length=text_limit())
    with gr.Row():
        seed = gr.Number(value=0, precision=0, label=I18N("ns_seed"), minimum=0, elem_id="ns-seed")
        run = gr.Button(I18N("ns_paragraph_run"), variant="primary", elem_id="ns-paragraph-run")
    notices = gr.Markdown(elem_id="ns-paragraph-notes")
    chart = gr.Plot(label=I18N("ns_paragraph_chart"), elem_id="ns-paragraph-chart")
    pairs_table = table_output(PARAGRAPH_HEADERS, label=I18N("ns_paragraph_table"), wrap=True)
    with gr.Accordion(I18N("ns_raw"), open=False):
        raw = gr.JSON()
    examples(PARAGRAPH_EXAMPLES, inputs=[paragraph])
    event = run.click(score_paragraph_event, inputs=[paragraph, model, seed], outputs=[raw],
                      api_name="next_sentence_paragraph")
    event.success(render_paragraph, inputs=[raw], outputs=[chart, pairs_table, notices], api_visibility="private",
                  queue=False)
    clear_on_failure(event, [raw, chart, pairs_table, notices])


def build_tab() -> TabParts:
    """Lay out the Next Sentence tab (pair and paragraph modes sharing one model picker)."""
    gr.Markdown(I18N("ns_intro"))
    model = model_dropdown("next-sentence", elem_id="ns-model")
    with gr.Tabs():
        with gr.Tab(I18N("ns_pair"), id="ns-pair"):
            _pair_panel(model)
        with gr.Tab(I18N("ns_paragraph"), id="ns-paragraph-tab"):
            _paragraph_panel(model)
    return TabParts(pickers=[("next-sentence", model)])
