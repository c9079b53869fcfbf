"""UI helpers shared by every tab: error conversion, model dropdowns built from the registry, examples and
result tables whose headers follow the page's language, clearing stale results, and ``TabParts`` (what a tab
gives app.py to wire across tabs)."""

from __future__ import annotations

import functools
import inspect
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

import gradio as gr
from gradio.i18n import I18nData

from demo.i18n import I18N, text
from demo.messages import for_display, request_language, translate
from model_utils.config import get_settings, hub_offline
from model_utils.errors import public_error
from model_utils.registry import choices, default_checkpoint

logger = logging.getLogger("plm_playground")

F = TypeVar("F", bound=Callable[..., Any])
MAX_MESSAGE_CHARS = 600  # error messages quote user input (a column, a label): keep them readable


def clip_message(message: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``message`` cut in the middle to at most ``limit`` characters, keeping its start and end."""
    if len(message) <= limit:
        return message
    head = (limit - 3) * 2 // 3
    return f"{message[:head]} … {message[head - limit + 3:]}"


def ui_error(message: str, **kwargs: Any) -> gr.Error:
    """A ``gr.Error`` showing ``message`` (already in the user's language), escaped for the browser's error box."""
    kwargs.setdefault("print_exception", False)
    return gr.Error(for_display(clip_message(message)), **kwargs)


def user_errors(fn: F) -> F:
    """Show any exception of ``fn`` as a ``gr.Error`` in the request's language; the app keeps serving.

    A user's mistake (a ``UserError``, or a library's ``ValueError``) in its own words, translated by
    its code; anything else as a short sentence with an error id (the traceback is logged under it).
    A generator function (a streaming handler) is wrapped as a generator. Messages are clipped to
    ``MAX_MESSAGE_CHARS`` and HTML-escaped for the browser's error box (which
    renders HTML) but not for API clients.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as err:  # noqa: BLE001 - the UI must keep serving
            raise ui_error(translate(public_error(err, getattr(fn, "__name__", "")))) from None

    @functools.wraps(fn)
    def generator_wrapper(*args: Any, **kwargs: Any) -> Any:  # a streaming handler fails while it is iterated
        try:
            yield from fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as err:  # noqa: BLE001 - the UI must keep serving
            raise ui_error(translate(public_error(err, getattr(fn, "__name__", "")))) from None

    return generator_wrapper if inspect.isgeneratorfunction(fn) else wrapper  # type: ignore[return-value]


def text_limit() -> int:
    """Most characters a text box takes (``PLM_MAX_TEXT_CHARS``); the server refuses longer texts too."""
    return get_settings().max_text_chars


def default_model(task: str) -> str:
    """The default checkpoint for ``task`` (a bundled one while offline)."""
    return default_checkpoint(task)


def model_choices(task: str) -> list[str]:
    """Registry choices for ``task``, with the default first-listed if it is not already there."""
    options = choices(task)
    default = default_model(task)
    return options if default in options else [default, *options]


def model_dropdown(task: str, *, multiselect: bool = False, max_choices: int | None = None,
                   elem_id: str | None = None) -> gr.Dropdown:
    """A model picker for ``task``: registry choices, default preselected, custom Hub ids allowed."""
    default = default_model(task)
    return gr.Dropdown(
        choices=model_choices(task),
        value=[default] if multiselect else default,
        multiselect=multiselect,
        max_choices=max_choices,
        allow_custom_value=True,
        label=I18N("model"),
        info=I18N("models_info_offline" if is_offline() else "models_info"),
        elem_id=elem_id,
    )


def is_offline() -> bool:
    """True when the app runs without the Hugging Face Hub."""
    return hub_offline()


def examples(rows: list[list[Any]], inputs: list[gr.components.Component], **kwargs: Any) -> gr.Examples:
    """``gr.Examples`` whose column headers are the inputs' labels, in the page's language.

    Gradio fills the headers from the inputs' labels but does not translate ``I18N`` labels there
    (they would show as raw ``__i18n__`` metadata): the headers are built in English and set in the
    page's language when it loads (:func:`in_language_on_load`).
    """
    block = gr.Examples(rows, inputs=inputs, label=I18N("examples"), **kwargs)
    keys = [c.label.key if isinstance(c.label, I18nData) else None for c in block.dataset._components]
    shown = [text(key) if key else (c.label or "") for key, c in zip(keys, block.dataset._components)]
    block.dataset.headers = shown
    if any(keys):
        in_language_on_load(block.dataset, lambda language: gr.Dataset(
            headers=[text(key, language) if key else old for key, old in zip(keys, shown)]))
    return block


def table_output(header_keys: list[str], **kwargs: Any) -> gr.Dataframe:
    """A read-only results table whose column headers are catalogue keys: English when built, the page's
    language once it loads (:func:`in_language_on_load`), and each result's own headers after that
    (:func:`demo.messages.table`)."""
    keys = list(header_keys)
    frame = gr.Dataframe(headers=[text(key) for key in keys], interactive=False, **kwargs)
    return in_language_on_load(frame, lambda language: gr.Dataframe(headers=[text(key, language) for key in keys]))


C = TypeVar("C", bound=gr.components.Component)


def in_language_on_load(component: C, update: Callable[[str], Any]) -> C:
    """Mark ``component`` for a property that Gradio does not translate in the browser (a table's headers,
    a legend's categories): ``update(language)`` gives it in the page's language when the page loads."""
    component.in_language = update
    return component


def localized_on_load(blocks: gr.Blocks) -> tuple[Callable[[gr.Request], tuple], list[gr.components.Component]]:
    """The page-load event (function and outputs) giving every marked component of ``blocks`` its
    properties in the page's language (see :func:`in_language_on_load`)."""
    marked = [block for block in blocks.blocks.values() if callable(getattr(block, "in_language", None))]

    def localize(request: gr.Request) -> tuple:
        language = request_language(request)
        return tuple(component.in_language(language) for component in marked)

    return localize, marked


@dataclass
class TabParts:
    """What app.py wires across tabs, returned by every ``build_tab()``.

    ``pickers``: the tab's model pickers with their task, refreshed together whenever the saved
    checkpoints may have changed; ``changes_checkpoints``: the events after which they may have
    (a training run, a deletion); ``on_open``: an event (``fn``, ``outputs``, ...) to run when the
    tab is opened and when the page loads.
    """

    pickers: list[tuple[str, gr.Dropdown]] = field(default_factory=list)
    changes_checkpoints: list[Any] = field(default_factory=list)
    on_open: dict[str, Any] | None = None
    on_select: dict[str, Any] | None = None  # an event (``fn``, ``inputs``, ``outputs``...) run when the tab is opened
    # A query parameter that, when the page's URL has it, opens this tab (the Classroom's ``?room=``).
    opens_from_url: str | None = None


def tab_from_url(openers: dict[str, str]) -> Callable[..., Any]:
    """A page-load event selecting the tab whose query parameter (``openers``: parameter -> tab id) is in the URL."""
    def select(request: gr.Request) -> Any:
        query = getattr(request, "query_params", None) or {}
        chosen = next((tab for name, tab in openers.items() if query.get(name)), None)
        return gr.Tabs(selected=chosen) if chosen else gr.skip()

    return select


def clear_on_failure(event: Any, outputs: list[gr.components.Component],
                     keep: list[gr.components.Component] = ()) -> Any:
    """After ``event`` fails (its error shown in the error box), empty its result ``outputs`` so no stale result
    stays next to the error, and give its other outputs (``keep``: inputs it also updates) back their normal
    look unchanged."""
    updates = [gr.update(value=None)] * len(outputs) + [gr.update()] * len(keep)
    return event.failure(lambda: tuple(updates) if len(updates) > 1 else updates[0], outputs=[*outputs, *keep],
                         api_visibility="private", queue=False)


def refresh_pickers(tasks: list[str]) -> Callable[[], tuple]:
    """An event function giving every picker of ``tasks`` (in order) the registry's current choices."""
    def refresh() -> tuple:
        return tuple(gr.update(choices=model_choices(task)) for task in tasks)

    return refresh
