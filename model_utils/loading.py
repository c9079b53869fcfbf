"""One process-wide lock around every model construction.

Loading models in transformers is not thread-safe: two threads loading different models at
once (say a Fill-Mask and a Classify request arriving together, or a fine-tuning job starting
while a user opens Attention) failed with ``module 'transformers' has no attribute
'BertForMaskedLM'`` (its lazy imports) or "Cannot copy out of meta tensor" (weights built on
the meta device while another load was under way). :func:`serialized` runs loaders one at a
time; loading is I/O- and CPU-bound anyway, so little is lost. Reentrant, so a loader may call
another.
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

LOAD_LOCK = threading.RLock()


def serialized(loader: F) -> F:
    """Decorate a function that builds or loads a model so that it holds :data:`LOAD_LOCK`."""

    @functools.wraps(loader)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with LOAD_LOCK:
            return loader(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
