"""Pretrain tab: continued MLM + NSP pretraining on the user's own text, watching the model learn.

Start has ``model_utils.pretrain_session.plan`` check the run once (the corpus: pasted text, ``.txt``
uploads or the bundled corpus sample; the knobs, built from the dataclasses that define them; the
base model and the checkpoint's name), queues ``run_plan`` on the shared job runner
(:mod:`model_utils.jobs`: one training job at a time, in line) and follows it with the shared job
panel (:mod:`demo.job_panel`): live curves, the probe's top-5 timeline, the masking panel; at the end
the before/after table and the new ``local:<name>`` checkpoint, listed at once in every model picker.
Events: ``pretrain``, ``pretrain_stop``, ``pretrain_corpus``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import gradio as gr

from demo import job_panel
from demo import pretrain_plots as plots
from demo.common import (TabParts, clear_on_failure, examples, in_language_on_load, model_dropdown, table_output, text_limit,
                         user_errors)
from demo.forms import number_inputs, values_of
from demo.i18n import I18N, add_messages, add_strings
from demo.messages import markdown_text, say, table, translate
from model_utils import pretrain_session as S
from model_utils.config import get_settings
from model_utils.errors import UserError
from model_utils.jobs import Job, get_runner
from model_utils.knobs import form

TASK = "pretrain-base"
JOB_KIND = "pretrain"

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
        "pt_probe_info": "Write it in the model's language: the bundled models read English only.",
        "pt_knob_probe_every": "Recompute the probe every N steps",
        "pt_hyper": "Training settings",
        "pt_knob_max_steps": "Steps",
        "pt_knob_batch_size": "Batch size",
        "pt_knob_learning_rate": "Learning rate",
        "pt_knob_max_seq_length": "Max tokens per sequence",
        "pt_knob_mlm_probability": "MLM probability (share of tokens selected)",
        "pt_knob_nsp": "Next-sentence prediction (NSP)",
        "pt_knob_example_index": "Training example shown in the masking panel (0: the first)",
        "pt_col_metric": "metric", "pt_col_base": "base", "pt_col_adapted": "adapted", "pt_col_change": "change",
        "pt_col_step": "step", "pt_col_1": "1st", "pt_col_2": "2nd", "pt_col_3": "3rd", "pt_col_4": "4th",
        "pt_col_5": "5th",
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
        "pt_preset": "Run size (the estimate is for this machine)",
        "pt_plan": "What will run",
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
        "pt_probe_info": "请用模型的语言书写：内置模型只读英文，所以默认探针句是英文。",
        "pt_knob_probe_every": "每 N 步重新计算探针",
        "pt_hyper": "训练设置",
        "pt_knob_max_steps": "步数",
        "pt_knob_batch_size": "批大小",
        "pt_knob_learning_rate": "学习率",
        "pt_knob_max_seq_length": "每个序列的最大词元数",
        "pt_knob_mlm_probability": "MLM 概率（被选中词元的比例）",
        "pt_knob_nsp": "下一句预测（NSP）",
        "pt_knob_example_index": "掩码面板中显示的训练样本（0：第一个）",
        "pt_col_metric": "指标", "pt_col_base": "基础模型", "pt_col_adapted": "适配后", "pt_col_change": "变化",
        "pt_col_step": "步数", "pt_col_1": "第 1", "pt_col_2": "第 2", "pt_col_3": "第 3", "pt_col_4": "第 4",
        "pt_col_5": "第 5",
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
        "pt_preset": "运行规模（估计时间按本机计算）",
        "pt_plan": "将要运行的内容",
    },
}

BEFORE_AFTER_HEADERS = ["pt_col_metric", "pt_col_base", "pt_col_adapted", "pt_col_change"]
TIMELINE_HEADERS = ["pt_col_step", "pt_col_1", "pt_col_2", "pt_col_3", "pt_col_4", "pt_col_5"]
MESSAGES = {
    "en": {
        "pretrain.enough": "✅ enough to train on.",
        "pretrain.corpus_counts": "{source}: {documents} documents, {sentences} sentences, {words} words. {verdict}",
        "pretrain.done": "✅ Done: {steps} steps in {seconds:.0f} s. Saved as `{checkpoint}`, now listed in Fill-Mask, "
                         "Next Sentence, Attention and Fine-tune.",
        "pretrain.stopped": "⏹ Stopped{reason}; nothing was saved (no checkpoint is half-written).",
        "pretrain.preset.quick": "Quick: {steps} steps, about {time}",
        "pretrain.preset.full": "Full: {steps} steps, about {time}",
        "pretrain.plan": "📋 **{steps} steps** of {batch} sequences (up to {max_length} tokens) drawn from "
                         "{sequences} training sequences of {documents} documents; {heldout} held-out sequences "
                         "evaluated {evaluations} times. ⏱ Estimated time: **{time}** on this machine ({device}).",
        "pretrain.name_taken": "💡 `local:{requested}` already exists, so this run will be saved as `local:{name}` "
                               "(or type another name).",
    },
    "zh-CN": {
        "pretrain.enough": "✅ 足够用来训练。",
        "pretrain.corpus_counts": "{source}：{documents} 篇文档、{sentences} 个句子、{words} 个词。{verdict}",
        "pretrain.done": "✅ 完成：{steps} 步，用时 {seconds:.0f} 秒。已保存为 `{checkpoint}`，现已出现在掩码填充、下一句预测、"
                         "注意力和微调页中。",
        "pretrain.stopped": "⏹ 已停止{reason}；没有保存任何内容（不会留下写了一半的检查点）。",
        "pretrain.preset.quick": "快速：{steps} 步，大约 {time}",
        "pretrain.preset.full": "完整：{steps} 步，大约 {time}",
        "pretrain.plan": "📋 **{steps} 步**，每步 {batch} 个序列（每个最多 {max_length} 个词元），取自 {documents} 篇文档的 "
                         "{sequences} 个训练序列；{heldout} 个留出序列评估 {evaluations} 次。⏱ 估计用时：本机（{device}）上约 "
                         "**{time}**。",
        "pretrain.name_taken": "💡 `local:{requested}` 已经存在，本次运行将保存为 `local:{name}`（也可以输入别的名称）。",
        "pretrain.not_txt": "{name}：请上传纯文本 .txt 文件（文档之间用空行分隔）。",
        "pretrain.file_too_big": "{name} 有 {size_mb:.1f} MB；上限为 {limit_mb:.0f} MB。",
        "pretrain.binary": "{name} 看起来是二进制文件，不是文本。",
        "pretrain.not_utf8": "{name} 不是 UTF-8 文本（第 {position} 个字节：{reason}）。",
        "pretrain.corpus_too_big": "语料有 {size_mb:.1f} MB；上限为 {limit_mb:.0f} MB。",
        "pretrain.corpus_empty": "语料为空。请粘贴文本、上传 .txt 文件或使用内置语料：至少 {min_docs} 篇文档（用空行分隔），"
                                 "共 {min_sentences} 个句子，其中至少 {min_pairs} 篇文档有两个或更多句子。",
        "pretrain.corpus_small": "语料太少（{docs} 篇文档、{sentences} 个句子，{pairs} 篇有两个或更多句子）；要求至少 {min_docs} "
                                 "篇文档（用空行分隔），共 {min_sentences} 个句子，其中至少 {min_pairs} 篇文档有两个或更多句子。",
        "pretrain.no_heldout": "语料太少，无法留出一部分用于评估；要求至少 {min_docs} 篇文档（用空行分隔），共 {min_sentences} "
                               "个句子，其中至少 {min_pairs} 篇文档有两个或更多句子，并且有两篇文档各有四个或更多句子。",
        "pretrain.no_examples": "语料无法生成训练样本；要求至少 {min_docs} 篇文档（用空行分隔），共 {min_sentences} 个句子，"
                                "其中至少 {min_pairs} 篇文档有两个或更多句子。",
        "pretrain.not_bert": "{name} 是 {family} 模型；MLM + NSP 继续预训练只支持 BERT 检查点（BertForPreTraining 或 "
                             "BertForMaskedLM）。",
        "pretrain.no_mlm_head": "{name} 没有训练好的掩码语言模型头；请选择有该输出头的检查点（...ForMaskedLM 或 "
                                "...ForPreTraining 模型）。",
        "pretrain.base_unloadable": "无法加载 {name}（需要 .safetensors 权重和分词器）：{detail}",
        "pretrain.delta_base_offline": "无法重建 {name}：它的基础模型 {base} 不在本地缓存中，而 Hub 无法访问。",
        "pretrain.new_nsp_head": "{name} 没有下一句预测头：新的输出头从随机权重开始。",
        "pretrain.probe_missing": "请写一个含一个 {mask} 的探针句，例如 'The patient was given [MASK] for the pain.'",
        "pretrain.probe_masks": "探针句必须恰好含一个 {mask}（现在有 {count} 个）。",
        "pretrain.example_too_short": "这个样本太短，无法掩码任何词元；请选择其他样本。",
    },
}
add_strings(STRINGS)
add_messages(MESSAGES)

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

PROBE = "The patient was given [MASK] for the pain."
EXAMPLES = [
    [MEDICINE, "The patient was given [MASK] for the pain.", "my-medical-bert"],
    [COOKING, "The dough is left to [MASK] for an hour.", "my-cooking-bert"],
]


def _file_paths(files: Any) -> list[str]:
    if not files:
        return []
    items = files if isinstance(files, list) else [files]
    return [getattr(f, "name", None) or str(f) for f in items]


@user_errors
def corpus_info(text: str, files: Any, use_bundled: bool) -> str:
    """API ``pretrain_corpus``: how many documents, sentences and words the corpus has, against the minimum."""
    paths = _file_paths(files)
    docs, _ = S.load_corpus(text or "", paths, bool(use_bundled))
    if use_bundled:
        source = say("pretrain.source.bundled", documents=len(docs))
    else:
        names = ([say("pretrain.source.pasted")] if (text or "").strip() else []) + [Path(p).name for p in paths]
        source = " + ".join(names) or say("pretrain.source.nothing")
    counts = S.corpus_summary(docs)
    try:
        S.check_corpus(docs)
        verdict = say("pretrain.enough")
    except UserError as err:
        verdict = f"⚠️ {translate(err)}"
    return say("pretrain.corpus_counts", source=markdown_text(source), documents=counts["documents"],
               sentences=counts["sentences"], words=counts["words"], verdict=verdict)


PRESETS = ("quick", "full")
PRESET_FIELDS = list(S.PRESETS["cpu"]["quick"])


def preset_form(which: str, /, use_bundled: bool = True, text: str = "", **values: Any) -> dict[str, Any]:
    """The form's values with preset ``which`` ("quick", "full") for this machine, the knobs' defaults elsewhere."""
    defaults = S.app_arguments()
    knobs = {spec.name: spec.default for spec in form(defaults, S.APP_KNOBS) + form(S.SessionOptions, S.SESSION_KNOBS)}
    return {"text": text, "files": [], "use_bundled": use_bundled, "base": "", "name": "", "probe": PROBE, **knobs,
            **S.preset(which), **values}


def plan_of(values: dict[str, Any], reserve: bool = False) -> S.Plan:
    """The run the form describes, checked from end to end; ``reserve`` promises its checkpoint name to it."""
    return S.plan(values["text"], _file_paths(values["files"]), bool(values["use_bundled"]), values["base"],
                  values["name"], values["probe"], {k: values[k] for k in S.APP_KNOBS + S.SESSION_KNOBS},
                  reserve=reserve)


def plan_markdown(summary: dict[str, Any]) -> str:
    """What the run will do (steps, sequences, estimated time), and the name it is saved as when the one asked
    for is taken, in the request's language."""
    time_text, device = job_panel.estimate_words(summary["estimate"])
    line = say("pretrain.plan", steps=summary["steps"], batch=summary["batch_size"],
               max_length=summary["max_seq_length"], sequences=summary["train_sequences"],
               documents=summary["documents"], heldout=summary["heldout_sequences"],
               evaluations=summary["evaluations"], time=time_text, device=device)
    if summary["requested_name"]:
        line += "  \n" + say("pretrain.name_taken", requested=summary["requested_name"],
                             name=summary["checkpoint"])  # checked names: no Markdown in them
    return line


def describe(data: dict, inputs: dict[str, Any]) -> tuple[str, Any]:
    """API ``pretrain_plan``: the plan's text and the presets with their estimated times; a form that cannot run
    says why in the plan's place."""
    values = values_of(data, inputs)
    try:
        checked = plan_of(values)
        choices = []
        for name in PRESETS:
            summary = plan_of({**values, **S.preset(name), "name": ""}).summary()
            choices.append((say(f"pretrain.preset.{name}", steps=summary["steps"],
                                time=job_panel.estimate_words(summary["estimate"])[0]), name))
    except UserError as err:
        return f"⚠️ {translate(err)}", gr.update()
    return plan_markdown(checked.summary()), gr.update(choices=choices)


def apply_preset(name: str) -> tuple:
    """The knob values of preset ``name`` for this machine, in :data:`PRESET_FIELDS` order."""
    values = S.preset(name or "quick")
    return tuple(values[field] for field in PRESET_FIELDS)


def _submit(values: dict[str, Any], owner: str) -> Job:
    """Check the run once (model layer), then queue it on the shared job runner."""
    checked = plan_of(values, reserve=True)

    def work(job: Job) -> dict:
        return S.run_plan(checked, job.emit, job.should_stop, owner=job.owner)

    description = f"{checked.options.base_model} → local:{checked.options.checkpoint_name}"
    try:
        return get_runner().submit(JOB_KIND, description, work, owner=owner, estimate_s=checked.estimate().seconds,
                                   on_end=lambda job: checked.release())
    except UserError:
        checked.release()
        raise


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
    view, timeline = _view(job), _timeline(job)
    choices = plots.position_choices(view)
    position = gr.update(choices=choices, value=choices[0][1] if choices else None)
    rows = plots.before_after_table(S.before_after_rows(summary)) if summary else []
    return (status, plots.curves_figure(job.events), plots.timeline_figure(timeline),
            table(plots.timeline_rows(timeline), TIMELINE_HEADERS), table(rows, BEFORE_AFTER_HEADERS),
            plots.masking_spans(view) if view else None, plots.masking_markdown(view) if view else "",
            position, plots.position_markdown(view, choices[0][1] if choices else None), view, summary)


def _live(job: Job, status: str) -> tuple:
    """Outputs while the job runs: the status line of the job panel, or the run's own progress line."""
    return _outputs(job, plots.progress_line(job.events, status), None)


def _final(job: Job) -> tuple:
    """Outputs of a finished job: the summary, and whether it was saved."""
    summary = job.result
    if summary is None:
        return _outputs(job, say("job.stopped_before"), None)
    if summary["checkpoint"]:
        status = say("pretrain.done", steps=summary["steps"], seconds=summary["seconds"], checkpoint=summary["checkpoint"])
        if summary.get("removed"):
            status += " " + say("checkpoints.removed", names=", ".join(f"local:{n}" for n in summary["removed"]))
    else:
        status = job_panel.stopped_line(job, "pretrain.stopped", say("pretrain.stopped", reason=""))
    plain = {k: v for k, v in summary.items() if k != "log"}
    return _outputs(job, status, plain)


def _start_with(inputs: dict[str, Any]):
    """The ``pretrain`` event's function for the form ``inputs`` (name -> component)."""
    def start(data: dict, request: gr.Request, progress: gr.Progress = gr.Progress()) -> Iterator[tuple]:
        """API ``pretrain``: run in the background and stream curves, probe timeline, masking panel, before/after."""
        job = job_panel.submitted(_submit, values_of(data, inputs), job_panel.owner_of(request))
        yield from job_panel.follow(job, progress, _live, _final)

    return start


def stop(request: gr.Request) -> str:
    """API ``pretrain_stop``: stop this session's pretraining job."""
    return job_panel.stop(JOB_KIND, request)


def build_tab() -> TabParts:
    """Lay out the Pretrain tab and wire its events (called inside ``gr.Tab``)."""
    gr.Markdown(I18N("pt_intro"))
    with gr.Row():
        with gr.Column(scale=3):
            text_box = gr.Textbox(label=I18N("pt_text"), lines=8, max_lines=20, elem_id="pt-text",
                                  max_length=get_settings().max_upload_bytes)
            with gr.Row():
                files = gr.File(label=I18N("pt_files"), file_count="multiple", file_types=[".txt"],
                                type="filepath", elem_id="pt-files")
                use_bundled = gr.Checkbox(True, label=I18N("pt_bundled"), elem_id="pt-bundled")
            corpus = gr.Markdown(elem_id="pt-corpus")
        with gr.Column(scale=2):
            base = model_dropdown(TASK, elem_id="pt-base")
            base.label = I18N("pt_base")
            name = gr.Textbox(label=I18N("pt_name"), elem_id="pt-name", max_length=128)
            probe = gr.Textbox(PROBE, label=I18N("pt_probe"), elem_id="pt-probe", info=I18N("pt_probe_info"),
                               max_length=text_limit())
            defaults = S.app_arguments()
            preset = gr.Radio(choices=[(p, p) for p in PRESETS], value="quick", label=I18N("pt_preset"),
                              elem_id="pt-preset")
            knobs = number_inputs(form(S.SessionOptions, ["probe_every"]), "pt", label_prefix="pt_knob_")
            with gr.Accordion(I18N("pt_hyper"), open=True):
                knobs.update(number_inputs(form(defaults, S.APP_KNOBS) + form(S.SessionOptions, ["example_index"]),
                                           "pt", per_row=3, label_prefix="pt_knob_"))
            for field, value in S.preset("quick").items():
                knobs[field].value = value  # the form opens on the quick preset
    plan_box = gr.Markdown(elem_id="pt-plan", label=I18N("pt_plan"))
    with gr.Row():
        run = gr.Button(I18N("pt_start"), variant="primary", elem_id="pt-start")
        halt = gr.Button(I18N("pt_stop"), variant="stop", elem_id="pt-stop")
    status = gr.Markdown(elem_id="pt-status")
    curves = gr.Plot(label=I18N("pt_curves"), elem_id="pt-curves")
    with gr.Row():
        timeline = gr.Plot(label=I18N("pt_timeline"), elem_id="pt-timeline")
        timeline_table = table_output(TIMELINE_HEADERS, label=I18N("pt_timeline_table"), elem_id="pt-timeline-table")
    before_after = table_output(BEFORE_AFTER_HEADERS, label=I18N("pt_before_after"), elem_id="pt-before-after")
    masking = _masking_panel()
    with gr.Accordion(I18N("pt_raw"), open=False):
        raw = gr.JSON(elem_id="pt-raw")
    examples(EXAMPLES, inputs=[text_box, probe, name])
    outputs = [status, curves, timeline, timeline_table, before_after, *masking, raw]
    corpus_inputs = [text_box, files, use_bundled]
    gr.on([c.change for c in corpus_inputs], corpus_info, inputs=corpus_inputs, outputs=[corpus],
          api_name="pretrain_corpus", trigger_mode="always_last", concurrency_limit=4)
    inputs = {"text": text_box, "files": files, "use_bundled": use_bundled, "base": base, "name": name, "probe": probe,
              **knobs}
    training = run.click(_start_with(inputs), inputs=set(inputs.values()), outputs=outputs, api_name="pretrain",
                         concurrency_limit=None)
    clear_on_failure(training, [o for o in outputs if not isinstance(o, gr.State)])
    halt.click(stop, outputs=[status], api_name="pretrain_stop", queue=False)
    text_box.change(lambda typed: gr.update(value=False) if (typed or "").strip() else gr.update(), inputs=[text_box],
                   outputs=[use_bundled], queue=False, api_visibility="private")  # typed text is what trains
    planned = dict(fn=lambda data: describe(data, inputs), inputs=set(inputs.values()), outputs=[plan_box, preset],
                   concurrency_limit=4, trigger_mode="always_last")
    preset.input(apply_preset, inputs=[preset], outputs=[knobs[f] for f in PRESET_FIELDS], queue=False,
                 api_visibility="private")  # the knobs' change events re-plan
    gr.on([text_box.change, files.change, use_bundled.change, base.change, name.change, probe.change,
           *[k.change for k in knobs.values()]], **planned, api_name="pretrain_plan")
    return TabParts(pickers=[(TASK, base)], changes_checkpoints=[training], on_select=planned)


def _masking_panel() -> list[gr.components.Component]:
    """Tokens, NSP pair, position picker, per-position loss, and the view state."""
    with gr.Accordion(I18N("pt_masking"), open=True):
        spans = in_language_on_load(
            gr.HighlightedText(label=I18N("pt_masking_tokens"), color_map=plots.status_colors("en"), show_legend=True,
                               combine_adjacent=False, elem_id="pt-masking"),
            lambda language: gr.HighlightedText(color_map=plots.status_colors(language)))
        pair = gr.Markdown(elem_id="pt-masking-pair")
        position = gr.Dropdown(choices=[], label=I18N("pt_position"), elem_id="pt-position")
        detail = gr.Markdown(elem_id="pt-position-detail")
    view = gr.State(None)
    position.change(plots.position_markdown, inputs=[view, position], outputs=[detail], queue=False,
                    api_visibility="private")
    return [spans, pair, position, detail, view]
