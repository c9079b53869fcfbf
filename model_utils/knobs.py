"""Training knobs defined once: a dataclass field carries its default, range and help text.

``knob(default, low, high, help)`` is a ``dataclasses.field`` whose metadata holds the range
(``HfArgumentParser`` shows the help on the command line). :func:`check_ranges` is what an argument
dataclass's ``__post_init__`` calls; :func:`check_values` checks raw values from a form (the app's
API passes them as they come) against the same fields without building the dataclass, so a form
is refused before anything is queued; :func:`form` lists the fields a UI builds its inputs from.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import types
from dataclasses import dataclass
from typing import Any

from transformers import HfArgumentParser

from model_utils.errors import UserError, define

define({
    "knob.out_of_range": "{name} must be between {low:g} and {high:g} (got {value}).",
    "knob.not_a_number": "{name} must be a number (got {value!r}).",
})


def knob(default: Any, low: float | None = None, high: float | None = None, *, help: str) -> Any:
    """A dataclass field with a default, an inclusive range (numbers only) and a help text."""
    return dataclasses.field(default=default, metadata={"help": help, "range": (low, high)})


@dataclass(frozen=True)
class FormField:
    """What a UI needs to build one input: name, kind ("number", "integer", "flag"), default, range, help."""

    name: str
    kind: str
    default: Any
    low: float | None
    high: float | None
    help: str


def _kind(field: dataclasses.Field, default: Any) -> str:
    kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
    if kind == "bool" or isinstance(default, bool):
        return "flag"
    return "integer" if kind == "int" or isinstance(default, int) else "number"


def form(cls: Any, names: list[str]) -> list[FormField]:
    """The fields ``names`` of dataclass ``cls`` as form fields, in that order; given an instance, its
    values are the defaults (the app's own presets)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out = []
    for name in names:
        field = fields[name]
        if not isinstance(cls, type):
            default = getattr(cls, name)
        else:
            default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        low, high = field.metadata.get("range", (None, None))
        out.append(FormField(name, _kind(field, default), default, low, high, field.metadata.get("help", "")))
    return out


def _checked(spec: FormField, value: Any) -> Any:
    """``value`` converted to the field's kind; UserError when it is not a number or out of range."""
    if spec.kind == "flag":
        return bool(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError("knob.not_a_number", name=spec.name, value=value) from None
    if math.isnan(number) or (spec.low is not None and number < spec.low) or (spec.high is not None and number > spec.high):
        raise UserError("knob.out_of_range", name=spec.name, low=spec.low, high=spec.high, value=value)
    return int(number) if spec.kind == "integer" else number


def check_values(cls: Any, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (field name -> raw value) checked against ``cls``'s knobs (fields with a range, flags) and
    converted; other fields pass as they are."""
    specs = {spec.name: spec for spec in form(cls, list(values))}
    ranged = {name for name, spec in specs.items() if spec.kind == "flag" or (spec.low, spec.high) != (None, None)}
    return {name: _checked(specs[name], value) if name in ranged else value for name, value in values.items()}


def check_ranges(obj: Any) -> None:
    """UserError for any field of dataclass instance ``obj`` outside its range (call in ``__post_init__``)."""
    ranged = [f.name for f in dataclasses.fields(obj) if f.metadata.get("range", (None, None)) != (None, None)]
    check_values(type(obj), {name: getattr(obj, name) for name in ranged})


class KnobParser(HfArgumentParser):
    """``HfArgumentParser`` for dataclasses with knobs: a field's range stays out of argparse's arguments
    (it hands every metadata entry to ``add_argument``) and is checked by the dataclass instead."""

    @staticmethod
    def _parse_dataclass_field(parser: Any, field: dataclasses.Field) -> None:
        plain = copy.copy(field)
        plain.metadata = types.MappingProxyType({k: v for k, v in field.metadata.items() if k != "range"})
        HfArgumentParser._parse_dataclass_field(parser, plain)
