"""Classify tab: label probabilities, word-level explanations, and batch evaluation of a file.

Handlers call ``model_utils.classify`` / ``explain`` / ``batch`` and turn their plain results into
components with the helpers of :mod:`demo.classify_plots`; a failed event clears its result panels. Events: ``classify``, ``classify_explain``,
``classify_columns`` and ``classify_batch``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

from demo import classify_plots as plots
from demo.common import TabParts, clear_on_failure, examples, model_dropdown, text_limit, user_errors
from demo.i18n import I18N, add_messages, add_strings
from demo.messages import say
from model_utils.batch import classify_file, write_predictions_csv
from model_utils.classify import classify
from model_utils.explain import explain
from model_utils.tables import read_table

TASK = "text-classification"
EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
EXAMPLE_FILE = EXAMPLES_DIR / "classify_reviews.csv"
EXAMPLES = [
    ["A wonderful, heartfelt film with superb acting.", ""],
    ["The plot was dull and the ending made no sense at all.", ""],
    ["I expected more from the director, but the music was lovely.", ""],
    ["A man is playing a guitar on stage.", "Someone is performing music."],
]
TEXT_COLUMN_GUESSES = ("text", "sentence", "review", "content", "sentence1", "premise")
LABEL_COLUMN_GUESSES = ("label", "labels", "gold", "target", "class", "sentiment")

STRINGS = {
    "en": {
        "tab_classify": "Classify",
        "classify_intro": "Classify a text (or a text pair) with any sequence-classification model: "
                          "the bundled sentiment model, a Hub classifier, or one you fine-tuned "
                          "(`local:<name>`). Then see which words drove the decision.",
        "classify_text": "Text",
        "classify_text_pair": "Second text (optional, for pair tasks such as NLI)",
        "classify_run": "Classify",
        "classify_labels": "Prediction",
        "classify_scores_plot": "Scores",
        "classify_explain_label": "Explain the label",
        "classify_method": "Method",
        "classify_ig": "Integrated Gradients",
        "classify_gxi": "Gradient × input",
        "classify_explanation": "Explanation (red: pushes towards the label, purple: against it)",
        "classify_explain_run": "Explain",
        "classify_batch_heading": "Batch mode: classify a file",
        "classify_batch_help": "Upload a CSV, TSV or JSONL file with a header, pick the text column "
                               "and, to get accuracy, macro-F1 and a confusion matrix, a label column.",
        "classify_file": "File (.csv, .tsv, .jsonl)",
        "classify_text_column": "Text column",
        "classify_pair_column": "Second-text column (optional)",
        "classify_label_column": "Label column (optional)",
        "classify_batch_run": "Classify file",
        "classify_predictions": "Predictions",
        "classify_download": "Download predictions (CSV)",
        "classify_accuracy": "Accuracy",
        "classify_macro_f1": "Macro-F1",
        "classify_confusion": "Confusion matrix",
        "classify_summary": "Summary",
    },
    "zh-CN": {
        "tab_classify": "文本分类",
        "classify_intro": "用任意序列分类模型对文本（或文本对）分类：内置情感模型、Hub 分类器，"
                          "或你微调的模型（`local:<名称>`），并查看哪些词影响了判断。",
        "classify_text": "文本",
        "classify_text_pair": "第二段文本（可选，用于自然语言推理等句对任务）",
        "classify_run": "分类",
        "classify_labels": "预测结果",
        "classify_scores_plot": "各标签得分",
        "classify_explain_label": "要解释的标签",
        "classify_method": "方法",
        "classify_ig": "积分梯度",
        "classify_gxi": "梯度 × 输入",
        "classify_explanation": "解释（红色：支持该标签；紫色：反对该标签）",
        "classify_explain_run": "解释",
        "classify_batch_heading": "批量模式：对文件分类",
        "classify_batch_help": "上传带表头的 CSV、TSV 或 JSONL 文件，选择文本列；"
                               "如需准确率、宏平均 F1 和混淆矩阵，请再选择标签列。",
        "classify_file": "文件（.csv、.tsv、.jsonl）",
        "classify_text_column": "文本列",
        "classify_pair_column": "第二段文本列（可选）",
        "classify_label_column": "标签列（可选）",
        "classify_batch_run": "对文件分类",
        "classify_predictions": "预测",
        "classify_download": "下载预测结果（CSV）",
        "classify_accuracy": "准确率",
        "classify_macro_f1": "宏平均 F1",
        "classify_confusion": "混淆矩阵",
        "classify_summary": "摘要",
    },
}

MESSAGES = {
    "en": {
        "classify.axis_score": "score",
        "classify.truncated": "✂️ (input truncated to the model's length limit)",
        "classify.steps": "{steps} steps",
        "classify.col_row": "row", "classify.col_text": "text", "classify.col_prediction": "prediction",
        "classify.col_score": "score", "classify.col_gold": "gold", "classify.col_correct": "correct",
        "classify.axis_predicted": "predicted", "classify.axis_gold": "gold",
        "classify.confusion_hover": "gold %{{y}} → predicted %{{x}}: %{{z}}",
        "classify.rows": "**{classified} / {total}** rows",
        "classify.partial": " — **partial**",
        "classify.metrics_header": "| label | precision | recall | F1 | support |",
        "classify.progress": "Classifying",
        "classify.progress_unit": "rows",
    },
    "zh-CN": {
        "classify.axis_score": "得分",
        "classify.truncated": "✂️（输入超过模型长度上限，已截短）",
        "classify.steps": "{steps} 步",
        "classify.col_row": "行", "classify.col_text": "文本", "classify.col_prediction": "预测",
        "classify.col_score": "得分", "classify.col_gold": "标注", "classify.col_correct": "正确",
        "classify.axis_predicted": "预测", "classify.axis_gold": "标注",
        "classify.confusion_hover": "标注 %{{y}} → 预测 %{{x}}：%{{z}}",
        "classify.rows": "**{classified} / {total}** 行",
        "classify.partial": " —— **不完整**",
        "classify.metrics_header": "| 标签 | 精确率 | 召回率 | F1 | 样本数 |",
        "batch.upload_first": "请先上传 CSV、TSV 或 JSONL 文件。",
        "batch.choose_text_column": "请选择文本列。",
        "classify.progress": "正在分类",
        "classify.progress_unit": "行",
        "classify.not_classifier": "{name} 不是文本分类模型（其架构为 {architecture}）。请选择一个序列分类检查点，或在“微调”页微调一个。",
        "explain.unknown_method": "未知的解释方法 {method!r}；请从 {methods} 中选择。",
        "explain.unknown_label": "未知的标签 {label!r}；这个模型的标签是：{labels}。",
        "explain.slow_tokenizer": "解释需要快速分词器（字符偏移）；这个分词器没有。",
        "batch.no_text": "每一行的 {column!r} 列都是空的：没有可分类的内容。",
        "batch.skipped": "{total} 行中有 {count} 行的 {column!r} 为空，已跳过（第 {rows} 行）；结果覆盖 {kept} 行。",
        "batch.truncated": "{count} 行超过 {limit} 个词元；只对它们的开头部分分类。",
        "batch.unlabelled": "{count} 个已分类的行没有标签；指标只用其余 {labelled} 行计算。",
        "batch.no_labels": "没有任何一行有标签，因此没有指标。",
        "batch.unknown_labels": "模型不认识的标签（总是算作错误）：{labels}。",
        "batch.multi_label": "多标签模型：指标比较得分最高的标签与标注标签。",
    },
}
add_strings(STRINGS)
add_messages(MESSAGES)


@user_errors
def run_classify(model: str | None, text: str, text_pair: str | None) -> tuple[dict, Any, dict]:
    """Classify one text; returns the gr.Label value, the bar chart and the label-picker update."""
    scores = classify(text, model=model or None, text_pair=text_pair or None)
    labels = [r["label"] for r in scores]
    return plots.label_value(scores), plots.scores_figure(scores), gr.update(choices=labels, value=labels[0])


@user_errors
def run_explain(model: str | None, text: str, text_pair: str | None, label: str | None,
                method: str) -> tuple[list, str]:
    """Explain the chosen label; returns HighlightedText spans and the completeness line."""
    result = explain(text, label=label or None, model=model or None, text_pair=text_pair or None,
                     method=method or "integrated-gradients")
    return plots.highlighted_words(result), plots.completeness_note(result)


def guess_column(columns: list[str], guesses: tuple[str, ...], fallback: str | None) -> str | None:
    """The first of ``columns`` named like one of ``guesses`` (any case), else ``fallback``."""
    lowered = {c.lower(): c for c in columns}
    return next((lowered[g] for g in guesses if g in lowered), fallback)


@user_errors
def read_columns(path: str | None) -> tuple[dict, dict, dict]:
    """After an upload: fill the column pickers, guessing the text and label columns."""
    if not path:
        return gr.update(choices=[], value=None), gr.update(choices=[], value=None), gr.update(choices=[], value=None)
    columns, _ = read_table(path)
    text = guess_column(columns, TEXT_COLUMN_GUESSES, columns[0])
    label = guess_column([c for c in columns if c != text], LABEL_COLUMN_GUESSES, None)
    optional = [""] + columns
    return (gr.update(choices=columns, value=text), gr.update(choices=optional, value=label or ""),
            gr.update(choices=optional, value=""))


@user_errors
def run_batch(model: str | None, path: str | None, text_column: str | None, label_column: str | None,
              pair_column: str | None, progress: gr.Progress = gr.Progress()) -> tuple:
    """Classify an uploaded file; returns table, CSV download, accuracy, macro-F1, matrix, summary."""
    desc, unit = say("classify.progress"), say("classify.progress_unit")
    result = classify_file(path, text_column, label_column or None, model=model or None,
                           pair_column=pair_column or None,
                           progress=lambda done, total: progress((done, total), desc=desc, unit=unit))
    out = Path(tempfile.mkdtemp(prefix="plm-classify-")) / f"{Path(path).stem}-predictions.csv"
    write_predictions_csv(result, out)
    metrics = result["metrics"]
    return (plots.predictions_frame(result), str(out),
            None if metrics is None else round(metrics["accuracy"], 4),
            None if metrics is None else round(metrics["macro_f1"], 4),
            None if metrics is None else plots.confusion_figure(metrics), plots.batch_summary(result))


def build_tab() -> TabParts:
    """Lay out the Classify tab and wire its events (called inside ``gr.Tab``)."""
    gr.Markdown(I18N("classify_intro"))
    model = model_dropdown(TASK, elem_id="classify-model")
    with gr.Row():
        with gr.Column(scale=3):
            text = gr.Textbox(EXAMPLES[0][0], label=I18N("classify_text"), lines=3, elem_id="classify-text",
                              max_length=text_limit())
            text_pair = gr.Textbox(label=I18N("classify_text_pair"), lines=1, elem_id="classify-text-pair", max_length=text_limit())
            run = gr.Button(I18N("classify_run"), variant="primary", elem_id="classify-run")
        with gr.Column(scale=2):
            label = gr.Label(label=I18N("classify_labels"), num_top_classes=5, elem_id="classify-label")
            bars = gr.Plot(label=I18N("classify_scores_plot"), elem_id="classify-bars")
    with gr.Row():
        explain_label = gr.Dropdown(choices=[], label=I18N("classify_explain_label"), allow_custom_value=True,
                                    elem_id="classify-explain-label")
        method = gr.Radio([(I18N("classify_ig"), "integrated-gradients"), (I18N("classify_gxi"), "gradient-x-input")],
                          value="integrated-gradients", label=I18N("classify_method"), elem_id="classify-method")
        explain_run = gr.Button(I18N("classify_explain_run"), elem_id="classify-explain-run")
    explanation = gr.HighlightedText(label=I18N("classify_explanation"), show_legend=False,
                                     elem_id="classify-explanation")
    note = gr.Markdown(elem_id="classify-explanation-note")
    examples(EXAMPLES, inputs=[text, text_pair])

    explain_inputs = [model, text, text_pair, explain_label, method]
    event = gr.on([run.click, text.submit], run_classify, inputs=[model, text, text_pair],
                  outputs=[label, bars, explain_label], api_name="classify")
    explained = event.success(run_explain, inputs=explain_inputs, outputs=[explanation, note], api_visibility="private")
    clear_on_failure(event, [label, bars, explanation, note, explain_label])
    clear_on_failure(explained, [explanation, note])
    explaining = gr.on([explain_run.click, method.input, explain_label.input], run_explain, inputs=explain_inputs,
                       outputs=[explanation, note], api_name="classify_explain")
    clear_on_failure(explaining, [explanation, note])
    model.change(lambda: gr.update(choices=[], value=None), outputs=[explain_label], api_visibility="private")
    _build_batch(model)
    return TabParts(pickers=[(TASK, model)])


def _build_batch(model: gr.Dropdown) -> None:
    """The batch-mode section: upload, column pickers, results and metrics."""
    with gr.Accordion(I18N("classify_batch_heading"), open=True):
        gr.Markdown(I18N("classify_batch_help"))
        with gr.Row():
            upload = gr.File(label=I18N("classify_file"), file_types=[".csv", ".tsv", ".jsonl"],
                             type="filepath", elem_id="classify-file")
            with gr.Column():
                text_column = gr.Dropdown(label=I18N("classify_text_column"), allow_custom_value=True,
                                          elem_id="classify-text-column")
                label_column = gr.Dropdown(label=I18N("classify_label_column"), allow_custom_value=True,
                                           elem_id="classify-label-column")
                pair_column = gr.Dropdown(label=I18N("classify_pair_column"), allow_custom_value=True,
                                          elem_id="classify-pair-column")
        batch_run = gr.Button(I18N("classify_batch_run"), variant="primary", elem_id="classify-batch-run")
        summary = gr.Markdown(elem_id="classify-batch-summary")
        with gr.Row():
            accuracy = gr.Number(label=I18N("classify_accuracy"), interactive=False, elem_id="classify-accuracy")
            macro_f1 = gr.Number(label=I18N("classify_macro_f1"), interactive=False, elem_id="classify-macro-f1")
            download = gr.File(label=I18N("classify_download"), interactive=False, elem_id="classify-download")
        confusion = gr.Plot(label=I18N("classify_confusion"), elem_id="classify-confusion")
        predictions = gr.Dataframe(label=I18N("classify_predictions"), interactive=False, wrap=True,
                                   elem_id="classify-predictions")
        examples([[str(EXAMPLE_FILE)]], inputs=[upload])
    columns = upload.change(read_columns, inputs=[upload], outputs=[text_column, label_column, pair_column],
                            api_name="classify_columns")
    clear_on_failure(columns, [text_column, label_column, pair_column])
    outputs = [predictions, download, accuracy, macro_f1, confusion, summary]
    batch = batch_run.click(run_batch, inputs=[model, upload, text_column, label_column, pair_column], outputs=outputs,
                            api_name="classify_batch")
    clear_on_failure(batch, outputs)
