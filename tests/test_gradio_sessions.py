"""Lazy session configurations (demo/gradio_sessions.py): what Gradio reads is what it built before."""

from __future__ import annotations

import gradio as gr
from gradio import state_holder

from demo import gradio_sessions


def test_lazy_sessions_read_the_same_configuration_as_gradios_own(monkeypatch, tiny_env) -> None:
    import app

    demo = app.build_demo()
    monkeypatch.setattr(state_holder.SessionState, "__init__", gradio_sessions._original_init)
    eager = state_holder.SessionState(demo)
    assert gradio_sessions.install()
    lazy = state_holder.SessionState(demo)
    assert isinstance(lazy.config_values, gradio_sessions.LazyConfigs)
    assert len(lazy.config_values) == len(eager.config_values) > 100
    assert dict.__len__(lazy.config_values) == 0  # nothing built until something is read
    some = [key for key, block in demo.blocks.items() if isinstance(block, gr.Textbox)][:3]
    for session in (eager, lazy):  # what an event does: update a component, read a value
        session[some[0]] = gr.Textbox("changed")
        session._update_value_in_config(some[1], "typed")
    assert lazy.config_values[some[2]] == eager.config_values[some[2]]
    assert list(lazy.components) == list(eager.components)  # deep links see every component, as before
    assert gradio_sessions.install()  # idempotent
