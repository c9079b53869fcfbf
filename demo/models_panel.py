"""Models tab: compute device, Hub/offline status, checkpoints folder, loaded models with their memory, unload buttons."""

from __future__ import annotations

from typing import Any

import gradio as gr
from gradio.context import Context

from demo.common import is_offline
from demo.i18n import I18N
from demo.messages import in_language, localized, markdown_text
from model_utils.checkpoints import storage_problem
from model_utils.config import get_settings
from model_utils.manager import device_summary, get_manager
from model_utils.registry import local_checkpoints

STRINGS = {
    "en": {"tab_models": "Models",
           "models_unload_one": "Unload this model",
           "models_intro": "Models load on first use and stay cached (least recently used ones are "
                           "unloaded when the cache is full). Unload them to free memory."},
    "zh-CN": {"tab_models": "模型",
              "models_unload_one": "卸载此模型",
              "models_intro": "模型在首次使用时加载并保留在缓存中（缓存满时卸载最久未用的模型）。"
                              "卸载模型可释放内存。"},
}
TABLE_HEADERS = ["checkpoint", "head", "device", "precision", "memory (MB)"]
TABLE_HEADERS_ZH = ["检查点", "输出头", "设备", "精度", "内存 (MB)"]


def checkpoints_markdown() -> str:
    """One line: where fine-tuned/pretrained models are saved, how many there are, or why they cannot be."""
    root = get_settings().checkpoints_dir
    problem = storage_problem(root)
    label = in_language("**Checkpoints:**", "**检查点：**")
    if problem:
        return f"{label} ⚠️ {markdown_text(problem)}"
    if not root.is_dir():
        return label + in_language(f" `{root}` does not exist yet; it is created when the first model is saved",
                                   f" `{root}` 还不存在；保存第一个模型时会创建")
    count = len(local_checkpoints())
    return label + in_language(f" `{root}`, {count} saved (offered as `local:<name>`)",
                               f" `{root}`，已保存 {count} 个（以 `local:<名称>` 提供）")


def status_markdown() -> str:
    """One paragraph: device, precision, Hub status, checkpoints folder, cache use and limits."""
    device = device_summary()
    settings = get_settings()
    loaded = get_manager().loaded()
    used_mb = sum(m["approx_bytes"] for m in loaded) / 2**20
    limit_mb = settings.cache_max_bytes / 2**20
    gpu = ""
    if device["memory_total_mb"]:
        gpu = in_language(f" · GPU memory {device['memory_used_mb']} / {device['memory_total_mb']} MB",
                          f" · GPU 显存 {device['memory_used_mb']} / {device['memory_total_mb']} MB")
    if is_offline():
        hub = in_language("offline: defaults are the bundled models", "离线：默认使用内置模型")
    else:
        hub = in_language("online: Hub models download on first use", "在线：Hub 模型在首次使用时下载")
    cache = in_language(f"**Cache:** {len(loaded)} of at most {settings.cache_max_models} models, "
                        f"{used_mb:.1f} MB of {limit_mb:.0f} MB",
                        f"**缓存：** {len(loaded)} 个模型（最多 {settings.cache_max_models} 个），"
                        f"{used_mb:.1f} MB / {limit_mb:.0f} MB")
    return (in_language("**Device:**", "**设备：**") + f" {device['device']} ({device['name']}), {device['dtype']}{gpu}  \n"
            f"**Hugging Face Hub{in_language(':**', '：**')} {hub}  \n"
            f"{checkpoints_markdown()}  \n"
            f"{cache}")


def models_status() -> tuple[str, Any, Any]:
    """API ``models_status``: (status text, loaded-models table, unload choices)."""
    loaded = get_manager().loaded()
    rows = [[m["checkpoint"], m["head"], m["device"], m["dtype"], m["approx_mb"]] for m in loaded]
    names = sorted({m["checkpoint"] for m in loaded})
    table = {"headers": in_language(TABLE_HEADERS, TABLE_HEADERS_ZH), "data": rows}
    return status_markdown(), table, gr.Dropdown(choices=names, value=names[0] if names else None)


def unload_models(checkpoint: str | None) -> tuple[str, list[list[Any]], Any]:
    """API ``unload_models``: unload one checkpoint (every head), or all when none is chosen."""
    count = get_manager().unload(checkpoint or None)
    gr.Info(localized(f"Unloaded {count} model(s)."))
    return models_status()


def build_tab() -> None:
    """Lay out the Models tab and refresh it whenever it is opened."""
    gr.Markdown(I18N("models_intro"))
    status = gr.Markdown(elem_id="models-status")
    table = gr.Dataframe(headers=TABLE_HEADERS, label=I18N("models_loaded"), interactive=False,
                         elem_id="models-table")
    with gr.Row():
        refresh = gr.Button(I18N("models_refresh"), elem_id="models-refresh")
        which = gr.Dropdown(label=I18N("col_checkpoint"), choices=[], allow_custom_value=True,
                            elem_id="models-which")
        unload_one = gr.Button(I18N("models_unload_one"), elem_id="models-unload-one")
        unload_all = gr.Button(I18N("models_unload"), variant="stop", elem_id="models-unload")
    outputs = [status, table, which]
    refresh.click(models_status, outputs=outputs, api_name="models_status", queue=False)
    unload_one.click(unload_models, inputs=[which], outputs=outputs, api_name="unload_models")
    unload_all.click(lambda: unload_models(None), outputs=outputs, api_visibility="private")
    parent = Context.block  # the gr.Tab app.py opened around this panel
    if isinstance(parent, gr.Tab):
        parent.select(models_status, outputs=outputs, api_visibility="private", queue=False)
    if Context.root_block is not None:
        Context.root_block.load(models_status, outputs=outputs, api_visibility="private", queue=False)
