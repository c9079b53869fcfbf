"""New browser sessions without building every component's configuration up front.

Gradio 6 (``gradio.state_holder.SessionState.__init__``) computes the configuration of all of the
app's components for each new browser session (it keeps them to recreate deep links), on the
server's event loop: about 20 ms for this app's ~310 components on a 2-vCPU machine. When a class
of 200 opens the page within seconds, that was 61% of the server's time (py-spy during
``benchmarks/bench_classroom.py``) and every other request waited behind it. :func:`install` makes
that mapping lazy: a component's configuration is computed when it is first read, and all of them
when the mapping is iterated (deep links), so Gradio reads exactly what it built before.

Installed by ``app.py``; if Gradio's ``SessionState`` no longer behaves as this expects (a self-check
on a small app), nothing is changed and a warning is logged. Remove this module once Gradio builds
session configurations lazily itself.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any, Iterator

import gradio as gr
from gradio import state_holder

logger = logging.getLogger("plm_playground")
_original_init = state_holder.SessionState.__init__


class LazyConfigs(dict):
    """``SessionState.config_values`` whose entries are computed on first read (all of them on iteration)."""

    def __init__(self, session: Any, blocks: dict[int, Any]) -> None:
        super().__init__()
        self._session = session
        self._pending = dict(blocks)  # block id -> the block as it was when the session began
        self._order = list(blocks)  # Gradio's order: these first, then ids set later

    def _compute(self, key: int) -> None:
        block = self._pending.pop(key)
        dict.__setitem__(self, key, self._session.blocks_config.config_for_block(key, [], block))

    def _fill(self) -> None:
        if not self._pending and list(dict.keys(self))[:len(self._order)] == self._order:
            return
        for key in list(self._pending):
            self._compute(key)
        ordered = [(k, dict.__getitem__(self, k)) for k in self._order]
        first = set(self._order)
        ordered += [(k, v) for k, v in dict.items(self) if k not in first]
        dict.clear(self)
        dict.update(self, ordered)

    def __missing__(self, key: int) -> Any:
        if key not in self._pending:
            raise KeyError(key)
        self._compute(key)
        return dict.__getitem__(self, key)

    def __setitem__(self, key: int, value: Any) -> None:
        self._pending.pop(key, None)
        dict.__setitem__(self, key, value)

    def __contains__(self, key: object) -> bool:
        return key in self._pending or dict.__contains__(self, key)

    def __iter__(self) -> Iterator[int]:
        self._fill()
        return dict.__iter__(self)

    def __len__(self) -> int:
        return dict.__len__(self) + len(self._pending)

    def get(self, key: int, default: Any = None) -> Any:
        return self[key] if key in self else default

    def keys(self):  # type: ignore[override]
        self._fill()
        return dict.keys(self)

    def values(self):  # type: ignore[override]
        self._fill()
        return dict.values(self)

    def items(self):  # type: ignore[override]
        self._fill()
        return dict.items(self)


def _lazy_init(self: Any, blocks: Any) -> None:
    # Gradio's own __init__ with no blocks to configure (everything else as it does it), then the lazy map.
    _original_init(self, SimpleNamespace(default_config=blocks.default_config, blocks={}))
    self.config_values = LazyConfigs(self, {k: v for k, v in self.blocks_config.blocks.items() if k in blocks.blocks})


def _same_as_gradio() -> bool:
    """True when a lazy session of a small app reads exactly what Gradio's own session builds."""
    with gr.Blocks() as probe:
        box = gr.Textbox("x", label="probe")
        gr.Number(3)
    eager = state_holder.SessionState(probe)
    lazy = state_holder.SessionState.__new__(state_holder.SessionState)
    _lazy_init(lazy, probe)
    lazy[box._id] = gr.Textbox("y")  # an update, as an event makes it
    eager[box._id] = gr.Textbox("y")
    return list(lazy.components) == list(eager.components) and len(lazy.config_values) == len(eager.config_values)


def install() -> bool:
    """Make new sessions build component configurations lazily; False (and a warning) if not applied."""
    if state_holder.SessionState.__init__ is _lazy_init:
        return True
    try:
        applies = _same_as_gradio()
    except Exception:  # noqa: BLE001 - a Gradio that changed: keep its own behaviour
        applies = False
    if not applies:
        logger.warning("gradio_sessions: this Gradio's SessionState differs from what the lazy session "
                       "configuration expects; new sessions keep building every component's configuration")
        return False
    state_holder.SessionState.__init__ = _lazy_init
    return True
