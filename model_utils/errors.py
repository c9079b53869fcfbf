"""Errors a user caused, with stable codes: ``UserError(code, **params)``.

The model layer says what went wrong once, as a code and its parameters; ``str(err)`` is the
English sentence (the Python API's and ``gradio_client``'s answer), and the UI translates by code
(``demo.i18n``), never by parsing the English. Each module defines its own codes next to the
code that raises them::

    from model_utils.errors import UserError, define

    define({"fill_mask.no_mask": "No mask found: write [MASK] where a word is missing."})
    raise UserError("fill_mask.no_mask")

Templates use ``str.format`` fields (``{limit}``); a parameter that quotes user input should be
clipped by the caller. Notices (something the user should know, not an error) use the same
catalogue through :func:`message`.
"""

from __future__ import annotations

import logging
import re
import secrets
from typing import Any, Mapping

logger = logging.getLogger("plm_playground")

_MESSAGES: dict[str, str] = {}


def define(messages: Mapping[str, str]) -> None:
    """Register English templates by code; ValueError if a code is defined twice differently."""
    for code, template in messages.items():
        if _MESSAGES.get(code, template) != template:
            raise ValueError(f"Message code {code!r} is defined twice with different texts")
        _MESSAGES[code] = template


def message(code: str, /, **params: Any) -> str:
    """The English text of ``code`` with ``params`` filled in; KeyError for an unknown code."""
    return _MESSAGES[code].format(**params)


def codes() -> dict[str, str]:
    """Every defined code and its English template (for the translation-coverage test)."""
    return dict(_MESSAGES)


class Notice(str):
    """Something the user should know about a result (a cut input, an ignored candidate word).

    A ``str`` (results stay plain JSON: a notice serializes as its English text) that also carries
    its ``code`` and ``params`` while it is in this process, so the UI can say it in the user's
    language (``demo.messages.translate``).
    """

    code: str
    params: dict

    def __new__(cls, code: str, **params: Any) -> "Notice":
        text = super().__new__(cls, message(code, **params))
        text.code, text.params = code, params
        return text


class UserError(ValueError):
    """Bad input, an unknown or unusable model, a refused request: something the user can fix.

    A ``ValueError`` (so existing ``except ValueError`` paths keep working) whose ``str()`` is the
    English message; ``code`` and ``params`` let the UI say it in the user's language.
    """

    def __init__(self, code: str, /, **params: Any) -> None:
        self.code = code
        self.params = params
        super().__init__(message(code, **params))


define({
    "server.unexpected": "Something went wrong on the server (error id {error_id}); the details are in the "
                         "server log. Please try again, or give this id to whoever runs the app.",
})

# An absolute POSIX path of two or more parts (not inside a URL or a Hub id such as org/name).
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.~-])/(?:[\w.\-]+/)+[\w.\-]*")


def scrub_paths(text: str) -> str:
    """``text`` with absolute file paths shortened to their last part (``/srv/app/ckpt/x`` -> ``…/x``)."""
    return _ABSOLUTE_PATH.sub(lambda m: "…/" + (m.group(0).rstrip("/").rsplit("/", 1)[-1]), text)


def public_error(err: BaseException, context: str = "") -> ValueError:
    """What a user may be told about ``err``: never a server path, an exception class or a traceback.

    A :class:`UserError` as it is; another ``ValueError`` (bad input said by a library) with its
    paths scrubbed; anything else becomes ``UserError("server.unexpected")`` with a short id, and
    the full traceback goes to the log under that id.
    """
    if isinstance(err, UserError):
        return err
    if isinstance(err, ValueError):
        return ValueError(scrub_paths(str(err)))
    error_id = secrets.token_hex(4)
    logger.error("error id %s%s", error_id, f" ({context})" if context else "", exc_info=err)
    return UserError("server.unexpected", error_id=error_id)


def _plain(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def error_record(err: BaseException) -> dict:
    """An item's error inside a batch result, as plain data: ``{"error", "code", "params"}``.

    ``error`` is the English message (what API clients read); ``code`` and ``params`` let the UI
    say it in the user's language (``code`` is None for a library's ValueError).
    """
    shown = public_error(err)
    params = {k: _plain(v) for k, v in getattr(shown, "params", {}).items()}
    return {"error": str(shown), "code": getattr(shown, "code", None), "params": params}


def raise_if_error(record: dict) -> None:
    """Raise the error an :func:`error_record` holds (a UserError again when it had a code)."""
    if "error" not in record:
        return
    if record.get("code"):
        raise UserError(record["code"], **record.get("params", {}))
    raise ValueError(record["error"])
