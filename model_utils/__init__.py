"""PLM Playground's model layer: settings, registry, model manager and task functions.

Importing ``model_utils`` is cheap: the task modules (and torch) load on first access
through the module-level ``__getattr__``. Public API::

    import model_utils
    model_utils.fill_mask("Paris is the [MASK] of France.")      # list[list[dict]]
    model_utils.next_sentence("I was hungry.", "So I ate.")        # {"is_next", "not_next"}

``fill_mask`` and ``next_sentence`` are modules that can also be called directly
(``model_utils.fill_mask(...)`` runs ``model_utils.fill_mask.fill_mask(...)``).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any, Callable

_LAZY_MODULES = {
    "config": "model_utils.config",
    "registry": "model_utils.registry",
    "manager": "model_utils.manager",
    "fill_mask": "model_utils.fill_mask",
    "next_sentence": "model_utils.next_sentence",
    "attention": "model_utils.attention",
    "classify": "model_utils.classify",
    "contextual": "model_utils.contextual",
}

__all__ = sorted(_LAZY_MODULES)


class _CallableModule(types.ModuleType):
    """A module whose call runs its main function, so ``model_utils.fill_mask(...)`` works."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.__dict__["_module_call"](*args, **kwargs)


def make_module_callable(module_name: str, fn: Callable[..., Any]) -> None:
    """Make the module ``module_name`` callable as ``fn`` (keeps all its attributes)."""
    module = sys.modules[module_name]
    module._module_call = fn  # type: ignore[attr-defined]
    module.__class__ = _CallableModule


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        return importlib.import_module(_LAZY_MODULES[name])
    raise AttributeError(f"module 'model_utils' has no attribute {name!r}")
