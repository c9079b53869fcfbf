"""Error and notice messages in the user's language.

The model code (``model_utils``) raises plain English messages: they are its Python API, and API
clients read them. The UI shows them to a person, who may read Chinese: Gradio translates the
``gr.I18n`` labels in the browser, but not the text of an error. So :func:`localize` translates a
message at the UI boundary, by pattern, into the language of the request being answered (its
``Accept-Language``: the browser's language, which Gradio's ``gr.I18n`` follows too). Messages with no
pattern here stay in English; names, numbers and quoted input inside a message are kept as they are.
"""

from __future__ import annotations

import html
import re
from typing import Any, Mapping

from model_utils.errors import UserError, codes, define, message

# Words that appear inside messages (head kinds, what is missing).
_ZH_WORDS = {
    "masked-language-model (fill-mask)": "掩码语言模型（掩码填充）",
    "next-sentence-prediction": "下一句预测",
    "sequence-classification": "序列分类",
    "encoder": "编码器",
    "causal-language-model": "因果语言模型",
    "pretraining (MLM + NSP)": "预训练（MLM + NSP）",
    "text": "文本",
    "second text": "第二段文本",
    "head view": "注意力头视图",
    "model view": "模型视图",
}


def _word(value: str) -> str:
    return _ZH_WORDS.get(value, value)


def _minimum(value: str) -> str:
    """The pretraining corpus minimum ("at least 2 documents (...) and 8 sentences in all, ...")."""
    found = re.fullmatch(r"at least (\d+) documents \(separate them with a blank line\) and (\d+) sentences "
                         r"in all, with (\d+) or more documents of two sentences or more", value)
    if not found:
        return value
    docs, sentences, pairs = found.groups()
    return f"至少 {docs} 篇文档（用空行分隔），共 {sentences} 个句子，其中至少 {pairs} 篇文档有两个或更多句子"


# (English pattern, Chinese template); the template's fields are the pattern's named groups, and a
# group named ``word_*`` or ``min_*`` is translated with _word / _minimum first.
_ZH: list[tuple[str, str]] = [
    # Fill-Mask
    (r"Please enter a text containing \[MASK\]\.", "请输入含 [MASK] 的文本。"),
    (r"No mask found: write \[MASK\](?: \(or (?P<own>.+)\))? where a word is missing\.",
     "没有找到掩码：请在缺词的位置写 [MASK]{own_or}。"),
    (r"Too many masks \((?P<count>\d+)\); at most (?P<limit>\d+) are allowed\.",
     "掩码太多（{count} 个）；最多允许 {limit} 个。"),
    (r"The masks are (?P<gap>\d+) tokens apart, but the model reads at most (?P<limit>\d+) tokens at once; "
     r"put them closer together\.", "两个掩码相隔 {gap} 个词元，但模型一次最多读 {limit} 个词元；请让它们靠近一些。"),
    (r"This model's tokenizer has no mask token, so it cannot fill masks\.", "该模型的分词器没有掩码词元，无法填充掩码。"),
    (r"None of the candidate words can be scored by this model\.", "该模型无法为任何一个候选词打分。"),
    (r"top-k must be a number from 1 to (?P<limit>\d+)\.", "top-k 必须是 1 到 {limit} 之间的数。"),
    (r"Compare at most (?P<limit>\d+) models at once\.", "一次最多比较 {limit} 个模型。"),
    (r"The text and the candidate words must be strings\.", "文本和候选词必须是字符串。"),
    (r"The text is (?P<length>\d+) tokens long and the model reads at most (?P<limit>\d+): only tokens "
     r"(?P<first>\d+)-(?P<last>\d+) \(around the masks\) were used\.",
     "文本有 {length} 个词元，而模型最多读 {limit} 个：只用了第 {first}-{last} 个词元（掩码附近）。"),
    (r"Candidate (?P<cand>.+) is not in the vocabulary; ignored\.", "候选词 {cand} 不在词表中，已忽略。"),
    (r"Candidate (?P<cand>.+) is not one token; scored as (?P<token>.+)\.", "候选词 {cand} 不是单个词元；按 {token} 打分。"),
    # Next Sentence
    (r"Paragraph mode needs at least two sentences \(ending with \. ! or \?\)\.",
     "段落模式至少需要两个句子（以 . ! 或 ? 结尾）。"),
    (r"The pair is (?P<length>\d+) tokens long and the model reads at most (?P<limit>\d+); the longer sentence "
     r"was cut\.", "这对句子有 {length} 个词元，而模型最多读 {limit} 个；较长的句子被截短了。"),
    (r"Only the first (?P<kept>\d+) of (?P<total>\d+) sentences were scored\.", "{total} 个句子中只有前 {kept} 个参与了打分。"),
    # Classify, Attention
    (r"(?P<name>.+) is not a text classifier \(its architecture is (?P<arch>.+)\)\. Choose a sequence-classification "
     r"checkpoint, or fine-tune one in the Fine-tune tab\.",
     "{name} 不是文本分类模型（其架构为 {arch}）。请选择一个序列分类检查点，或在“微调”页微调一个。"),
    # Models
    (r"Please choose a model\.", "请选择一个模型。"),
    (r"(?P<name>.+) is a Hugging Face Hub model and the Hub is unreachable \(offline mode\); "
     r"choose a bundled or local model\.", "{name} 是 Hugging Face Hub 上的模型，而 Hub 现在无法访问（离线模式）；"
                                             "请选择内置模型或本地模型。"),
    (r"(?P<name>.+) has no (?P<word_head>.+) head; choose another model\.", "{name} 没有{word_head}头；请选择其他模型。"),
    (r"(?P<name>.+) has no trained (?P<word_head>.+) head \(missing weights: (?P<missing>.+)\); choose another model\.",
     "{name} 没有训练好的{word_head}头（缺少权重：{missing}）；请选择其他模型。"),
    (r"No checkpoint named (?P<name>local:.+) in the checkpoints folder \(missing folder or config\.json\)",
     "检查点文件夹中没有名为 {name} 的检查点（缺少文件夹或 config.json）"),
    (r"(?P<name>.+) is not a valid model id \(expected e\.g\. (?P<examples>.+)\)",
     "{name} 不是有效的模型名（例如 {examples}）"),
    (r"Invalid local checkpoint name (?P<name>.+): use local:<folder name>, no paths",
     "无效的本地检查点名 {name}：请写 local:<文件夹名>，不要写路径"),
    (r"A model is chosen by its name \(text\), not by a (?P<kind>.+)\.", "请用名称（文本）选择模型，而不是 {kind}。"),
    (r"That model name is (?P<length>\d+) characters long; names have at most (?P<limit>\d+)\.",
     "这个模型名有 {length} 个字符；模型名最多 {limit} 个字符。"),
    # Files
    (r"The file has no data rows\.", "文件没有数据行。"),
    (r"The file is empty\.", "文件为空。"),
    (r"Unsupported file type (?P<kind>.+): upload a \.csv, \.tsv or \.jsonl file\.",
     "不支持的文件类型 {kind}：请上传 .csv、.tsv 或 .jsonl 文件。"),
    (r"The file is too large \((?P<size>[\d.]+) MB\); the limit is (?P<limit>[\d.]+) MB \(PLM_MAX_UPLOAD_MB\)\.",
     "文件太大（{size} MB）；上限为 {limit} MB（PLM_MAX_UPLOAD_MB）。"),
    (r"The file has (?P<rows>\d+) rows; the limit is (?P<limit>\d+) \(PLM_MAX_UPLOAD_ROWS\)\. "
     r"Split it or keep the first rows\.", "文件有 {rows} 行；上限为 {limit} 行（PLM_MAX_UPLOAD_ROWS）。请拆分文件或只保留前面的行。"),
    (r"The file is not UTF-8 text \(invalid byte at position (?P<pos>\d+)\); save it with UTF-8 encoding and "
     r"upload it again\.", "文件不是 UTF-8 文本（第 {pos} 个字节无效）；请用 UTF-8 编码保存后重新上传。"),
    (r"The file has no column (?P<name>.+); its columns are: (?P<columns>.*)\.", "文件没有 {name} 列；它的列是：{columns}。"),
    (r"Upload a CSV, TSV or JSONL file first\.", "请先上传 CSV、TSV 或 JSONL 文件。"),
    (r"Choose the text column\.", "请选择文本列。"),
    # Training jobs, Models panel
    (r"Fine-tuning failed: (?P<detail>.*)", "微调失败：{detail}"),
    (r"Pretraining failed: (?P<detail>.*)", "预训练失败：{detail}"),
    # Pretrain corpus
    (r"The corpus is empty\. Paste text, upload \.txt files or use the bundled corpus: (?P<min_need>.+)\.",
     "语料为空。请粘贴文本、上传 .txt 文件或使用内置语料：{min_need}。"),
    (r"The corpus is too small \((?P<docs>\d+) documents, (?P<sentences>\d+) sentences, (?P<pairs>\d+) with two "
     r"sentences or more\); the minimum is (?P<min_need>.+)\.",
     "语料太少（{docs} 篇文档、{sentences} 个句子，{pairs} 篇有两个或更多句子）；要求{min_need}。"),
]
_ZH_COMPILED = [(re.compile(pattern, re.DOTALL), template) for pattern, template in _ZH]

# Sentences that come joined with others in one notice (the Attention tab's): translated in place.
_ZH_SENTENCES: list[tuple[str, str]] = [
    (r"The input has (?P<total>\d+) tokens; only the first (?P<kept>\d+) are shown \(limit (?P<limit>\d+)\)\.",
     "输入有 {total} 个词元；只显示前 {kept} 个（上限 {limit}）。"),
    (r"Cut from text (?P<segment>[AB]): “(?P<snippet>.*?)”\.", "从文本 {segment} 截去：“{snippet}”。"),
    (r"The (?P<word_view>head view|model view) shows layers (?P<first>\d+)–(?P<last>\d+) of 0–(?P<top>\d+) to keep "
     r"the page responsive; pick another layer or shorten the text to see the others\.",
     "为了页面流畅，{word_view}只显示第 {first}–{last} 层（共 0–{top} 层）；选择其他层或缩短文本可查看其余各层。"),
]
_ZH_SENTENCES_COMPILED = [(re.compile(pattern, re.DOTALL), template) for pattern, template in _ZH_SENTENCES]


def _fields(match: re.Match) -> dict[str, str]:
    fields = {}
    for key, value in match.groupdict().items():
        value = value or ""
        if key.startswith("word_"):
            value = _word(value)
        elif key.startswith("min_"):
            value = _minimum(value)
        fields[key] = value
    fields["own_or"] = f"（或 {fields['own']}）" if fields.get("own") else ""
    return fields


# Chinese templates of the model layer's message codes (model_utils.errors): translation by code.
_ZH_BY_CODE: dict[str, str] = {}


def add_translations(zh: Mapping[str, str]) -> None:
    """Register Chinese templates by message code (a test checks them against the defined codes)."""
    _ZH_BY_CODE.update(zh)


def untranslated_codes() -> list[str]:
    """Defined message codes with no Chinese template (a test keeps this empty)."""
    return sorted(set(codes()) - set(_ZH_BY_CODE))


def translations_without_code() -> list[str]:
    """Chinese templates whose code the model layer never defines (a test keeps this empty)."""
    return sorted(set(_ZH_BY_CODE) - set(codes()))


define({  # notices of the Models tab
    "models.unloaded": "Unloaded {count} model(s).",
    "models.kept": "{kept} model(s) used in the last {minutes} minutes were kept: only the admin token "
                   "(PLM_ADMIN_TOKEN) unloads models others may be using.",
    "models.deleted": "Deleted local:{name}.",
    "checkpoints.removed": "🧹 To stay within the checkpoints folder's disk budget (PLM_CHECKPOINTS_MAX_MB, "
                           "PLM_CHECKPOINTS_MAX_COUNT), the oldest checkpoints made in the app were removed: {names}.",
})

# Names of text boxes in input messages (model_utils.inputs.FIELDS keys).
_ZH_FIELDS = {"text": "文本", "second text": "第二段文本", "sentence A": "句子 A", "sentence B": "句子 B",
              "paragraph": "段落", "candidate words": "候选词列表", "probe sentence": "探针句",
              "sentences": "句子列表", "word": "词"}

add_translations({
    "input.not_text": "{what_zh}必须是文本，而不是 {kind}。",
    "input.empty": "{what_zh}为空：请输入文本。",
    "input.too_long": "{what_zh}有 {length:,} 个字符；上限为 {limit:,} 个字符（PLM_MAX_TEXT_CHARS）。请缩短。",
    "checkpoints.too_big": "这次训练大约要保存 {needed_mb:,.0f} MB，而检查点文件夹最多只能占用 {limit_mb:,.0f} MB"
                           "（PLM_CHECKPOINTS_MAX_MB），其中 {fixed_mb:,.0f} MB 是应用不能删除的检查点。请使用 LoRA"
                           "（只保存小的适配器而不是完整副本）、换一个更小的基础模型，或请运行本应用的人腾出空间。",
    "checkpoints.not_found": "没有名为 local:{name} 的检查点。",
    "checkpoints.not_yours": "local:{name} 不是在这个浏览器会话中创建的，因此不能在这里删除（请联系运行本应用的人）。",
    "checkpoints.not_from_app": "local:{name} 不是由本应用创建的；只有运行本应用的人才能删除它。",
    "models.unloaded": "已卸载 {count} 个模型。",
    "models.kept": "最近 {minutes} 分钟内用过的 {kept} 个模型被保留：只有管理员令牌（PLM_ADMIN_TOKEN）"
                   "才能卸载别人可能正在使用的模型。",
    "models.deleted": "已删除 local:{name}。",
    "checkpoints.removed": "🧹 为了不超出检查点文件夹的磁盘预算（PLM_CHECKPOINTS_MAX_MB、PLM_CHECKPOINTS_MAX_COUNT），"
                           "已删除应用中最早创建的检查点：{names}。",
    "server.unexpected": "服务器出错了（错误编号 {error_id}）；详细信息在服务器日志中。请重试，或把这个编号告诉运行本应用的人。",
})


def say(code: str, **params: Any) -> str:
    """The text of message ``code`` in the language of the request being answered (a notice or status)."""
    if chinese_request() and code in _ZH_BY_CODE:
        return _ZH_BY_CODE[code].format(**params)
    return message(code, **params)


def localize_notice(notice: str) -> str:
    """A result's notice in the language of the request being answered (by code for a ``Notice``)."""
    code = getattr(notice, "code", None)
    if code is not None and chinese_request() and code in _ZH_BY_CODE:
        return _ZH_BY_CODE[code].format(**notice.params)
    return localized(str(notice))


def localize_error(err: Exception, language: str | None) -> str:
    """The message of ``err`` in ``language``: by code for a UserError, else by pattern."""
    if isinstance(err, UserError) and is_chinese(language) and err.code in _ZH_BY_CODE:
        what = err.params.get("what")
        return _ZH_BY_CODE[err.code].format(**err.params, what_zh=_ZH_FIELDS.get(what, what))
    return localize(str(err), language)


def localize(message: str, language: str | None) -> str:
    """``message`` in ``language`` ("zh..." gets Chinese where a pattern matches; otherwise unchanged)."""
    if not is_chinese(language) or not isinstance(message, str):
        return message
    for pattern, template in _ZH_COMPILED:
        found = pattern.fullmatch(message.strip())
        if found:
            return template.format(**_fields(found))
    for pattern, template in _ZH_SENTENCES_COMPILED:
        message = pattern.sub(lambda found, template=template: template.format(**_fields(found)), message)
    return message


def preferred_language(accept_language: str | None) -> str:
    """The first language of an ``Accept-Language`` header ("zh-CN,zh;q=0.9,en;q=0.8" -> "zh-CN"); "en" if none."""
    first = (accept_language or "").split(",")[0].split(";")[0].strip()
    return first or "en"


def _current(request: Any = None) -> Any:
    """``request``, or the request being answered (Gradio's context); a batched event's first one."""
    if request is None:
        from gradio.context import LocalContext

        request = LocalContext.request.get(None)
    if isinstance(request, (list, tuple)):
        request = request[0] if request else None
    return request


def _header(request: Any, name: str) -> str | None:
    headers = getattr(request, "headers", None)
    try:
        return headers.get(name) if headers is not None else None
    except Exception:  # noqa: BLE001 - an odd request object
        return None


def from_api_client(request: Any = None) -> bool:
    """True when the request comes from an API client, not the app's page in a browser.

    Gradio's clients say who they are in ``x-gradio-user``: "api" (``gradio_client``, the JS client
    used as an API), "mcp" (Gradio's MCP server); the app's own page sends "app".
    """
    return (_header(_current(request), "x-gradio-user") or "").strip().lower() in ("api", "mcp")


def for_display(message: str, request: Any = None) -> str:
    """``message`` as the browser should show it in an error box, which renders HTML.

    Plain-text messages quote ``<mask>``, ``local:<name>`` or the user's own input; unescaped, the
    browser takes them for tags and drops the rest of the message. API clients read the text as is.
    """
    return message if from_api_client(request) else html.escape(message, quote=False)


# ASCII punctuation that Markdown (or Gradio's LaTeX and HTML rendering) could read as markup; ":" so
# that a bare "https://..." is not turned into a link by the GFM autolink rule (which ignores escapes).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&$:])")


def markdown_text(text: str) -> str:
    """Plain ``text`` (a notice or a label that may quote user input) shown literally inside Markdown.

    Every character Markdown could read as markup is backslash-escaped, so an uploaded label such
    as ``<img src=x>`` or ``[click](http://...)`` is shown as typed, never as an image or a link.
    """
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def request_language(request: Any = None) -> str:
    """The preferred language of ``request``, or of the request being answered (Gradio's context)."""
    return preferred_language(_header(_current(request), "accept-language"))


def localized(message: str) -> str:
    """``message`` in the language of the request being answered."""
    return localize(message, request_language())


def is_chinese(language: str | None) -> bool:
    """True for a Chinese language tag ("zh", "zh-CN", "zh-TW", ...)."""
    return bool(language) and language.lower().startswith("zh")


def chinese_request(request: Any = None) -> bool:
    """True when the request being answered prefers Chinese (``Accept-Language: zh...``)."""
    return is_chinese(request_language(request))


def in_language(english: Any, chinese: Any) -> Any:
    """``chinese`` when the request being answered prefers Chinese, else ``english`` (texts made per request)."""
    return chinese if chinese_request() else english


def localized_table(rows: list[list[Any]], english: list[str], chinese: list[str]) -> dict:
    """A ``gr.Dataframe`` value whose column headers are in the language of the request being answered."""
    return {"headers": in_language(english, chinese), "data": rows}
