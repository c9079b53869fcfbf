"""What the server writes, in the user's language: errors, notices and status lines, by code.

The model layer says what went wrong or what to know as a code and its parameters
(``model_utils.errors.UserError`` and ``Notice``; a batch item's error as ``{"error", "code",
"params"}``); its English text is its Python API and what ``gradio_client`` reads. The UI says the
same in the request's language (its ``Accept-Language``, the browser's language, which Gradio's
``gr.I18n`` labels follow too) from the catalogue in :mod:`demo.i18n`: :func:`translate` for an
error, a notice or an error record, :func:`say` for a code of the UI's own (a status line). A
code without a Chinese template falls back to English; a test keeps the catalogue complete.

Text that quotes user input is escaped for where it is shown: :func:`for_display` for the
browser's error box (HTML), :func:`markdown_text` inside Markdown.
"""

from __future__ import annotations

import html
import re
from typing import Any

from demo import i18n
from model_utils.errors import codes, message


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


def request_language(request: Any = None) -> str:
    """The preferred language of ``request``, or of the request being answered (Gradio's context)."""
    return preferred_language(_header(_current(request), "accept-language"))


def is_chinese(language: str | None) -> bool:
    """True for a Chinese language tag ("zh", "zh-CN", "zh-TW", ...)."""
    return bool(language) and language.lower().startswith("zh")


def chinese_request(request: Any = None) -> bool:
    """True when the request being answered prefers Chinese (``Accept-Language: zh...``)."""
    return is_chinese(request_language(request))


def _language(language: str | None) -> str:
    return language if language is not None else request_language()


def say(code: str, /, language: str | None = None, **params: Any) -> str:
    """The text of ``code`` (a UI code of the catalogue, or a model-layer code) in ``language``
    (default: the request being answered), with ``params`` filled in."""
    template = i18n.template(code, _language(language))
    if template is None:
        return message(code, **params)
    return template.format(**params, **i18n.translated_params(params, _language(language)))


def translate(item: Any, language: str | None = None) -> str:
    """An error, a notice or an error record in ``language``: by its code where it has one, else as is.

    ``item``: a ``UserError``/``Notice`` (code and params attached), a batch item's error record
    ``{"error", "code", "params"}``, or any other exception or text (shown in its own words).
    """
    if isinstance(item, dict):
        code, params, text = item.get("code"), item.get("params") or {}, str(item.get("error", ""))
    else:
        code, params, text = getattr(item, "code", None), getattr(item, "params", {}), str(item)
    if code and (code in codes() or i18n.template(code, "en") is not None):
        return say(code, language, **params)
    return text


def from_api_client(request: Any = None) -> bool:
    """True when the request comes from an API client, not the app's page in a browser.

    Gradio's clients say who they are in ``x-gradio-user``: "api" (``gradio_client``, the JS client
    used as an API), "mcp" (Gradio's MCP server); the app's own page sends "app".
    """
    return (_header(_current(request), "x-gradio-user") or "").strip().lower() in ("api", "mcp")


def for_display(message_text: str, request: Any = None) -> str:
    """``message_text`` as the browser should show it in an error box, which renders HTML.

    Plain-text messages quote ``<mask>``, ``local:<name>`` or the user's own input; unescaped, the
    browser takes them for tags and drops the rest of the message. API clients read the text as is.
    """
    return message_text if from_api_client(request) else html.escape(message_text, quote=False)


# ASCII punctuation that Markdown (or Gradio's LaTeX and HTML rendering) could read as markup; ":" so
# that a bare "https://..." is not turned into a link by the GFM autolink rule (which ignores escapes).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&$:])")


def markdown_text(text: str) -> str:
    """Plain ``text`` (a notice or a label that may quote user input) shown literally inside Markdown.

    Every character Markdown could read as markup is backslash-escaped, so an uploaded label such
    as ``<img src=x>`` or ``[click](http://...)`` is shown as typed, never as an image or a link.
    """
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def table(rows: list[list[Any]], header_keys: list[str], language: str | None = None) -> dict:
    """A ``gr.Dataframe`` value whose column headers (catalogue keys) are in ``language``."""
    return {"headers": [i18n.text(key, _language(language)) for key in header_keys], "data": rows}
