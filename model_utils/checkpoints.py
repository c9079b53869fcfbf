"""Writing checkpoints into the checkpoints directory atomically, so the app never lists half a model.

A checkpoint is first written into a hidden temporary folder beside its final place
(``.incomplete-<name>-<random>``: the registry lists only names that start with a letter or a
digit) and renamed to ``<name>`` once every file is on disk. A crash or a stop leaves at most a
hidden folder, removed by the next :func:`clean_incomplete`; an existing checkpoint is never
replaced. Used by fine-tuning (issue 6) and meant for pretraining too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterator

from model_utils.config import get_settings
from model_utils.registry import LOCAL_PREFIX, _LOCAL_NAME

INCOMPLETE_PREFIX = ".incomplete-"
STALE_SECONDS = 24 * 3600  # hidden leftovers older than this belong to no running job


def check_name(name: str) -> str:
    """Return the stripped checkpoint name, or raise ValueError for a name with path characters."""
    name = (name or "").strip()
    if name.startswith(LOCAL_PREFIX):
        name = name[len(LOCAL_PREFIX):]
    if not name:
        raise ValueError("Please give the new checkpoint a name.")
    if not _LOCAL_NAME.match(name) or ".." in name:
        raise ValueError(f"Invalid checkpoint name {name!r}: use letters, digits, '-', '_' or '.', "
                         "start with a letter or digit, at most 128 characters, no '/' or '..'.")
    return name


def checkpoint_path(name: str, root: Path | None = None) -> Path:
    """Where checkpoint ``name`` lives (inside the settings' checkpoints directory by default)."""
    return (root or get_settings().checkpoints_dir) / check_name(name)


def ensure_new(name: str, root: Path | None = None) -> Path:
    """The path of a checkpoint that does not exist yet; ValueError if the name is taken."""
    path = checkpoint_path(name, root)
    if path.exists():
        raise ValueError(f"A checkpoint named local:{path.name} already exists in {path.parent}; "
                         "choose another name (existing checkpoints are never overwritten).")
    return path


def clean_incomplete(root: Path | None = None, older_than: float = STALE_SECONDS) -> int:
    """Remove hidden leftovers of crashed writes older than ``older_than`` seconds; returns how many."""
    root = root or get_settings().checkpoints_dir
    if not root.is_dir():
        return 0
    removed = 0
    for path in root.glob(INCOMPLETE_PREFIX + "*"):
        if time.time() - path.stat().st_mtime > older_than:
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


@contextlib.contextmanager
def atomic_checkpoint(name: str, root: Path | None = None) -> Iterator[Path]:
    """Yield a temporary folder to write checkpoint ``name`` into; publish it only if the block succeeds.

    On an exception the temporary folder is removed and nothing appears under ``name``; if
    ``name`` was taken meanwhile, ValueError and nothing is overwritten.
    """
    final = ensure_new(name, root)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{INCOMPLETE_PREFIX}{final.name}-", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            raise ValueError(f"local:{final.name} appeared while this run was saving; nothing was overwritten.")
        os.rename(tmp, final)  # atomic on one file system; fails rather than replace a non-empty folder
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
