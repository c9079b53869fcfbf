"""Inputs built from the training dataclasses: one definition of every knob (default, range) in model_utils.

``number_inputs(fields)`` lays out one ``gr.Number`` (or ``gr.Checkbox``) per
:class:`model_utils.knobs.FormField`, with the field's default and range and the label
``I18N("knob_<name>")`` from the tab's strings; a handler that takes the inputs as a set
(``inputs={...}``) receives a dict, and :func:`values_of` turns it into field name -> value.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from demo.i18n import I18N
from model_utils.knobs import FormField


def field_input(spec: FormField, elem_prefix: str, label_prefix: str = "knob_") -> gr.components.Component:
    """One input for ``spec``: a checkbox for a flag, else a number with the field's range; labelled
    ``I18N(label_prefix + name)``."""
    elem_id = f"{elem_prefix}-{spec.name.replace('_', '-')}"
    label = I18N(f"{label_prefix}{spec.name}")
    if spec.kind == "flag":
        return gr.Checkbox(bool(spec.default), label=label, elem_id=elem_id)
    return gr.Number(spec.default, label=label, minimum=spec.low, maximum=spec.high,
                     precision=0 if spec.kind == "integer" else None, elem_id=elem_id)


def number_inputs(fields: list[FormField], elem_prefix: str, per_row: int = 5,
                  label_prefix: str = "knob_") -> dict[str, gr.components.Component]:
    """Inputs for ``fields`` in their order (an API's parameter order), in rows of ``per_row``; returns
    name -> component."""
    inputs: dict[str, gr.components.Component] = {}
    for start in range(0, len(fields), per_row):
        with gr.Row():
            for spec in fields[start:start + per_row]:
                inputs[spec.name] = field_input(spec, elem_prefix, label_prefix)
    return inputs


def values_of(data: dict, inputs: dict[str, Any]) -> dict[str, Any]:
    """The values a ``inputs={...}`` handler received, by field name instead of by component."""
    return {name: data[component] for name, component in inputs.items() if component in data}
