"""Pretrain tab: continued MLM + NSP pretraining on the user's own text, watching the model learn.

Start checks the corpus (pasted text, ``.txt`` uploads or the bundled corpus sample), the knobs and
the checkpoint name, then hands ``model_utils.pretrain_session.run_pretraining`` to the shared
background job runner (:mod:`model_utils.jobs`, one training job at a time) and streams its events:
live curves, the probe's top-5 timeline, the masking panel; at the end the before/after table and the
new ``local:<name>`` checkpoint, listed at once in the other tabs' model pickers. Events:
``pretrain``, ``pretrain_stop``, ``pretrain_corpus``.
"""

from __future__ import annotations

import re
import time
from typing import Any, Iterator

import gradio as gr

from demo import pretrain_plots as plots
from demo.common import TabParts, model_choices, model_dropdown, text_limit, ui_error, user_errors
from demo.i18n import I18N
from demo.messages import in_language, localized_table, markdown_text, say
from model_utils.config import get_settings
from model_utils.inputs import check_text
from model_utils.jobs import DONE, FAILED, WAITING, Job, get_runner

TASK = "pretrain-base"

STRINGS = {
    "en": {
        "tab_pretrain": "Pretrain",
        "pt_intro": "Continue pretraining a BERT model on **your own text** with BERT's two objectives, masked "
                    "language modelling (MLM) and next-sentence prediction (NSP), and watch it learn: loss curves, "
                    "a probe sentence whose `[MASK]` predictions move, and the base vs the adapted model on a "
                    "held-out slice of your text. The result is saved as `local:<name>` and can be used at once "
                    "in Fill-Mask, Next Sentence, Attention and as a Fine-tune base. Separate documents with a "
                    "blank line; the minimum is 2 documents and 12 sentences.",
        "pt_text": "Your text (documents separated by blank lines)",
        "pt_files": "…or upload .txt files",
        "pt_bundled": "Use the bundled corpus sample instead (600 short documents: WordNet glosses, reviews, editorials)",
        "pt_corpus": "Corpus",
        "pt_base": "Base model (needs an MLM head)",
        "pt_name": "Save as local:<name> (empty: a dated name)",
        "pt_probe": "Probe sentence with one [MASK]",
        "pt_probe_every": "Recompute the probe every N steps",
        "pt_hyper": "Training settings",
        "pt_steps": "Steps",
        "pt_batch": "Batch size",
        "pt_lr": "Learning rate",
        "pt_max_len": "Max tokens per sequence",
        "pt_mlm_prob": "MLM probability (share of tokens selected)",
        "pt_nsp": "Next-sentence prediction (NSP)",
        "pt_example": "Training example shown in the masking panel (number)",
        "pt_start": "Start",
        "pt_stop": "Stop",
        "pt_status": "Status",
        "pt_curves": "Training curves",
        "pt_timeline": "Probe: how the top-5 moved",
        "pt_timeline_table": "Probe top-5 per step",
        "pt_before_after": "Base vs adapted (held-out slice and probe)",
        "pt_masking": "Masking made visible: one training example as the model sees it",
        "pt_masking_tokens": "Tokens (original→input where masking changed them)",
        "pt_position": "Masked position",
        "pt_raw": "Run summary (JSON)",
    },
    "zh-CN": {
        "tab_pretrain": "预训练",
        "pt_intro": "用 BERT 的两个目标——掩码语言模型（MLM）和下一句预测（NSP）——在**你自己的文本**上继续预训练 "
                    "BERT 模型，并实时观察它的学习过程：损失曲线、探针句中 `[MASK]` 预测的变化，以及基础模型与"
                    "适配后模型在你的文本留出部分上的对比。结果保存为 `local:<名称>`，可立即用于掩码填充、"
                    "下一句预测、注意力和微调。用空行分隔文档；至少需要 2 篇文档、12 个句子。",
        "pt_text": "你的文本（用空行分隔文档）",
        "pt_files": "……或上传 .txt 文件",
        "pt_bundled": "改用内置语料样本（600 篇短文档：WordNet 释义、评论、社论）",
        "pt_corpus": "语料",
        "pt_base": "基础模型（需要 MLM 输出头）",
        "pt_name": "保存为 local:<名称>（留空：按日期命名）",
        "pt_probe": "含一个 [MASK] 的探针句",
        "pt_probe_every": "每 N 步重新计算探针",
        "pt_hyper": "训练设置",
        "pt_steps": "步数",
        "pt_batch": "批大小",
        "pt_lr": "学习率",
        "pt_max_len": "每个序列的最大词元数",
        "pt_mlm_prob": "MLM 概率（被选中词元的比例）",
        "pt_nsp": "下一句预测（NSP）",
        "pt_example": "掩码面板中显示的训练样本（编号）",
        "pt_start": "开始",
        "pt_stop": "停止",
        "pt_status": "状态",
        "pt_curves": "训练曲线",
        "pt_timeline": "探针：top-5 如何变化",
        "pt_timeline_table": "每一步的探针 top-5",
        "pt_before_after": "基础模型与适配后模型对比（留出部分与探针）",
        "pt_masking": "掩码可视化：模型看到的一个训练样本",
        "pt_masking_tokens": "词元（被掩码改变处显示 原词→输入）",
        "pt_position": "被选中的位置",
        "pt_raw": "运行摘要（JSON）",
    },
}

KNOB_LIMITS = {"steps": (1, 100_000), "batch_size": (1, 256), "learning_rate": (1e-7, 1.0),
               "max_length": (16, 512), "mlm_probability": (0.01, 0.5), "probe_every": (1, 100_000)}
BEFORE_AFTER_HEADERS = ["metric", "base", "adapted", "change"]
BEFORE_AFTER_HEADERS_ZH = ["指标", "基础模型", "适配后", "变化"]
TIMELINE_HEADERS = ["step", "1st", "2nd", "3rd", "4th", "5th"]
TIMELINE_HEADERS_ZH = ["步数", "第 1", "第 2", "第 3", "第 4", "第 5"]

MEDICINE = """The patient was admitted with chest pain and shortness of breath. An electrocardiogram showed signs of \
ischemia. She was given aspirin and nitroglycerin. Her pain improved within an hour. Troponin levels were \
measured every six hours.

Type 2 diabetes is treated first with diet and exercise. Metformin is the usual first drug. It lowers glucose \
production in the liver. Patients should check their blood sugar regularly. Insulin is added when tablets are \
not enough.

Antibiotics do not work against viruses. A bacterial infection such as pneumonia is treated with antibiotics. \
The full course should be taken even when the patient feels better. Stopping early can let resistant bacteria \
survive. Doctors choose the drug according to the likely bacteria.

Hypertension often has no symptoms. It is measured with a blood pressure cuff. Lifestyle changes come first. \
Diuretics and ACE inhibitors are common drugs. High blood pressure raises the risk of stroke."""

COOKING = """Bread needs flour, water, salt and yeast. The dough is kneaded until it is smooth. It then rises \
for an hour. The baker shapes the loaf. It bakes in a hot oven until the crust is brown.

A good soup starts with a stock. Onions, carrots and celery are softened in butter. The stock is added and \
simmered. Herbs are added near the end. The soup is seasoned with salt and pepper before serving.

Pasta is cooked in plenty of salted water. It should still be firm when bitten. The sauce is made while the \
pasta cooks. Tomatoes, garlic and olive oil make a simple sauce. Grated cheese is added at the table."""

EXAMPLES = [
    [MEDICINE, "The patient was given [MASK] for the pain.", "my-medical-bert"],
    [COOKING, "The dough is left to [MASK] for an hour.", "my-cooking-bert"],
]


def _check_knobs(knobs: dict[str, Any]) -> None:
    """ValueError for settings outside sensible ranges."""
    for key, (low, high) in KNOB_LIMITS.items():
        value = knobs[key]
        if value is None or not low <= float(value) <= high:
            raise ValueError(f"{key.replace('_', ' ')} must be between {low} and {high} (got {value}).")


def _file_paths(files: Any) -> list[str]:
    if not files:
        return []
    items = files if isinstance(files, list) else [files]
    return [getattr(f, "name", None) or str(f) for f in items]


@user_errors
def corpus_info(text: str, files: Any, use_bundled: bool) -> str:
    """API ``pretrain_corpus``: how many documents, sentences and words the corpus has, against the minimum."""
    from model_utils import pretrain_session as S

    docs, source = S.load_corpus(text or "", _file_paths(files), bool(use_bundled))
    counts = S.corpus_summary(docs)
    try:
        S.check_corpus(docs)
        verdict = "✅ enough to train on."
    except ValueError as err:
        verdict = f"⚠️ {err}"
    return (f"{markdown_text(source)}: {counts['documents']} documents, {counts['sentences']} sentences, "
            f"{counts['words']} words. {verdict}")


def _submit(text: str, files: Any, use_bundled: bool, base_model: str, name: str, probe: str,
            knobs: dict[str, Any], owner: str) -> Job:
    """Check everything that is quick to check, then queue the run on the shared job runner."""
    from model_utils import pretrain_session as S
    from model_utils.checkpoints import check_budget, ensure_new
    from model_utils.registry import model_name, resolve

    _check_knobs(knobs)
    check_text(probe, "probe sentence", required=False)
    masks = len(re.findall(r"\[MASK\]|<mask>", probe or "", flags=re.IGNORECASE))
    if (probe or "").strip() and masks != 1:
        raise ValueError(f"The probe sentence needs exactly one [MASK] (it has {masks}); or leave it empty.")
    docs, source = S.load_corpus(text or "", _file_paths(files), bool(use_bundled))
    S.check_corpus(docs)
    S.split_heldout(docs)
    base_model = model_name(base_model) or model_choices(TASK)[0]
    if TASK not in resolve(base_model).tasks:  # refused now, not after the job waited for its turn
        raise ValueError(f"{base_model} has no masked-language-model head to continue pretraining; choose a "
                         "checkpoint with one (a ...ForMaskedLM or ...ForPreTraining model).")
    name = (name or "").strip() or time.strftime("pretrained-%Y%m%d-%H%M%S")
    ensure_new(name)
    check_budget(S.expected_bytes(base_model))  # a checkpoint that could never fit: refused before training
    steps = int(knobs["steps"])
    args = S.app_arguments(max_steps=steps, batch_size=int(knobs["batch_size"]),
                           learning_rate=float(knobs["learning_rate"]), max_seq_length=int(knobs["max_length"]),
                           mlm_probability=float(knobs["mlm_probability"]), nsp=bool(knobs["nsp"]),
                           eval_every=max(1, steps // 8))
    options = S.SessionOptions(base_model=base_model, checkpoint_name=name, probe_text=probe or "",
                               probe_every=int(knobs["probe_every"]), example_index=max(0, int(knobs["example"] or 1) - 1),
                               corpus_name=source)

    def work(job: Job) -> dict:
        return S.run_pretraining(args, options, docs, on_event=job.emit, should_stop=job.should_stop, owner=job.owner)

    return get_runner().submit("pretrain", f"pretraining {base_model} as local:{name}", work, owner=owner)


def _view(job: Job) -> dict | None:
    """The masking view: the run's final one, else the one sent before training."""
    if job.result:
        return job.result["masking"]
    return next((e["masking"] for e in job.events if e.get("kind") == "before"), None)


def _timeline(job: Job) -> list[dict]:
    if job.result:
        return job.result["timeline"]
    before = next((e for e in job.events if e.get("kind") == "before"), None)
    start = [{"step": 0, "predictions": before["probe"]}] if before and before["probe"] else []
    return start + [{"step": e["step"], "predictions": e["predictions"]} for e in job.events if e.get("kind") == "probe"]


def _outputs(job: Job, status: str, summary: dict | None) -> tuple:
    """Every output of the tab from the job's events (and its summary once finished)."""
    from model_utils.pretrain_session import before_after_rows

    view, timeline = _view(job), _timeline(job)
    choices = plots.position_choices(view)
    position = gr.update(choices=choices, value=choices[0][1] if choices else None)
    rows = plots.before_after_table(before_after_rows(summary)) if summary else []
    return (status, plots.curves_figure(job.events), plots.timeline_figure(timeline),
            localized_table(plots.timeline_rows(timeline), TIMELINE_HEADERS, TIMELINE_HEADERS_ZH),
            localized_table(rows, BEFORE_AFTER_HEADERS, BEFORE_AFTER_HEADERS_ZH), plots.masking_spans(view) if view else None, plots.masking_markdown(view) if view else "",
            position, plots.position_markdown(view, choices[0][1] if choices else None), view, summary)


def _status(job: Job, total: int) -> str:
    if job.state == WAITING:
        running = get_runner().running()
        other = f" ({running.description})" if running else ""
        return in_language(f"⏳ Waiting: another training job is running{other}. This one starts when it ends.",
                           f"⏳ 等待中：另一个训练任务正在运行{other}，它结束后本任务开始。")
    return plots.progress_line(job.events, total)


def _final(job: Job) -> tuple:
    if job.state == FAILED:
        raise ui_error(f"Pretraining failed: {job.error}")
    summary = job.result
    if summary is None:
        return _outputs(job, in_language("⏹ Stopped before training started; nothing was saved.",
                                         "⏹ 训练开始前已停止；没有保存任何内容。"), None)
    if job.state == DONE and summary["checkpoint"]:
        status = in_language(
            f"✅ Done: {summary['steps']} steps in {summary['seconds']:.0f} s. Saved as "
            f"`{summary['checkpoint']}`, now listed in Fill-Mask, Next Sentence, Attention and Fine-tune.",
            f"✅ 完成：{summary['steps']} 步，用时 {summary['seconds']:.0f} 秒。已保存为 "
            f"`{summary['checkpoint']}`，现已出现在掩码填充、下一句预测、注意力和微调页中。")
        if summary.get("removed"):
            status += " " + say("checkpoints.removed", names=", ".join(f"local:{n}" for n in summary["removed"]))
    else:
        reason = f" ({job.stop_reason})" if job.stop_reason else ""
        status = in_language(
            f"⏹ Stopped at step {summary['steps']}{reason}; nothing was saved (no checkpoint is half-written).",
            f"⏹ 在第 {summary['steps']} 步停止{reason}；没有保存任何内容（不会留下写了一半的检查点）。")
    plain = {k: v for k, v in summary.items() if k != "log"}
    return _outputs(job, status, plain)


def start(text: str, files: Any, use_bundled: bool, base_model: str, name: str, probe: str, probe_every: float,
          steps: float, batch_size: float, learning_rate: float, max_length: float, mlm_probability: float,
          nsp: bool, example: float, request: gr.Request, progress: gr.Progress = gr.Progress()) -> Iterator[tuple]:
    """API ``pretrain``: run in the background and stream curves, probe timeline, masking panel, before/after."""
    knobs = dict(steps=steps, batch_size=batch_size, learning_rate=learning_rate, max_length=max_length,
                 mlm_probability=mlm_probability, nsp=nsp, probe_every=probe_every, example=example)
    owner = getattr(request, "session_hash", None) or ""
    job = user_errors(_submit)(text, files, use_bundled, base_model, name, probe, knobs, owner)
    total = int(steps)
    for current in job.updates(interval=1.0):
        if current.done:
            break
        done = sum(e.get("kind") == "train" for e in current.events)
        progress((done, total), desc="pretraining", unit="steps")
        yield _outputs(current, _status(current, total), None)
    yield _final(job)


def stop(request: gr.Request) -> str:
    """API ``pretrain_stop``: stop this session's pretraining job."""
    owner = getattr(request, "session_hash", None) or ""
    jobs = [j for j in get_runner().unfinished(owner) if j.kind == "pretrain"]
    for job in jobs:
        job.stop()
    return "⏹ Stopping… (the run ends after the current step; nothing is saved)" if jobs else \
        "No pretraining job of yours is running."


def build_tab() -> TabParts:
    """Lay out the Pretrain tab and wire its events (called inside ``gr.Tab``)."""
    gr.Markdown(I18N("pt_intro"))
    with gr.Row():
        with gr.Column(scale=3):
            text = gr.Textbox(label=I18N("pt_text"), lines=8, max_lines=20, elem_id="pt-text",
                              max_length=get_settings().max_upload_bytes)
            with gr.Row():
                files = gr.File(label=I18N("pt_files"), file_count="multiple", file_types=[".txt"],
                                type="filepath", elem_id="pt-files")
                use_bundled = gr.Checkbox(False, label=I18N("pt_bundled"), elem_id="pt-bundled")
            corpus = gr.Markdown(elem_id="pt-corpus")
        with gr.Column(scale=2):
            base = model_dropdown(TASK, elem_id="pt-base")
            base.label = I18N("pt_base")
            name = gr.Textbox(label=I18N("pt_name"), elem_id="pt-name", max_length=128)
            probe = gr.Textbox("The patient was given [MASK] for the pain.", label=I18N("pt_probe"), elem_id="pt-probe", max_length=text_limit())
            knobs = _knobs()
    with gr.Row():
        run = gr.Button(I18N("pt_start"), variant="primary", elem_id="pt-start")
        halt = gr.Button(I18N("pt_stop"), variant="stop", elem_id="pt-stop")
    status = gr.Markdown(elem_id="pt-status")
    curves = gr.Plot(label=I18N("pt_curves"), elem_id="pt-curves")
    with gr.Row():
        timeline = gr.Plot(label=I18N("pt_timeline"), elem_id="pt-timeline")
        timeline_table = gr.Dataframe(headers=TIMELINE_HEADERS, label=I18N("pt_timeline_table"), interactive=False,
                                      elem_id="pt-timeline-table")
    before_after = gr.Dataframe(headers=BEFORE_AFTER_HEADERS, label=I18N("pt_before_after"), interactive=False,
                                elem_id="pt-before-after")
    masking = _masking_panel()
    with gr.Accordion(I18N("pt_raw"), open=False):
        raw = gr.JSON(elem_id="pt-raw")
    gr.Examples(EXAMPLES, inputs=[text, probe, name], label=I18N("examples")).dataset.headers = []
    outputs = [status, curves, timeline, timeline_table, before_after, *masking, raw]
    training = _wire([text, files, use_bundled], corpus, [base, name, probe, *knobs], run, halt, outputs)
    return TabParts(pickers=[(TASK, base)], changes_checkpoints=[training])


def _knobs() -> list[gr.components.Component]:
    """probe_every, steps, batch size, lr, max length, MLM probability, NSP, example: in :func:`start`'s order."""
    probe_every = gr.Number(10, label=I18N("pt_probe_every"), precision=0, minimum=1, elem_id="pt-probe-every")
    with gr.Accordion(I18N("pt_hyper"), open=True):
        with gr.Row():
            steps = gr.Number(60, label=I18N("pt_steps"), precision=0, minimum=1, elem_id="pt-steps")
            batch = gr.Number(16, label=I18N("pt_batch"), precision=0, minimum=1, elem_id="pt-batch")
            lr = gr.Number(5e-4, label=I18N("pt_lr"), elem_id="pt-lr")
        with gr.Row():
            max_len = gr.Number(128, label=I18N("pt_max_len"), precision=0, minimum=16, elem_id="pt-max-len")
            mlm = gr.Slider(0.05, 0.5, value=0.15, step=0.01, label=I18N("pt_mlm_prob"), elem_id="pt-mlm")
        with gr.Row():
            nsp = gr.Checkbox(True, label=I18N("pt_nsp"), elem_id="pt-nsp")
            example = gr.Number(1, label=I18N("pt_example"), precision=0, minimum=1, elem_id="pt-example")
    return [probe_every, steps, batch, lr, max_len, mlm, nsp, example]


def _masking_panel() -> list[gr.components.Component]:
    """Tokens, NSP pair, position picker, per-position loss, and the view state."""
    with gr.Accordion(I18N("pt_masking"), open=True):
        spans = gr.HighlightedText(label=I18N("pt_masking_tokens"), color_map=plots.STATUS_COLORS,
                                   show_legend=True, combine_adjacent=False, elem_id="pt-masking")
        pair = gr.Markdown(elem_id="pt-masking-pair")
        position = gr.Dropdown(choices=[], label=I18N("pt_position"), elem_id="pt-position")
        detail = gr.Markdown(elem_id="pt-position-detail")
    view = gr.State(None)
    position.change(plots.position_markdown, inputs=[view, position], outputs=[detail], queue=False,
                    api_visibility="private")
    return [spans, pair, position, detail, view]


def _wire(corpus_inputs, corpus, settings, run, halt, outputs) -> Any:
    """Wire the tab's events; returns the training event (after it, the saved checkpoints changed)."""
    gr.on([c.change for c in corpus_inputs], corpus_info, inputs=corpus_inputs, outputs=[corpus],
          api_name="pretrain_corpus", trigger_mode="always_last", concurrency_limit=4)
    event = run.click(start, inputs=[*corpus_inputs, *settings], outputs=outputs, api_name="pretrain",
                      concurrency_limit=None)
    halt.click(stop, outputs=[outputs[0]], api_name="pretrain_stop", queue=False)
    return event
