"""Fine-tune tab: train a text classifier on uploaded (or sample) data, live, and use it at once.

The Start handler reads the table (upload limits), has ``model_utils.finetune.plan`` check the whole
run once (knob ranges, base model, checkpoint name, disk budget, classes and splits), then queues
``model_utils.finetune.run_plan`` on the job runner (:mod:`model_utils.jobs`: one training job at a
time, in line, never in another tab's request thread) and follows it with the shared job panel
(:mod:`demo.job_panel`: status, progress, Stop) and live Plotly curves. The knobs are built from the
dataclasses that define them (:mod:`demo.forms`). At the end the new checkpoint is listed as
``local:<name>`` in every model picker without a restart. Events: ``finetune``, ``finetune_stop``,
``finetune_preview``.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import gradio as gr

from demo import classify_plots, job_panel
from demo import finetune_plots as plots
from demo.classify_tab import LABEL_COLUMN_GUESSES, TEXT_COLUMN_GUESSES, guess_column
from demo.common import TabParts, clear_on_failure, examples, model_dropdown, user_errors
from demo.forms import number_inputs, values_of
from demo.i18n import I18N, add_messages, add_strings
from demo.messages import say, translate
from model_utils import finetune
from model_utils.bundled import SAMPLE_SENTIMENT_CSV
from model_utils.checkpoints import dated_name
from model_utils.errors import UserError, define
from model_utils.jobs import Job, get_runner
from model_utils.knobs import form
from model_utils.tables import Limits, read_table

TASK = "fine-tune-base"
JOB_KIND = "fine-tune"
EXAMPLE_FILE = Path(__file__).resolve().parent / "examples" / "finetune_reviews.csv"
PREVIEW_ROWS = 5
EVAL_TIMES = 0.1  # evaluate every 10% of the steps: ten points on the validation curve
LOG_TIMES = 0.02  # log the training loss every 2% of the steps
SAMPLE_LIMITS = Limits(max_bytes=20 * 2**20, max_rows=20_000)  # the bundled sample is ours: read it whole
# The knobs of the form, in the API's order: (dataclass, field) -- their defaults and ranges are defined there.
KNOBS = [(finetune.RecipeArguments, name) for name in ("num_train_epochs", "per_device_train_batch_size",
                                                       "learning_rate", "warmup_steps", "weight_decay")] + [
    (finetune.DataArguments, "max_length"), (finetune.RecipeArguments, "max_steps"), (finetune.RecipeArguments, "seed"),
    (finetune.ModelArguments, "lora_rank"), (finetune.ModelArguments, "compare_from_scratch"),
    (finetune.DataArguments, "max_train_rows"), (finetune.DataArguments, "max_validation_rows")]
PRESETS = ("quick", "full")

STRINGS = {
    "en": {
        "tab_finetune": "Fine-tune",
        "finetune_intro": "Fine-tune a pretrained encoder for text classification on your own data "
                          "(the BERT recipe: `Trainer`, 3 epochs, batch size 16), watch it learn, and use "
                          "the new model at once in the Classify tab as `local:<name>`. Tick *also train "
                          "from scratch* to see what pretraining buys.",
        "finetune_file": "Training data (.csv, .tsv, .jsonl with a header)",
        "finetune_use_sample": "Use the bundled sample sentiment data (movie reviews) instead of a file",
        "finetune_preview": "First rows",
        "finetune_text_column": "Text column",
        "finetune_label_column": "Label column",
        "finetune_name": "Name of the new checkpoint (local:<name>)",
        "finetune_hyper": "Hyperparameters",
        "knob_num_train_epochs": "Epochs",
        "knob_per_device_train_batch_size": "Batch size",
        "knob_learning_rate": "Learning rate",
        "knob_warmup_steps": "Warmup (share of steps)",
        "knob_weight_decay": "Weight decay",
        "knob_max_length": "Max tokens per example",
        "knob_max_steps": "Max steps (-1: run all epochs)",
        "knob_seed": "Seed",
        "knob_lora_rank": "LoRA rank (0: train all weights)",
        "knob_compare_from_scratch": "Also train from scratch (same architecture, random weights) for comparison",
        "knob_max_train_rows": "Training rows used (0: all)",
        "knob_max_validation_rows": "Validation rows used (0: all)",
        "finetune_preset": "Run size (the estimate is for this machine)",
        "finetune_plan": "What will run",
        "finetune_start": "Start",
        "finetune_stop": "Stop",
        "finetune_status": "Status",
        "finetune_loss": "Training loss",
        "finetune_validation": "Validation metrics",
        "finetune_summary": "Result",
        "finetune_confusion": "Confusion matrix (validation)",
    },
    "zh-CN": {
        "tab_finetune": "微调",
        "finetune_intro": "在你自己的数据上把预训练编码器微调成文本分类器（BERT 的标准做法：`Trainer`、"
                          "3 个轮次、批大小 16），实时查看训练过程，训练完成后即可在“文本分类”页以 "
                          "`local:<名称>` 使用新模型。勾选“同时从头训练”可以看到预训练带来的提升。",
        "finetune_file": "训练数据（带表头的 .csv、.tsv、.jsonl）",
        "finetune_use_sample": "使用内置的情感分析示例数据（影评），不使用上传的文件",
        "finetune_preview": "前几行",
        "finetune_text_column": "文本列",
        "finetune_label_column": "标签列",
        "finetune_name": "新检查点的名称（local:<名称>）",
        "finetune_hyper": "超参数",
        "knob_num_train_epochs": "轮次",
        "knob_per_device_train_batch_size": "批大小",
        "knob_learning_rate": "学习率",
        "knob_warmup_steps": "预热（占总步数的比例）",
        "knob_weight_decay": "权重衰减",
        "knob_max_length": "每条样本的最大词元数",
        "knob_max_steps": "最大步数（-1：跑完所有轮次）",
        "knob_seed": "随机种子",
        "knob_lora_rank": "LoRA 秩（0：训练全部权重）",
        "knob_compare_from_scratch": "同时从头训练（相同结构、随机初始化）以作对比",
        "knob_max_train_rows": "使用的训练行数（0：全部）",
        "knob_max_validation_rows": "使用的验证行数（0：全部）",
        "finetune_preset": "运行规模（估计时间按本机计算）",
        "finetune_plan": "将要运行的内容",
        "finetune_start": "开始",
        "finetune_stop": "停止",
        "finetune_status": "状态",
        "finetune_loss": "训练损失",
        "finetune_validation": "验证集指标",
        "finetune_summary": "结果",
        "finetune_confusion": "混淆矩阵（验证集）",
    },
}

MESSAGES = {
    "en": {
        "finetune.done": "✅ Done.",
        "finetune.stopped": "⏹ Stopped{reason}.",
        "finetune.preset.quick": "Quick: {rows} rows, about {time}",
        "finetune.preset.full": "Full: every row ({rows}), about {time}",
        "finetune.plan": "📋 Trains on **{train}** of {available} training rows and checks on {validation} of "
                         "{available_validation} validation rows: {epochs:g} epochs, **{steps} steps** (batch {batch}, "
                         "up to {max_length} tokens per row). ⏱ Estimated time: **{time}** on this machine ({device}).",
        "finetune.plan_steps": "📋 Trains on **{train}** of {available} training rows and checks on {validation} of "
                               "{available_validation} validation rows: **{steps} steps** (batch {batch}, up to "
                               "{max_length} tokens per row). ⏱ Estimated time: **{time}** on this machine ({device}).",
        "finetune.name_taken": "💡 `local:{requested}` already exists, so this run will be saved as `local:{name}` "
                               "(or type another name).",
        "finetune.saved_as": "Saved as `local:{name}` (`local:{requested}` already existed).",
    },
    "zh-CN": {
        "finetune.done": "✅ 完成。",
        "finetune.stopped": "⏹ 已停止{reason}。",
        "finetune.preset.quick": "快速：{rows} 行，大约 {time}",
        "finetune.preset.full": "完整：全部 {rows} 行，大约 {time}",
        "finetune.plan": "📋 在 {available} 行训练数据中取 **{train}** 行训练，在 {available_validation} 行验证数据中取 {validation} "
                         "行验证：{epochs:g} 个轮次，**{steps} 步**（批大小 {batch}，每行最多 {max_length} 个词元）。⏱ 估计用时："
                         "本机（{device}）上约 **{time}**。",
        "finetune.plan_steps": "📋 在 {available} 行训练数据中取 **{train}** 行训练，在 {available_validation} 行验证数据中取 "
                               "{validation} 行验证：**{steps} 步**（批大小 {batch}，每行最多 {max_length} 个词元）。⏱ 估计用时："
                               "本机（{device}）上约 **{time}**。",
        "finetune.name_taken": "💡 `local:{requested}` 已经存在，本次运行将保存为 `local:{name}`（也可以输入别的名称）。",
        "finetune.saved_as": "已保存为 `local:{name}`（`local:{requested}` 已经存在）。",
        "finetune.upload_or_sample": "请上传 CSV、TSV 或 JSONL 文件，或勾选示例数据。",
        "finetune.one_class": "至少需要两个类别；标签列只有 {count} 个：{values}。",
        "finetune.too_many_labels": "标签列有 {count} 个不同的值（上限 {limit}）；它真的是标签列吗？",
        "finetune.no_usable_rows": "每一行的 {text!r} 或 {label!r} 都是空的；没有可训练的内容。",
        "finetune.split_empty": "训练集（{train} 行）和验证集（{validation} 行）都需要有数据；请增加行或修改划分方式。",
        "finetune.unseen_labels": "验证集中有训练集中没有出现的标签：{labels}。",
        "finetune.delta_base_offline": "无法从保存的增量重建基础模型：它自己的基础模型 {base} 不在本地缓存中，而 Hub 无法访问。",
        "finetune.base_unloadable": "无法加载基础模型 {name!r}（{why}）；它需要 safetensors 权重和分词器。",
        "finetune.not_classifiable": "{name!r} 不能被微调成分类模型：{detail}",
        "finetune.lora_bert_only": "LoRA 微调只支持 BERT 系列编码器；请把 LoRA 秩设为 0。",
    },
}
define({"finetune.upload_or_sample": "Upload a CSV, TSV or JSONL file, or tick the sample data."})
add_strings(STRINGS)
add_messages(MESSAGES)


@user_errors
def preview(path: str | None) -> tuple[Any, dict, dict, bool]:
    """After an upload: the first rows, the column pickers (text/label guessed), and 'use sample' off."""
    if not path:
        return None, gr.update(), gr.update(), True
    columns, rows = read_table(path)
    text = guess_column(columns, TEXT_COLUMN_GUESSES, columns[0])
    others = [c for c in columns if c != text and c.lower() != "split"] or columns  # "split" marks validation rows
    label = guess_column(others, LABEL_COLUMN_GUESSES, others[0])
    table = [[row.get(c, "") for c in columns] for row in rows[:PREVIEW_ROWS]]
    return (gr.update(value=table, headers=columns), gr.update(choices=columns, value=text),
            gr.update(choices=columns, value=label), False)


@functools.lru_cache(maxsize=1)
def _sample_rows() -> tuple[dict[str, str], ...]:
    """The bundled sample's rows, read once (every plan of every session reads them)."""
    return tuple(read_table(SAMPLE_SENTIMENT_CSV, SAMPLE_LIMITS)[1])


def _rows(path: str | None, use_sample: bool) -> tuple[list[dict[str, str]], str]:
    """Rows to train on and their source: the upload (the upload limits) or the bundled sample."""
    if use_sample:
        return [dict(row) for row in _sample_rows()], ""
    if not path:
        raise UserError("finetune.upload_or_sample")
    return read_table(path)[1], path


def preset_form(which: str, /, use_sample: bool = True, upload: str | None = None, **values: Any) -> dict[str, Any]:
    """The form's values with preset ``which`` ("quick", "full") for this machine, the knobs' defaults elsewhere."""
    knobs = {field: spec.default for cls, field in KNOBS for spec in form(cls, [field])}
    return {"upload": upload, "use_sample": use_sample, "text_column": "text", "label_column": "label", "base": "",
            "name": "", **knobs, **finetune.preset(which), **values}


def plan_of(values: dict[str, Any], reserve: bool = False,
            read: tuple[list[dict[str, str]], str] | None = None) -> finetune.Plan:
    """The run the form describes, checked from end to end (nothing is queued when this fails); ``reserve``
    promises its checkpoint name to it (released when the job ends); ``read``: the form's rows and source
    when already read (one read of an upload serves every plan of one form change)."""
    rows, source = read or _rows(values["upload"], bool(values["use_sample"]))
    knobs = {cls: {name: values[name] for c, name in KNOBS if c is cls} for cls, _ in KNOBS}
    data = {"train_file": source, "text_column": values["text_column"] or "text",
            "label_column": values["label_column"] or "label", **knobs[finetune.DataArguments]}
    model = {"base_model": str(values["base"] or "").strip(), "checkpoint_name": str(values["name"] or "").strip(),
             **knobs[finetune.ModelArguments]}
    training = {**knobs[finetune.RecipeArguments], "eval_strategy": "steps", "eval_steps": EVAL_TIMES,
                "logging_steps": LOG_TIMES, "disable_tqdm": True}
    training["per_device_eval_batch_size"] = training["per_device_train_batch_size"]
    return finetune.plan(rows, data, model, training, reserve=reserve)


def plan_markdown(summary: dict[str, Any]) -> str:
    """What the run will do (rows, steps, estimated time), and the name it will be saved as if the one asked
    for is taken, in the request's language."""
    time_text, device = job_panel.estimate_words(summary["estimate"])
    code = "finetune.plan_steps" if summary["max_steps"] > 0 else "finetune.plan"
    line = say(code, train=summary["train_rows"], available=summary["available_train_rows"],
               validation=summary["validation_rows"], available_validation=summary["available_validation_rows"],
               epochs=summary["epochs"], steps=summary["steps"], batch=summary["batch_size"],
               max_length=summary["max_length"], time=time_text, device=device)
    if summary["requested_name"]:
        line += "  \n" + say("finetune.name_taken", requested=summary["requested_name"],
                             name=summary["checkpoint"])  # checked names: no Markdown in them
    return line


def _preset_choices(values: dict[str, Any], read: tuple[list[dict[str, str]], str]) -> list[tuple[str, str]]:
    """The preset picker's labels for the chosen data (``read``: its rows and source): rows and estimated time
    of each preset."""
    choices = []
    for name in PRESETS:
        summary = plan_of({**values, **finetune.preset(name), "name": ""}, read=read).summary()
        choices.append((say(f"finetune.preset.{name}", rows=summary["train_rows"],
                            time=job_panel.estimate_words(summary["estimate"])[0]), name))
    return choices


def describe(data: dict, inputs: dict[str, Any]) -> tuple[str, Any, Any]:
    """API ``finetune_plan``: the plan's text, the rows it trains on (first few), the presets with their times.
    A form that cannot run says why in the plan's place (the run itself is refused the same way)."""
    values = values_of(data, inputs)
    try:
        read = _rows(values["upload"], bool(values["use_sample"]))
        checked = plan_of(values, read=read)
        choices = _preset_choices(values, read)
    except UserError as err:
        return f"⚠️ {translate(err)}", gr.update(), gr.update()
    rows = checked.prepared.train_rows[:PREVIEW_ROWS]
    chosen = [checked.data.label_column, checked.data.text_column]  # the label first: long texts push the rest off
    columns = chosen + [c for c in (rows[0] if rows else {}) if c not in chosen] if rows else []
    table = gr.update(value=[[row.get(c, "") for c in columns] for row in rows], headers=columns)
    return plan_markdown(checked.summary()), table, gr.update(choices=choices)


def apply_preset(name: str) -> tuple:
    """The knob values of preset ``name`` for this machine, in :data:`PRESET_FIELDS` order."""
    values = finetune.preset(name or "quick")
    return tuple(values[field] for field in PRESET_FIELDS)


PRESET_FIELDS = list(finetune.PRESETS["cpu"]["quick"])


def _submit(values: dict[str, Any], owner: str) -> Job:
    """Check the run, then queue it; the job builds its training arguments itself (accelerate's state)."""
    checked = plan_of(values, reserve=True)

    def work(job: Job) -> dict:  # runs in the job's thread, holding the only training slot
        output_dir = tempfile.mkdtemp(prefix="plm-finetune-")
        try:
            summary = finetune.summarize(finetune.run_plan(checked, output_dir, job.emit, job.should_stop, job.owner))
            return {**summary, "requested_name": checked.requested_name}
        finally:
            shutil.rmtree(output_dir, ignore_errors=True)

    description = f"{checked.model.base_model or finetune.default_base_model()} → local:{checked.model.checkpoint_name}"
    try:
        return get_runner().submit(JOB_KIND, description, work, owner=owner, estimate_s=checked.estimate().seconds,
                                   on_end=lambda job: checked.release())
    except UserError:
        checked.release()
        raise


def _live(job: Job, status: str) -> tuple:
    """Outputs while the job runs: status, curves; result boxes untouched."""
    return status, plots.loss_figure(job.events), plots.validation_figure(job.events), gr.update(), gr.update()


def _final(job: Job) -> tuple:
    """Outputs of a finished job."""
    summary = job.result
    if summary is None:  # stopped before it started
        return say("job.stopped_before"), gr.update(), gr.update(), "", None
    evaluation = summary["evaluation"]
    status = job_panel.stopped_line(job, "finetune.stopped", say("finetune.done"))
    if summary.get("requested_name") and summary.get("checkpoint"):
        status += " " + say("finetune.saved_as", name=summary["checkpoint"].removeprefix("local:"),
                            requested=summary["requested_name"])
    return (status, plots.loss_figure(job.events), plots.validation_figure(job.events),
            plots.summary_markdown(summary), classify_plots.confusion_figure(evaluation) if evaluation else None)


def _start_with(inputs: dict[str, Any]):
    """The ``finetune`` event's function for the form ``inputs`` (name -> component)."""
    def start(data: dict, request: gr.Request, progress: gr.Progress = gr.Progress()) -> Iterator[tuple]:
        """API ``finetune``: train in the background; yields status, loss curve, validation curve, result, confusion."""
        job = job_panel.submitted(_submit, values_of(data, inputs), job_panel.owner_of(request))
        yield from job_panel.follow(job, progress, _live, _final)

    return start


def stop(request: gr.Request) -> str:
    """API ``finetune_stop``: stop this session's fine-tuning job."""
    return job_panel.stop(JOB_KIND, request)


def build_tab() -> TabParts:
    """Lay out the Fine-tune tab and wire its events (called inside ``gr.Tab``)."""
    gr.Markdown(I18N("finetune_intro"))
    with gr.Row():
        with gr.Column():
            upload = gr.File(label=I18N("finetune_file"), file_types=[".csv", ".tsv", ".jsonl"], type="filepath",
                             elem_id="finetune-file")
            use_sample = gr.Checkbox(value=True, label=I18N("finetune_use_sample"), elem_id="finetune-use-sample")
        with gr.Column():
            text_column = gr.Dropdown(choices=["text"], value="text", allow_custom_value=True,
                                      label=I18N("finetune_text_column"), elem_id="finetune-text-column")
            label_column = gr.Dropdown(choices=["label"], value="label", allow_custom_value=True,
                                       label=I18N("finetune_label_column"), elem_id="finetune-label-column")
    table = gr.Dataframe(label=I18N("finetune_preview"), interactive=False, wrap=True, elem_id="finetune-preview")
    with gr.Row():
        base = model_dropdown(TASK, elem_id="finetune-base")
        name = gr.Textbox(value=lambda: dated_name("classifier"), label=I18N("finetune_name"), elem_id="finetune-name",
                          max_length=128)
    preset = gr.Radio(choices=[(name, name) for name in PRESETS], value="quick", label=I18N("finetune_preset"),
                      elem_id="finetune-preset")
    with gr.Accordion(I18N("finetune_hyper"), open=False):
        knobs = number_inputs([form(cls, [name])[0] for cls, name in KNOBS], "finetune")
    for field, value in finetune.preset("quick").items():
        knobs[field].value = value  # the form opens on the quick preset
    plan_box = gr.Markdown(elem_id="finetune-plan", label=I18N("finetune_plan"))
    with gr.Row():
        run = gr.Button(I18N("finetune_start"), variant="primary", elem_id="finetune-start")
        halt = gr.Button(I18N("finetune_stop"), variant="stop", elem_id="finetune-stop")
    status = gr.Markdown(elem_id="finetune-status")
    with gr.Row():
        loss = gr.Plot(label=I18N("finetune_loss"), elem_id="finetune-loss")
        validation = gr.Plot(label=I18N("finetune_validation"), elem_id="finetune-validation")
    summary = gr.Markdown(elem_id="finetune-summary")
    confusion = gr.Plot(label=I18N("finetune_confusion"), elem_id="finetune-confusion")
    examples([[str(EXAMPLE_FILE), "reviews-demo"]], inputs=[upload, name])
    inputs = {"upload": upload, "use_sample": use_sample, "text_column": text_column, "label_column": label_column,
              "base": base, "name": name, **knobs}
    training = run.click(_start_with(inputs), inputs=set(inputs.values()),
                         outputs=[status, loss, validation, summary, confusion], api_name="finetune",
                         concurrency_limit=None)
    clear_on_failure(training, [status, loss, validation, summary, confusion])
    halt.click(stop, outputs=[status], api_name="finetune_stop", queue=False)
    planned = dict(fn=lambda data: describe(data, inputs), inputs=set(inputs.values()),
                   outputs=[plan_box, table, preset], concurrency_limit=4, trigger_mode="always_last")
    uploaded = upload.change(preview, inputs=[upload], outputs=[table, text_column, label_column, use_sample],
                             api_name="finetune_preview")
    clear_on_failure(uploaded, [table], keep=[text_column, label_column, use_sample])
    uploaded.success(**planned, api_visibility="private")
    preset.input(apply_preset, inputs=[preset], outputs=[knobs[f] for f in PRESET_FIELDS], queue=False,
                 api_visibility="private")  # the knobs' change events re-plan
    gr.on([use_sample.input, text_column.change, label_column.change, base.change, name.change,
           *[k.change for k in knobs.values()]], **planned, api_name="finetune_plan")
    return TabParts(pickers=[(TASK, base)], changes_checkpoints=[training], on_select=planned)
