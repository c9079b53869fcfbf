"""Fine-tune tab: train a text classifier on uploaded (or sample) data, live, and use it at once.

The Start handler checks the input (upload limits, columns, labels, base model, checkpoint name),
then hands ``model_utils.finetune.run`` to the background job runner (:mod:`model_utils.jobs`: one
training job at a time, never in another tab's request thread) and streams its events as a progress
bar and live Plotly curves. At the end the new checkpoint is listed as ``local:<name>`` in the
Classify tab (and as a fine-tune base here) without a restart. Events: ``finetune``,
``finetune_stop``, ``finetune_preview``.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import gradio as gr

from demo import classify_plots
from demo import finetune_plots as plots
from demo.classify_tab import LABEL_COLUMN_GUESSES, TEXT_COLUMN_GUESSES, _guess
from demo.common import TabParts, model_dropdown, ui_error, user_errors
from demo.i18n import I18N
from demo.messages import in_language
from model_utils.checkpoints import check_budget
from model_utils.jobs import DONE, FAILED, STOPPED, WAITING, Job, get_runner

TASK = "fine-tune-base"
JOB_KIND = "fine-tune"
EXAMPLE_FILE = Path(__file__).resolve().parent / "examples" / "finetune_reviews.csv"
PREVIEW_ROWS = 5
EVAL_TIMES = 0.1  # evaluate every 10% of the steps: ten points on the validation curve
LOG_TIMES = 0.02  # log the training loss every 2% of the steps

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
        "finetune_epochs": "Epochs",
        "finetune_batch_size": "Batch size",
        "finetune_lr": "Learning rate",
        "finetune_warmup": "Warmup (share of steps)",
        "finetune_weight_decay": "Weight decay",
        "finetune_max_length": "Max tokens per example",
        "finetune_max_steps": "Max steps (0: run all epochs)",
        "finetune_seed": "Seed",
        "finetune_lora": "LoRA rank (0: train all weights)",
        "finetune_scratch": "Also train from scratch (same architecture, random weights) for comparison",
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
        "finetune_epochs": "轮次",
        "finetune_batch_size": "批大小",
        "finetune_lr": "学习率",
        "finetune_warmup": "预热（占总步数的比例）",
        "finetune_weight_decay": "权重衰减",
        "finetune_max_length": "每条样本的最大词元数",
        "finetune_max_steps": "最大步数（0：跑完所有轮次）",
        "finetune_seed": "随机种子",
        "finetune_lora": "LoRA 秩（0：训练全部权重）",
        "finetune_scratch": "同时从头训练（相同结构、随机初始化）以作对比",
        "finetune_start": "开始",
        "finetune_stop": "停止",
        "finetune_status": "状态",
        "finetune_loss": "训练损失",
        "finetune_validation": "验证集指标",
        "finetune_summary": "结果",
        "finetune_confusion": "混淆矩阵（验证集）",
    },
}


@user_errors
def preview(path: str | None) -> tuple[Any, dict, dict, bool]:
    """After an upload: the first rows, the column pickers (text/label guessed), and 'use sample' off."""
    if not path:
        return None, gr.update(), gr.update(), True
    from model_utils.batch import read_table

    columns, rows = read_table(path)
    text = _guess(columns, TEXT_COLUMN_GUESSES, columns[0])
    others = [c for c in columns if c != text and c.lower() != "split"] or columns  # "split" marks validation rows
    label = _guess(others, LABEL_COLUMN_GUESSES, others[0])
    table = [[row.get(c, "") for c in columns] for row in rows[:PREVIEW_ROWS]]
    return (gr.update(value=table, headers=columns), gr.update(choices=columns, value=text),
            gr.update(choices=columns, value=label), False)


def _read_rows(path: str | None, use_sample: bool) -> tuple[list[dict[str, str]], str]:
    """Rows to train on and their source file: the upload (app limits) or the bundled sample."""
    from model_utils import finetune

    if use_sample or not path:
        if not use_sample:
            raise ValueError("Upload a CSV, TSV or JSONL file, or tick the sample data.")
        sample = finetune.default_train_file()
        return finetune.read_table(sample), ""
    from model_utils.batch import read_table

    return read_table(path)[1], path


def _arguments(path: str, text_column: str, label_column: str, base_model: str, name: str,
               knobs: dict[str, Any]) -> tuple:
    """``model_utils.finetune``'s data and model arguments, and the overrides of its training arguments.

    ``TrainingArguments`` itself is built only inside the job (:func:`_submit`): building it resets
    accelerate's process-wide state, which the running job's ``Trainer`` uses (another session's
    Start made a running fine-tune fail with "AcceleratorState has no attribute num_processes").
    """
    from model_utils import finetune
    from model_utils.checkpoints import ensure_new
    from model_utils.registry import resolve

    resolve(base_model)  # unknown or invalid model: a clear message before anything runs
    ensure_new(name)
    data = finetune.DataArguments(train_file=path, text_column=text_column or "text",
                                  label_column=label_column or "label", max_length=int(knobs["max_length"]))
    model = finetune.ModelArguments(base_model=base_model, lora_rank=int(knobs["lora_rank"]),
                                    compare_from_scratch=bool(knobs["compare"]), checkpoint_name=name.strip())
    training = dict(
        num_train_epochs=float(knobs["epochs"]), per_device_train_batch_size=int(knobs["batch_size"]),
        per_device_eval_batch_size=int(knobs["batch_size"]), learning_rate=float(knobs["learning_rate"]),
        warmup_steps=float(knobs["warmup"]), weight_decay=float(knobs["weight_decay"]), seed=int(knobs["seed"]),
        max_steps=int(knobs["max_steps"]) or -1, eval_strategy="steps", eval_steps=EVAL_TIMES,
        logging_steps=LOG_TIMES, disable_tqdm=True)
    return data, model, training


def _check_knobs(knobs: dict[str, Any]) -> None:
    """ValueError for hyperparameters outside sensible ranges."""
    limits = {"epochs": (0.01, 100), "batch_size": (1, 512), "learning_rate": (1e-7, 1.0), "warmup": (0, 0.99),
              "weight_decay": (0, 1), "max_length": (8, 512), "max_steps": (0, 1_000_000), "lora_rank": (0, 256),
              "seed": (0, 2**32 - 1)}  # numpy's seed range: outside it the job would fail only once started
    for key, (low, high) in limits.items():
        value = knobs[key]
        if value is None or not low <= float(value) <= high:
            raise ValueError(f"{key.replace('_', ' ')} must be between {low} and {high} (got {value}).")


def _submit(path: str | None, use_sample: bool, text_column: str, label_column: str, base_model: str,
            name: str, knobs: dict[str, Any], owner: str) -> Job:
    """Validate everything that can be checked quickly, then queue the training job."""
    from model_utils import finetune

    _check_knobs(knobs)
    rows, source = _read_rows(path, use_sample)
    data, model, training_overrides = _arguments(source, text_column, label_column, base_model, name, knobs)
    finetune.prepare_data(rows, data)  # one class, empty rows, too many labels: fail now, visibly
    check_budget(finetune.expected_bytes(model))  # a checkpoint that could never fit: refused before training

    def work(job: Job) -> dict:  # runs in the job's thread, holding the only training slot
        output_dir = tempfile.mkdtemp(prefix="plm-finetune-")
        try:
            training = finetune.build_training_arguments(output_dir, **training_overrides)
            result = finetune.run(data, model, training, rows=rows, on_event=job.emit, should_stop=job.should_stop,
                                  owner=job.owner)
            return finetune.summarize(result)
        finally:
            shutil.rmtree(output_dir, ignore_errors=True)

    description = f"fine-tuning {base_model} as local:{model.checkpoint_name}"
    return get_runner().submit(JOB_KIND, description, work, owner=owner)


RUN_NAMES_ZH = {"pretrained": "从预训练模型开始", "scratch": "从零开始（随机初始化）"}


def _status(job: Job) -> str:
    """One line about the job's state for the status box."""
    if job.state == WAITING:
        running = get_runner().running()
        other = f" ({running.description})" if running else ""
        return in_language(f"⏳ Waiting: another training job is running{other}. This one starts when it ends.",
                           f"⏳ 等待中：另一个训练任务正在运行{other}，它结束后本任务开始。")
    step = plots.progress_line(job.events)
    if step is None:
        return in_language(f"⚙️ Loading the model and the data for {job.description}…",
                           f"⚙️ 正在为 {job.description} 加载模型和数据…")
    run = plots.RUN_NAMES.get(step[2], step[2])
    return in_language(f"🏋️ Training {run}: step {step[0]} / {step[1]}",
                       f"🏋️ 训练中（{RUN_NAMES_ZH.get(step[2], run)}）：第 {step[0]} / {step[1]} 步")


def _live(job: Job, progress: gr.Progress) -> tuple:
    """Outputs while the job runs: status, curves; result boxes untouched."""
    step = plots.progress_line(job.events)
    if step is not None and step[1]:
        progress((step[0], step[1]), desc=plots.RUN_NAMES.get(step[2], step[2]), unit="steps")
    return (_status(job), plots.loss_figure(job.events), plots.validation_figure(job.events),
            gr.update(), gr.update())


def _final(job: Job) -> tuple:
    """Outputs of a finished job; a failed one becomes a visible error."""
    if job.state == FAILED:
        raise ui_error(f"Fine-tuning failed: {job.error}")
    summary = job.result
    if summary is None:  # stopped before it started
        return in_language("⏹ Stopped before training started.", "⏹ 训练开始前已停止。"), gr.update(), gr.update(), "", None
    evaluation = summary["evaluation"]
    reason = f": {job.stop_reason}" if job.stop_reason else ""
    status = (in_language("✅ Done.", "✅ 完成。") if job.state == DONE
              else in_language(f"⏹ Stopped{reason}.", f"⏹ 已停止{reason}。"))
    return (status, plots.loss_figure(job.events), plots.validation_figure(job.events),
            plots.summary_markdown(summary), classify_plots.confusion_figure(evaluation) if evaluation else None)


def start(path: str | None, use_sample: bool, text_column: str, label_column: str, base_model: str, name: str,
          epochs: float, batch_size: float, learning_rate: float, warmup: float, weight_decay: float,
          max_length: float, max_steps: float, seed: float, lora_rank: float, compare: bool,
          request: gr.Request, progress: gr.Progress = gr.Progress()) -> Iterator[tuple]:
    """API ``finetune``: train in the background; yields status, loss curve, validation curve, result, confusion."""
    knobs = dict(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, warmup=warmup,
                 weight_decay=weight_decay, max_length=max_length, max_steps=max_steps, seed=seed,
                 lora_rank=lora_rank, compare=compare)
    owner = getattr(request, "session_hash", None) or ""
    job = user_errors(_submit)(path, use_sample, text_column, label_column, base_model, name, knobs, owner)
    for current in job.updates(interval=1.0):
        if current.done:
            break
        yield _live(current, progress)
    yield _final(job)


def stop(request: gr.Request) -> str:
    """API ``finetune_stop``: stop this session's fine-tuning job(s)."""
    owner = getattr(request, "session_hash", None) or ""
    jobs = [j for j in get_runner().unfinished(owner) if j.kind == JOB_KIND]  # not this session's pretraining
    for job in jobs:
        job.stop()
    return in_language("⏹ Stopping…", "⏹ 正在停止…") if jobs else in_language(
        "No training job of yours is running.", "你没有正在运行的训练任务。")


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
        name = gr.Textbox(value="my-classifier", label=I18N("finetune_name"), elem_id="finetune-name", max_length=128)
    knobs = _hyperparameters()
    with gr.Row():
        run = gr.Button(I18N("finetune_start"), variant="primary", elem_id="finetune-start")
        halt = gr.Button(I18N("finetune_stop"), variant="stop", elem_id="finetune-stop")
    status = gr.Markdown(elem_id="finetune-status")
    with gr.Row():
        loss = gr.Plot(label=I18N("finetune_loss"), elem_id="finetune-loss")
        validation = gr.Plot(label=I18N("finetune_validation"), elem_id="finetune-validation")
    summary = gr.Markdown(elem_id="finetune-summary")
    confusion = gr.Plot(label=I18N("finetune_confusion"), elem_id="finetune-confusion")
    examples = gr.Examples([[str(EXAMPLE_FILE), "reviews-demo"]], inputs=[upload, name], label=I18N("examples"))
    examples.dataset.headers = []  # Gradio would show the I18N labels untranslated there
    training = _wire(upload, use_sample, text_column, label_column, table, name, knobs, run, halt,
                     [status, loss, validation, summary, confusion], base)
    return TabParts(pickers=[(TASK, base)], changes_checkpoints=[training])


def _hyperparameters() -> list[gr.components.Component]:
    """The hyperparameter inputs, recipe defaults preselected, in the order :func:`start` takes them."""
    with gr.Accordion(I18N("finetune_hyper"), open=False):
        with gr.Row():
            epochs = gr.Number(3, label=I18N("finetune_epochs"), minimum=0.01, elem_id="finetune-epochs")
            batch_size = gr.Number(16, label=I18N("finetune_batch_size"), precision=0, minimum=1)
            learning_rate = gr.Number(5e-5, label=I18N("finetune_lr"), elem_id="finetune-lr")
            warmup = gr.Number(0.0, label=I18N("finetune_warmup"), minimum=0)
            weight_decay = gr.Number(0.0, label=I18N("finetune_weight_decay"), minimum=0)
        with gr.Row():
            max_length = gr.Number(128, label=I18N("finetune_max_length"), precision=0, minimum=8)
            max_steps = gr.Number(0, label=I18N("finetune_max_steps"), precision=0, minimum=0,
                                  elem_id="finetune-max-steps")
            seed = gr.Number(42, label=I18N("finetune_seed"), precision=0)
            lora_rank = gr.Number(0, label=I18N("finetune_lora"), precision=0, minimum=0)
        compare = gr.Checkbox(False, label=I18N("finetune_scratch"), elem_id="finetune-scratch")
    return [epochs, batch_size, learning_rate, warmup, weight_decay, max_length, max_steps, seed, lora_rank, compare]


def _wire(upload, use_sample, text_column, label_column, table, name, knobs, run, halt, outputs, base) -> Any:
    """Wire the tab's events; returns the training event (after it, the saved checkpoints changed)."""
    upload.change(preview, inputs=[upload], outputs=[table, text_column, label_column, use_sample],
                  api_name="finetune_preview")
    event = run.click(start, inputs=[upload, use_sample, text_column, label_column, base, name, *knobs],
                      outputs=outputs, api_name="finetune", concurrency_limit=None)
    halt.click(stop, outputs=[outputs[0]], api_name="finetune_stop", queue=False)
    return event
