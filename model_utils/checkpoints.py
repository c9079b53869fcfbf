"""Writing checkpoints into the checkpoints directory atomically, so the app never lists half a model.

A checkpoint is first written into a hidden temporary folder beside its final place
(``.incomplete-<name>-<random>``: the registry lists only names that start with a letter or a
digit) and renamed to ``<name>`` once every file is on disk. A crash or a stop leaves at most a
hidden folder, removed by the next :func:`clean_incomplete`; an existing checkpoint is never
replaced. Used by fine-tuning (issue 6) and meant for pretraining too.

The checkpoints directory may be missing (it is created on the first save), or unusable (a
file, under a file, read-only): :func:`storage_problem` says why in one sentence, the app shows
it, and :func:`ensure_new` refuses to start a run that could not save its result.
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


def _nearest_existing(path: Path) -> Path:
    """``path`` itself or its closest ancestor that exists (a file or a folder)."""
    while not (path.exists() or path.is_symlink()) and path.parent != path:
        path = path.parent
    return path


def storage_problem(root: Path | None = None) -> str | None:
    """Why checkpoints cannot be saved in ``root`` (the settings' folder by default), or None if they can.

    A missing folder is fine when it can be created. Checked with ``os.access``, so a run as
    root (which may write anywhere) is only stopped by a file in the way.
    """
    root = root or get_settings().checkpoints_dir
    existing = _nearest_existing(root.absolute())
    if existing.exists() and not existing.is_dir():
        where = "is a file" if existing == root.absolute() else f"cannot be created: {existing} is a file"
        return (f"The checkpoints folder {root} {where}, not a folder, so fine-tuned and pretrained "
                "models cannot be saved. Set PLM_CHECKPOINTS_DIR to a writable folder.")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "is read-only" if existing == root.absolute() else f"cannot be created in read-only {existing}"
        return (f"The checkpoints folder {root} {what}, so fine-tuned and pretrained models cannot be "
                "saved. Set PLM_CHECKPOINTS_DIR to a writable folder.")
    return None


def ensure_new(name: str, root: Path | None = None) -> Path:
    """The path of a checkpoint that does not exist yet; ValueError if the name is taken or cannot be saved."""
    path = checkpoint_path(name, root)
    problem = storage_problem(path.parent)
    if problem:
        raise ValueError(problem)
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
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{INCOMPLETE_PREFIX}{final.name}-", dir=final.parent))
    except OSError as err:  # e.g. a read-only file system, or a full disk
        raise ValueError(f"Cannot save local:{final.name} in {final.parent} ({err.strerror or err}); "
                         "set PLM_CHECKPOINTS_DIR to a writable folder.") from err
    try:
        yield tmp
        if final.exists():
            raise ValueError(f"local:{final.name} appeared while this run was saving; nothing was overwritten.")
        os.rename(tmp, final)  # atomic on one file system; fails rather than replace a non-empty folder
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
