"""English and Chinese UI texts, merged into one ``gr.I18n`` object.

Components label themselves with ``I18N("key")``; the browser picks the language
(``navigator.language``: "zh-CN" gets Chinese, anything else English). Each tab module
keeps its own ``STRINGS = {"en": {...}, "zh-CN": {...}}``; app.py merges them into
:data:`I18N` with :func:`add_strings` before launching.
"""

from __future__ import annotations

from typing import Mapping

import gradio as gr

LANGUAGES: tuple[str, ...] = ("en", "zh-CN")

# Texts shared by the whole app (header, Models panel, common messages).
COMMON_STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "app_title": "# PLM Playground",
        "app_intro": "Explore pretrained language models in your browser: fill masks, score "
                     "sentence pairs, classify text and look inside attention.",
        "offline_banner": "**Offline mode:** the Hugging Face Hub is unreachable, so the bundled "
                          "models are used by default. Hub models work only if already in the local cache.",
        "checkpoints_banner": "**Models cannot be saved here:** the checkpoints folder (`PLM_CHECKPOINTS_DIR`) "
                              "is not writable or cannot be created, so Fine-tune and Pretrain cannot save "
                              "their results; everything else works. The Models tab says why.",
        "model": "Model",
        "models_info": "Pick a model or type a Hub id (org/name) or local:<name>.",
        "run": "Run",
        "clear": "Clear",
        "examples": "Examples",
        "models_panel": "Models",
        "models_refresh": "Refresh",
        "models_unload": "Unload all models",
        "models_status": "Status",
        "models_loaded": "Loaded models",
        "models_unloaded": "Unloaded models",
        "col_checkpoint": "Checkpoint",
        "col_head": "Head",
        "col_device": "Device",
        "col_dtype": "Precision",
        "col_memory": "Memory (MB)",
        "notice": "Notice",
    },
    "zh-CN": {
        "app_title": "# PLM 游乐场",
        "app_intro": "在浏览器中探索预训练语言模型：填充掩码、判断句子关系、文本分类、查看注意力。",
        "offline_banner": "**离线模式：** 无法访问 Hugging Face Hub，默认使用内置模型。"
                          "Hub 模型只有在本地缓存中已存在时才能使用。",
        "checkpoints_banner": "**无法保存模型：** 检查点文件夹（`PLM_CHECKPOINTS_DIR`）不可写入或无法创建，"
                              "因此“微调”和“预训练”无法保存结果；其他功能不受影响。原因见“模型”页。",
        "model": "模型",
        "models_info": "选择模型，或输入 Hub 模型名（组织/名称）或 local:<名称>。",
        "run": "运行",
        "clear": "清除",
        "examples": "示例",
        "models_panel": "模型",
        "models_refresh": "刷新",
        "models_unload": "卸载所有模型",
        "models_status": "状态",
        "models_loaded": "已加载的模型",
        "models_unloaded": "已卸载模型数",
        "col_checkpoint": "检查点",
        "col_head": "输出头",
        "col_device": "设备",
        "col_dtype": "精度",
        "col_memory": "内存 (MB)",
        "notice": "提示",
    },
}

I18N = gr.I18n(**{lang: dict(COMMON_STRINGS[lang]) for lang in LANGUAGES})


def add_strings(strings: Mapping[str, Mapping[str, str]]) -> None:
    """Merge a tab's ``STRINGS`` into :data:`I18N`; ValueError on a language or key clash."""
    for lang, texts in strings.items():
        if lang not in LANGUAGES:
            raise ValueError(f"Unsupported UI language {lang!r}; expected one of {LANGUAGES}")
        table = I18N.translations[lang]
        for key, text in texts.items():
            if key in table and table[key] != text:
                raise ValueError(f"UI text key {key!r} ({lang}) is defined twice with different texts")
            table[key] = text


def text(key: str, lang: str = "en") -> str:
    """The plain text of ``key`` in ``lang`` (for server-side messages and tests)."""
    return I18N.translations.get(lang, {}).get(key) or I18N.translations["en"][key]
