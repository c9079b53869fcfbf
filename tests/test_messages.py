"""Messages in the user's language: the Chinese catalogue matches the real English messages."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Callable

import gradio as gr
import pytest

from demo import messages
from demo.common import user_errors
from demo.fill_mask_tab import top_k_value
from demo.messages import localize, localize_error, preferred_language, request_language

CJK = re.compile(r"[\u4e00-\u9fff]")


def message_of(call: Callable[[], object]) -> ValueError:
    with pytest.raises(ValueError) as caught:
        call()
    return caught.value


def real_messages(tmp_path: Path) -> dict[str, ValueError | str]:
    """Errors raised by the real code for common bad input (needs tiny_env)."""
    from model_utils import registry
    from model_utils.classify import check_text, load_classifier
    from model_utils.fill_mask import check_request
    from model_utils.next_sentence import next_sentence, score_paragraph
    from model_utils.batch import read_table
    from model_utils.manager import get_manager
    from model_utils.pretrain_session import check_corpus, documents_from_text

    empty_csv = tmp_path / "empty.csv"
    empty_csv.write_text("text,label\n", encoding="utf-8")
    exe = tmp_path / "run.exe"
    exe.write_bytes(b"MZ")
    return {
        "empty text": message_of(lambda: check_request("   ", None, 5, None)),
        "no mask": message_of(lambda: check_request("no mask here", None, 5, None)),
        "too many masks": message_of(lambda: check_request("[MASK] " * 60, None, 5, None)),
        "bad top-k": message_of(lambda: top_k_value(99)),
        "nsp empty": message_of(lambda: next_sentence("", "B.", None)),
        "paragraph": message_of(lambda: score_paragraph("Only one sentence.", None)),
        "classify empty": message_of(lambda: check_text("  ")),
        "not a classifier": message_of(lambda: load_classifier("local:tiny-mlm")),
        "no head": message_of(lambda: get_manager().get("local:tiny-distilbert", "next-sentence")),
        "unknown local": message_of(lambda: registry.resolve("local:nope")),
        "bad id": message_of(lambda: registry.resolve("bad id with spaces")),
        "no data rows": message_of(lambda: read_table(empty_csv)),
        "file type": message_of(lambda: read_table(exe)),
        "empty corpus": message_of(lambda: check_corpus([])),
        "small corpus": message_of(lambda: check_corpus(documents_from_text("One sentence. Two sentences."))),
        "hub offline": ("bert-base-uncased is a Hugging Face Hub model and the Hub is unreachable (offline mode); "
                        "choose a bundled or local model."),
    }


def test_every_common_message_has_a_chinese_translation(tiny_env: Path, tmp_path: Path) -> None:
    for case, error in real_messages(tmp_path).items():
        english = str(error)
        chinese = localize_error(error, "zh-CN") if isinstance(error, Exception) else localize(error, "zh-CN")
        assert chinese != english and CJK.search(chinese), (case, english)
        # no English sentence left over: what stays Latin is names, tokens and numbers
        assert not re.search(r"\b(the|is|are|an|please|must|choose|write)\b", chinese), (case, chinese)


def test_every_message_code_has_a_chinese_template_and_no_template_lacks_a_code() -> None:
    import importlib
    import pkgutil

    import model_utils

    for module in pkgutil.iter_modules(model_utils.__path__):  # every module defines its codes on import
        importlib.import_module(f"model_utils.{module.name}")
    assert messages.untranslated_codes() == []
    assert messages.translations_without_code() == []


def test_user_errors_are_translated_by_code_with_their_parameters() -> None:
    from model_utils.errors import UserError
    from model_utils.inputs import check_text

    error = message_of(lambda: check_text("x" * 30_000, "sentence B"))
    assert isinstance(error, UserError) and error.code == "input.too_long"
    assert error.params["length"] == 30_000
    assert localize_error(error, "zh-CN") == "句子 B有 30,000 个字符；上限为 20,000 个字符（PLM_MAX_TEXT_CHARS）。请缩短。"
    assert localize_error(error, "en-US") == str(error)


def test_names_and_numbers_inside_messages_are_kept() -> None:
    assert localize("Too many masks (60); at most 20 are allowed.", "zh-CN") == "掩码太多（60 个）；最多允许 20 个。"
    assert localize("No mask found: write [MASK] (or <mask>) where a word is missing.", "zh") == (
        "没有找到掩码：请在缺词的位置写 [MASK]（或 <mask>）。")
    assert localize("local:x has no next-sentence-prediction head; choose another model.", "zh-CN") == (
        "local:x 没有下一句预测头；请选择其他模型。")
    detail = "IndexError: index out of range in self"
    assert localize(f"Fine-tuning failed: {detail}", "zh-TW") == f"微调失败：{detail}"


def test_english_and_unknown_messages_are_unchanged() -> None:
    message = "Too many masks (60); at most 20 are allowed."
    for language in ("en", "en-US", "fr-FR", "", None):
        assert localize(message, language) == message
    assert localize("Something nobody translated.", "zh-CN") == "Something nobody translated."


def test_preferred_language_reads_accept_language() -> None:
    assert preferred_language("zh-CN,zh;q=0.9,en;q=0.8") == "zh-CN"
    assert preferred_language("en-US,en;q=0.9,zh-CN;q=0.8") == "en-US"
    assert preferred_language(None) == preferred_language("") == "en"

    class Request:
        headers = {"accept-language": "zh-CN,zh;q=0.9"}

    assert request_language(Request()) == "zh-CN"
    assert request_language([Request()]) == "zh-CN"  # a batched event's requests
    assert request_language(object()) == "en"


def test_user_errors_answer_in_the_language_of_the_request(monkeypatch: pytest.MonkeyPatch) -> None:
    language = {"value": "zh-CN"}
    monkeypatch.setattr(messages, "request_language", lambda request=None: language["value"])

    @user_errors
    def handler(kind: str) -> None:
        if kind == "value":
            raise ValueError("Please enter a text containing [MASK].")
        raise gr.Error("Choose the text column.", print_exception=False)

    for kind, chinese in (("value", "请输入含 [MASK] 的文本。"), ("gradio", "请选择文本列。")):
        with pytest.raises(gr.Error) as caught:
            handler(kind)
        assert caught.value.message == chinese
    language["value"] = "en-US"
    with pytest.raises(gr.Error) as caught:
        handler("value")
    assert caught.value.message == "Please enter a text containing [MASK]."


def test_attention_notices_are_translated_sentence_by_sentence() -> None:
    from model_utils.attention import truncation_message
    from model_utils.attention_views import _layers_notice

    cut = truncation_message({"truncated": True, "total_tokens": 700, "kept_tokens": 512, "max_tokens": 512,
                              "dropped": {"1": "the tail of B."}})
    notice = " ".join([cut, _layers_notice("head view", [3, 4, 5], 12)])
    chinese = localize(notice, "zh-CN")
    assert chinese == ("输入有 700 个词元；只显示前 512 个（上限 512）。 从文本 B 截去：“the tail of B.”。 "
                       "为了页面流畅，注意力头视图只显示第 3–5 层（共 0–11 层）；选择其他层或缩短文本可查看其余各层。")
    assert localize(notice, "en-US") == notice


class FakeRequest:
    def __init__(self, **headers: str) -> None:
        self.headers = {k.replace("_", "-"): v for k, v in headers.items()}


def test_messages_are_escaped_for_the_page_but_not_for_api_clients() -> None:
    message = "No mask found: write [MASK] (or <mask>) where a word is missing & retry."
    escaped = "No mask found: write [MASK] (or &lt;mask&gt;) where a word is missing &amp; retry."
    assert messages.for_display(message, FakeRequest(x_gradio_user="app")) == escaped  # the app's page
    assert messages.for_display(message, FakeRequest()) == escaped  # a plain HTTP client
    for client in ("api", "mcp"):  # gradio_client, Gradio's MCP server
        assert messages.for_display(message, FakeRequest(x_gradio_user=client)) == message



@pytest.mark.parametrize("text", ["Candidate '<b>' & co", "<img src=x onerror=alert(1)>", "[click](http://evil.example)",
                                  "**bold** _it_ `code` $$x$$ | a | b |", "# heading", "1. item", "&lt;b&gt;"])
def test_markdown_text_is_shown_literally_never_as_markup(text: str) -> None:
    from markdown_it import MarkdownIt

    rendered = MarkdownIt().enable("table").render(messages.markdown_text(text))
    assert rendered == f"<p>{html.escape(text, quote=False)}</p>\n"  # one paragraph of the text as typed


def test_user_errors_escape_only_for_the_page(monkeypatch: pytest.MonkeyPatch) -> None:
    from gradio.context import LocalContext

    @user_errors
    def handler() -> None:
        raise ValueError("'x <y>' is not a valid model id (expected e.g. 'local:<name>')")

    for request, expected in ((FakeRequest(x_gradio_user="app"), "'x &lt;y&gt;' is not a valid model id "
                                                                   "(expected e.g. 'local:&lt;name&gt;')"),
                              (FakeRequest(x_gradio_user="api"), "'x <y>' is not a valid model id "
                                                                   "(expected e.g. 'local:<name>')")):
        token = LocalContext.request.set(request)
        try:
            with pytest.raises(gr.Error) as caught:
                handler()
        finally:
            LocalContext.request.reset(token)
        assert caught.value.message == expected


def test_models_status_follows_the_language(tiny_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from demo import models_panel

    language = {"value": "zh-CN"}
    monkeypatch.setattr(messages, "request_language", lambda request=None: language["value"])
    status, table, _ = models_panel.models_status()
    assert all(word in status for word in ("**设备：**", "**检查点：**", "**缓存：**", "个模型（最多 4 个）"))
    assert table["headers"] == models_panel.TABLE_HEADERS_ZH
    language["value"] = "en-US"
    status, table, _ = models_panel.models_status()
    assert all(word in status for word in ("**Device:**", "**Checkpoints:**", "**Cache:** 0 of at most 4 models"))
    assert table["headers"] == models_panel.TABLE_HEADERS and not CJK.search(status)


def test_training_status_lines_follow_the_language(monkeypatch: pytest.MonkeyPatch) -> None:
    from demo import pretrain_plots

    events = [{"kind": "train", "step": 3, "mlm_loss": 1.0, "nsp_loss": 0.5}]
    monkeypatch.setattr(messages, "request_language", lambda request=None: "zh-CN")
    assert pretrain_plots.progress_line(events, 10) == "🏋️ 第 3 / 10 步：MLM 损失 1.000，NSP 损失 0.500"
    assert pretrain_plots.progress_line([], 10) == "⚙️ 正在加载基础模型和文本…"
    monkeypatch.setattr(messages, "request_language", lambda request=None: "en")
    assert pretrain_plots.progress_line(events, 10) == "🏋️ Step 3 / 10: MLM loss 1.000, NSP loss 0.500"


def test_fill_mask_errors_are_escaped_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from gradio.context import LocalContext

    from demo import fill_mask_tab

    message = "No mask found: write [MASK] (or <mask>) where a word is missing."
    good = {"model": "m2", "joint": None, "notices": [],
            "predictions": [[{"token_str": "mat", "score": 0.5, "token": 1, "sequence": "x"}]]}
    token = LocalContext.request.set(FakeRequest(x_gradio_user="app"))
    try:
        with pytest.raises(gr.Error) as caught:
            fill_mask_tab.user_errors(fill_mask_tab.render_fill_mask)(
                {"text": "t", "results": [{"model": "m1", "error": message}]})
        assert caught.value.message == "m1: No mask found: write [MASK] (or &lt;mask&gt;) where a word is missing."
        notices = fill_mask_tab.render_fill_mask({"text": "the [MASK].", "results": [
            {"model": "m1", "error": message}, good]})[3]
        assert notices == "⚠️ `m1`: " + messages.markdown_text(message)
    finally:
        LocalContext.request.reset(token)
