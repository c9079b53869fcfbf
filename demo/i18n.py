"""The one catalogue of the UI's words in English and Chinese: labels, and messages by code.

Labels: components label themselves with ``I18N("key")``; the browser picks the language
(``navigator.language``: "zh-CN" gets Chinese, anything else English). Each tab module keeps its
own ``STRINGS = {"en": {...}, "zh-CN": {...}}`` (labels, table headers); app.py merges them into
:data:`I18N` with :func:`add_strings` before launching.

Messages: what the server writes (errors, notices, status lines) is keyed by code. The model
layer's codes have their English text in ``model_utils`` (their Python API) and their Chinese
here; the UI's own codes (status lines) have both here. Each tab module keeps its own
``MESSAGES = {"en": {...}, "zh-CN": {...}}`` next to its ``STRINGS`` and registers it with
:func:`add_messages` when imported; :mod:`demo.messages` reads them by code.
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
        "models_info_offline": "Offline: Hub models that are not in the local cache are not listed (the Hugging Face "
                               "Hub is unreachable). Pick a bundled or local:<name> model.",
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
        "models_info_offline": "离线：无法访问 Hugging Face Hub，本地缓存中没有的 Hub 模型不会列出。请选择内置模型或 "
                               "local:<名称> 模型。",
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


# Server-written messages by code: "en" holds the UI's own codes, "zh-CN" every code's Chinese.
MESSAGES: dict[str, dict[str, str]] = {"en": {}, "zh-CN": {}}

# Words inside parameters that are said differently in Chinese (what was empty, which head is missing).
PARAM_WORDS_ZH: dict[str, dict[str, str]] = {
    "what": {"text": "文本", "second text": "第二段文本", "sentence A": "句子 A", "sentence B": "句子 B",
             "paragraph": "段落", "candidate words": "候选词列表", "probe sentence": "探针句",
             "layer": "层", "head": "注意力头", "query": "查询词元", "sentences": "句子列表", "word": "词"},
    "head": {"masked-lm": "掩码语言模型（掩码填充）", "next-sentence": "下一句预测", "sequence-classification": "序列分类",
             "base": "编码器", "causal-lm": "因果语言模型", "pretraining": "预训练（MLM + NSP）"},
}


def add_messages(messages: Mapping[str, Mapping[str, str]]) -> None:
    """Merge a tab's ``MESSAGES`` into the catalogue; ValueError on a language or code clash."""
    for lang, texts in messages.items():
        if lang not in LANGUAGES:
            raise ValueError(f"Unsupported UI language {lang!r}; expected one of {LANGUAGES}")
        table = MESSAGES[lang]
        for code, template in texts.items():
            if code in table and table[code] != template:
                raise ValueError(f"Message code {code!r} ({lang}) is defined twice with different texts")
            table[code] = template


def template(code: str, language: str) -> str | None:
    """The catalogue's template of ``code`` for ``language`` (None: use the model layer's English)."""
    chinese = bool(language) and language.lower().startswith("zh")
    if chinese and code in MESSAGES["zh-CN"]:
        return MESSAGES["zh-CN"][code]
    return MESSAGES["en"].get(code)


def translated_params(params: Mapping[str, object], language: str) -> dict[str, object]:
    """``<name>_zh`` for each parameter whose words are said differently in Chinese (``what_zh`` ...)."""
    if not (language or "").lower().startswith("zh"):
        return {}
    return {f"{name}_zh": words.get(str(params[name]), params[name])
            for name, words in PARAM_WORDS_ZH.items() if name in params}


def text(key: str, lang: str = "en") -> str:
    """The plain text of ``key`` in ``lang`` (for server-side messages and tests)."""
    lang = "zh-CN" if (lang or "").lower().startswith("zh") else "en"
    return I18N.translations.get(lang, {}).get(key) or I18N.translations["en"][key]


# Messages every tab may show: the model layer's common codes (Chinese; their English is in model_utils)
# and the Models panel's own.
COMMON_MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "models.unloaded": "Unloaded {count} model(s).",
        "models.kept": "{kept} model(s) used in the last {minutes} minutes were kept: only the admin token "
                       "(PLM_ADMIN_TOKEN) unloads models others may be using.",
        "models.deleted": "Deleted local:{name}.",
        "checkpoints.removed": "🧹 To stay within the checkpoints folder's disk budget (PLM_CHECKPOINTS_MAX_MB, "
                               "PLM_CHECKPOINTS_MAX_COUNT), the oldest checkpoints made in the app were removed: "
                               "{names}.",
    },
    "zh-CN": {
        "models.unloaded": "已卸载 {count} 个模型。",
        "models.kept": "最近 {minutes} 分钟内用过的 {kept} 个模型被保留：只有管理员令牌（PLM_ADMIN_TOKEN）"
                       "才能卸载别人可能正在使用的模型。",
        "models.deleted": "已删除 local:{name}。",
        "checkpoints.removed": "🧹 为了不超出检查点文件夹的磁盘预算（PLM_CHECKPOINTS_MAX_MB、PLM_CHECKPOINTS_MAX_COUNT），"
                               "已删除应用中最早创建的检查点：{names}。",
        "server.unexpected": "服务器出错了（错误编号 {error_id}）；详细信息在服务器日志中。请重试，或把这个编号告诉运行本应用的人。",
        "input.not_text": "{what_zh}必须是文本，而不是 {kind}。",
        "input.empty": "{what_zh}为空：请输入文本。",
        "input.too_long": "{what_zh}有 {length:,} 个字符；上限为 {limit:,} 个字符（PLM_MAX_TEXT_CHARS）。请缩短。",
        "model.unknown_bundled": "未知的内置模型 {name!r}；可用的有：{available}",
        "model.config_unreadable": "local:{name} 已损坏：无法读取它的 config.json（{detail}）。请修复或删除该文件夹。",
        "model.config_not_object": "local:{name} 已损坏：它的 config.json 是 JSON {kind}，而不是对象。请修复或删除该文件夹。",
        "model.invalid_local_name": "无效的本地检查点名 {name!r}：请写 local:<文件夹名>，不要写路径",
        "model.local_outside": "本地检查点 {name!r} 必须是检查点文件夹中的直接子文件夹",
        "model.no_local": "检查点文件夹中没有名为 local:{name} 的检查点（缺少文件夹或 config.json）",
        "model.invalid_id": "{name!r} 不是有效的模型名（例如 'bert-base-uncased'、'org/model'、'local:<名称>' 或 "
                            "'bundled:<名称>'）",
        "model.name_not_text": "请用名称（文本）选择模型，而不是 {kind}。",
        "model.name_too_long": "这个模型名有 {length} 个字符；模型名最多 {limit} 个字符。",
        "model.none_chosen": "请选择一个模型。",
        "model.untrained_head": "{name} 没有训练好的{head_zh}头（缺少权重：{missing}）；请选择其他模型。",
        "model.no_head": "{name} 没有{head_zh}头；请选择其他模型。",
        "model.pickle_only": "{name} 只有 PyTorch pickle 权重（.bin/.pt）；为了安全，本应用只加载 .safetensors 权重。"
                             "请用 save_pretrained(safe_serialization=True) 转换。",
        "model.no_safetensors": "{name} 没有 .safetensors 权重文件；请修复检查点或重新保存。",
        "model.damaged_weights": "无法加载 {name}：它的权重文件已损坏或不完整，或与 config.json 不一致（{detail}）。",
        "model.no_vocabulary": "{name} 没有分词器词表（缺少 tokenizer.json 或 vocab.txt）；请修复检查点。",
        "model.tokenizer_too_big": "{name} 已损坏：它的分词器有 {size} 个词元，但模型只有 {rows} 个词嵌入。",
        "model.unknown_type": "{name} 的模型类型是 {kind!r}，当前版本的 Transformers 不认识它；请选择其他模型。",
        "model.cannot_load": "无法加载 {name}：{detail}",
        "model.hub_offline": "{name} 是 Hugging Face Hub 上的模型，而 Hub 现在无法访问（离线模式）；请选择内置模型或本地模型。",
        "model.needs_safetensors": "无法加载 {name}（需要 .safetensors 权重和分词器）：{detail}",
        "model.delta_base_offline": "{name} 是从 {base} 微调而来的，而该模型不在本地缓存中，Hub 也无法访问；请选择其他模型。",
        "model.bundled_missing": "本安装中缺少 {name} 的权重：{detail}",
        "model.bundled_not_installed": "没有安装内置模型，因此 {name} 不可用。",
        "delta.unreadable": "local:{name} 已损坏：无法读取它的 {file}。",
        "delta.no_base": "local:{name} 已损坏：它的 {file} 没有写明基础模型。",
        "delta.base_missing": "这个检查点是从 {base} 训练而来的，而本安装中没有该模型。",
        "table.file_type": "不支持的文件类型 {suffix!r}：请上传 .csv、.tsv 或 .jsonl 文件。",
        "table.too_large": "文件太大（{size_mb:.1f} MB）；上限为 {limit_mb:.1f} MB（PLM_MAX_UPLOAD_MB）。",
        "table.not_utf8": "文件不是 UTF-8 文本（第 {position} 个字节无效）；请用 UTF-8 编码保存后重新上传。",
        "table.no_rows": "文件没有数据行。",
        "table.too_many_rows": "文件有 {rows} 行；上限为 {limit} 行（PLM_MAX_UPLOAD_ROWS）。请拆分文件或只保留前面的行。",
        "table.malformed": "{kind} 文件格式有误：{detail}",
        "table.empty": "文件为空。",
        "table.bad_header": "第一行必须为每一列各写一个不重复的列名；实际是 {header}。",
        "table.bad_json_line": "第 {line} 行不是形如 {{\"text\": ..., \"label\": ...}} 的 JSON 对象。",
        "table.no_column": "文件没有 {name!r} 列；它的列是：{columns}。",
        "checkpoints.no_name": "请给新检查点起一个名字。",
        "checkpoints.bad_name": "无效的检查点名 {name!r}：只能用字母、数字、“-”、“_”或“.”，以字母或数字开头，最多 128 个字符，"
                                "不能有“/”或“..”。",
        "checkpoints.exists": "已经有名为 local:{name} 的检查点；请换一个名字（已有的检查点从不覆盖）。",
        "checkpoints.cannot_write": "无法把 local:{name} 保存到检查点文件夹（{reason}）；请把 PLM_CHECKPOINTS_DIR 设为可写的文件夹。",
        "checkpoints.appeared": "保存时出现了同名的 local:{name}；没有覆盖任何内容。",
        "checkpoints.is_file": "检查点文件夹 {root} 是一个文件而不是文件夹，因此无法保存微调和预训练的模型。"
                               "请把 PLM_CHECKPOINTS_DIR 设为可写的文件夹。",
        "checkpoints.under_file": "无法创建检查点文件夹 {root}：{where} 是一个文件而不是文件夹，因此无法保存微调和预训练的模型。"
                                  "请把 PLM_CHECKPOINTS_DIR 设为可写的文件夹。",
        "checkpoints.read_only": "检查点文件夹 {root} 是只读的，因此无法保存微调和预训练的模型。请把 PLM_CHECKPOINTS_DIR 设为可写的文件夹。",
        "checkpoints.in_read_only": "无法在只读的 {where} 中创建检查点文件夹 {root}，因此无法保存微调和预训练的模型。"
                                    "请把 PLM_CHECKPOINTS_DIR 设为可写的文件夹。",
        "checkpoints.too_big": "这次训练大约要保存 {needed_mb:,.0f} MB，而检查点文件夹最多只能占用 {limit_mb:,.0f} MB"
                               "（PLM_CHECKPOINTS_MAX_MB），其中 {fixed_mb:,.0f} MB 是应用不能删除的检查点。请使用 LoRA"
                               "（只保存小的适配器而不是完整副本）、换一个更小的基础模型，或请运行本应用的人腾出空间。",
        "checkpoints.not_found": "没有名为 local:{name} 的检查点。",
        "checkpoints.not_yours": "local:{name} 不是在这个浏览器会话中创建的，因此不能在这里删除（请联系运行本应用的人）。",
        "checkpoints.not_from_app": "local:{name} 不是由本应用创建的；只有运行本应用的人才能删除它。",
    },
}
add_messages(COMMON_MESSAGES)


def untranslated_codes() -> list[str]:
    """Message codes (the model layer's and the UI's own) with no Chinese template; a test keeps it empty."""
    from model_utils.errors import codes

    return sorted((set(codes()) | set(MESSAGES["en"])) - set(MESSAGES["zh-CN"]))


def codes_without_english() -> list[str]:
    """Chinese templates whose code has no English anywhere (a typo, a removed code); a test keeps it empty."""
    from model_utils.errors import codes

    return sorted(set(MESSAGES["zh-CN"]) - set(codes()) - set(MESSAGES["en"]))
