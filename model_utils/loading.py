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

import contextlib
import functools
import threading
import warnings
from typing import Any, Callable, Iterator, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

LOAD_LOCK = threading.RLock()


def serialized(loader: F) -> F:
    """Decorate a function that builds or loads a model so that it holds :data:`LOAD_LOCK`."""

    @functools.wraps(loader)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with LOAD_LOCK:
            return loader(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load report, progress bars and deprecation warnings for a while.

    For loads whose missing weights are expected and filled right after (the bundled models take
    their heads from a delta), where transformers would log "newly initialized ... consider
    training" and "This checkpoint seem corrupted" about a model that is neither. Callers hold
    :data:`LOAD_LOCK`, as the verbosity is process-wide.
    """
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def pretrained_kwargs(local_only: bool) -> dict[str, Any]:
    """``from_pretrained`` arguments for user-chosen checkpoints: safetensors only, no remote code.

    ``local_only`` also reaches the adapter lookup of the Auto classes, which otherwise asks the
    Hub for ``adapter_config.json`` with retries (about 25 s per model while it is unreachable).
    """
    return {"use_safetensors": True, "trust_remote_code": False, "local_files_only": local_only,
            "adapter_kwargs": {"local_files_only": local_only}}


# What transformers reads from a Hub repository (weights as safetensors only).
HUB_FILES = ["config.json", "generation_config.json", "*.safetensors", "*.safetensors.index.json", "tokenizer*",
             "vocab*", "merges.txt", "special_tokens_map.json", "added_tokens.json", "*.model", "*.tiktoken"]


def hub_location(repo_id: str, local_only: bool) -> str:
    """What to hand ``from_pretrained`` for the Hub id ``repo_id``.

    Normally the id itself. But ``from_pretrained`` reads a local folder whose relative path equals
    the id instead of the Hub, so for such an id (``demo/examples``) the id's own snapshot in the Hub
    cache is used: every Hub id then behaves the same whether or not a folder of that name exists
    beside the app (no existence oracle, no reading the app's own folders).
    """
    import os

    if not os.path.exists(repo_id):
        return repo_id
    from huggingface_hub import snapshot_download

    return snapshot_download(repo_id, local_files_only=local_only, allow_patterns=HUB_FILES)
