"""Messages in the user's language, by code: the catalogue is complete, parameters are kept, text is escaped."""

from __future__ import annotations

import html
import importlib
import pkgutil
import re
from pathlib import Path
from typing import Callable

import gradio as gr
import pytest

from demo import i18n, messages
from demo.common import user_errors
from demo.messages import preferred_language, request_language, say, translate
from model_utils.errors import Notice, UserError, error_record

CJK = re.compile(r"[\u4e00-\u9fff]")
ENGLISH_WORDS = re.compile(r"\b(the|is|are|an|please|must|choose|write|file|rows?)\b", re.IGNORECASE)


@pytest.fixture(scope="module", autouse=True)
def every_module_defines_its_codes() -> None:
    """Import every module of the model layer and of the UI: each defines its codes on import."""
    import classroom
    import demo
    import model_utils

    for package in (model_utils, classroom, demo):
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package.__name__}.{module.name}")


def message_of(call: Callable[[], object]) -> ValueError:
    with pytest.raises(ValueError) as caught:
        call()
    return caught.value


def real_errors(tmp_path: Path) -> dict[str, ValueError]:
    """Errors raised by the real code for common bad input (needs tiny_env)."""
    import model_utils
    from model_utils import registry
    from model_utils.classify import check_text, load_classifier
    from model_utils.manager import get_manager
    from model_utils.pretrain_session import check_corpus, documents_from_text
    from model_utils.tables import read_table

    empty_csv = tmp_path / "empty.csv"
    empty_csv.write_text("text,label\n", encoding="utf-8")
    exe = tmp_path / "run.exe"
    exe.write_bytes(b"MZ")
    return {
        "empty text": message_of(lambda: model_utils.fill_mask("   ", None, 5)),
        "no mask": message_of(lambda: model_utils.fill_mask("no mask here", None, 5)),
        "too many masks": message_of(lambda: model_utils.fill_mask("[MASK] " * 60, None, 5)),
        "bad top-k": message_of(lambda: model_utils.fill_mask("the [MASK] .", None, 99)),
        "nsp empty": message_of(lambda: model_utils.next_sentence("", "B.", None)),
        "paragraph": message_of(lambda: model_utils.score_paragraph("Only one sentence.", None)),
        "classify empty": message_of(lambda: check_text("  ")),
        "not a classifier": message_of(lambda: load_classifier("local:tiny-mlm")),
        "no head": message_of(lambda: get_manager().get("local:tiny-distilbert", "next-sentence")),
        "unknown local": message_of(lambda: registry.resolve("local:nope")),
        "bad id": message_of(lambda: registry.resolve("bad id with spaces")),
        "no data rows": message_of(lambda: read_table(empty_csv)),
        "file type": message_of(lambda: read_table(exe)),
        "empty corpus": message_of(lambda: check_corpus([])),
        "small corpus": message_of(lambda: check_corpus(documents_from_text("One sentence. Two sentences."))),
        "hub offline": message_of(lambda: get_manager().get("bert-base-uncased", "masked-lm")),
    }


def test_common_errors_have_codes_and_read_as_chinese(tiny_env: Path, tmp_path: Path) -> None:
    for case, error in real_errors(tmp_path).items():
        assert isinstance(error, UserError), (case, error)
        chinese = translate(error, "zh-CN")
        assert chinese != str(error) and CJK.search(chinese), (case, str(error))
        # no English sentence left over: what stays Latin is names, tokens and numbers
        assert not ENGLISH_WORDS.search(chinese), (case, chinese)
        assert translate(error, "en-US") == str(error)


def test_the_catalogue_is_complete_both_ways() -> None:
    assert i18n.untranslated_codes() == []
    assert i18n.codes_without_english() == []


def test_parameters_are_kept_and_words_inside_them_translated() -> None:
    from model_utils.inputs import check_text

    error = message_of(lambda: check_text("x" * 30_000, "sentence B"))
    assert isinstance(error, UserError) and error.code == "input.too_long" and error.params["length"] == 30_000
    assert translate(error, "zh-CN") == "句子 B有 30,000 个字符；上限为 20,000 个字符（PLM_MAX_TEXT_CHARS）。请缩短。"
    head = UserError("model.no_head", name="local:x", head="next-sentence", head_words="next-sentence-prediction")
    assert translate(head, "zh-CN") == "local:x 没有下一句预测头；请选择其他模型。"
    assert str(head) == "local:x has no next-sentence-prediction head; choose another model."


def test_notices_and_error_records_translate_by_code_after_a_json_round_trip() -> None:
    notice = Notice("fill_mask.candidate_unknown", word="zzz")
    record = error_record(UserError("fill_mask.too_many_masks", count=60, limit=5))
    assert translate(notice, "zh-CN") == "候选词 'zzz' 不在词表中，已忽略。"
    assert translate(record, "zh-CN") == "掩码太多（60 个）；最多允许 5 个。"
    assert translate(record, "en") == record["error"] == "Too many masks (60); at most 5 are allowed."
    assert translate({"error": "a library's own words", "code": None, "params": {}}, "zh-CN") == "a library's own words"
    assert translate(ValueError("no code at all"), "zh-CN") == "no code at all"


def test_preferred_language_reads_accept_language() -> None:
    assert preferred_language("zh-CN,zh;q=0.9,en;q=0.8") == "zh-CN"
    assert preferred_language("en-US,en;q=0.9,zh-CN;q=0.8") == "en-US"
    assert preferred_language(None) == preferred_language("") == "en"

    class Request:
        headers = {"accept-language": "zh-CN,zh;q=0.9"}

    assert request_language(Request()) == "zh-CN"
    assert request_language([Request()]) == "zh-CN"  # a batched event's requests
    assert request_language(object()) == "en"


class FakeRequest:
    def __init__(self, **headers: str) -> None:
        self.headers = {k.replace("_", "-"): v for k, v in headers.items()}


def _raise_in(request: FakeRequest, handler: Callable[[], None]) -> str:
    from gradio.context import LocalContext

    token = LocalContext.request.set(request)
    try:
        with pytest.raises(gr.Error) as caught:
            handler()
    finally:
        LocalContext.request.reset(token)
    return caught.value.message


def test_user_errors_answer_in_the_request_language_escaped_only_for_the_page() -> None:
    @user_errors
    def handler() -> None:
        raise UserError("model.invalid_id", name="x <y>")

    page_zh = _raise_in(FakeRequest(x_gradio_user="app", accept_language="zh-CN"), handler)
    assert page_zh.startswith("'x &lt;y&gt;' 不是有效的模型名")
    api = _raise_in(FakeRequest(x_gradio_user="api"), handler)
    assert api == str(UserError("model.invalid_id", name="x <y>")) and "<y>" in api


def test_unexpected_errors_show_an_id_never_their_class(caplog: pytest.LogCaptureFixture) -> None:
    @user_errors
    def handler() -> None:
        raise KeyError("/srv/secret/path")

    shown = _raise_in(FakeRequest(accept_language="zh-CN"), handler)
    assert "错误编号" in shown and "KeyError" not in shown and "/srv" not in shown
    error_id = re.search(r"错误编号 (\w+)", shown).group(1)
    assert any(error_id in record.getMessage() for record in caplog.records)


def test_models_status_follows_the_language(tiny_env: Path) -> None:
    from gradio.context import LocalContext

    from demo import models_panel

    for language, words, headers in (("zh-CN", ("**设备：**", "**检查点：**", "**缓存：**", "个模型（最多 4 个）"), "检查点"),
                                     ("en-US", ("**Device:**", "**Checkpoints:**", "**Cache:** 0 of at most 4 models"),
                                      "Checkpoint")):
        token = LocalContext.request.set(FakeRequest(accept_language=language))
        try:
            status, table, _ = models_panel.models_status()
        finally:
            LocalContext.request.reset(token)
        assert all(word in status for word in words), status
        assert table["headers"][0] == headers
        assert bool(CJK.search(status)) == (language == "zh-CN")


def test_say_fills_ui_codes_in_both_languages() -> None:
    assert say("job.step", language="zh-CN", step=3, total=10) == "🏋️ 第 3 / 10 步"
    assert say("job.step", language="en", step=3, total=10) == "🏋️ Step 3 / 10"
    assert say("models.unloaded", language="en", count=2) == "Unloaded 2 model(s)."


@pytest.mark.parametrize("text", ["Candidate '<b>' & co", "<img src=x onerror=alert(1)>", "[click](http://evil.example)",
                                  "**bold** _it_ `code` $$x$$ | a | b |", "# heading", "1. item", "&lt;b&gt;"])
def test_markdown_text_is_shown_literally_never_as_markup(text: str) -> None:
    from markdown_it import MarkdownIt

    rendered = MarkdownIt().enable("table").render(messages.markdown_text(text))
    assert rendered == f"<p>{html.escape(text, quote=False)}</p>\n"  # one paragraph of the text as typed


def test_fill_mask_errors_are_escaped_once() -> None:
    from gradio.context import LocalContext

    from demo import fill_mask_tab

    message = "No mask found: write [MASK] (or <mask>) where a word is missing."
    good = {"model": "m2", "joint": None, "notices": [],
            "predictions": [[{"token_str": "mat", "score": 0.5, "token": 1, "sequence": "x"}]]}
    token = LocalContext.request.set(FakeRequest(x_gradio_user="app"))
    try:
        with pytest.raises(gr.Error) as caught:
            fill_mask_tab.render_fill_mask({"text": "t", "results": [{"model": "m1", "error": message}]})
        assert caught.value.message == "m1: No mask found: write [MASK] (or &lt;mask&gt;) where a word is missing."
        notices = fill_mask_tab.render_fill_mask({"text": "the [MASK].", "results": [
            {"model": "m1", "error": message}, good]})[3]
        assert notices == "⚠️ `m1`: " + messages.markdown_text(message)
    finally:
        LocalContext.request.reset(token)
