"""The checkpoints folder: atomic writes, a disk budget, and who made what.

Atomic writes, so the app never lists half a model:

A checkpoint is first written into a hidden temporary folder beside its final place
(``.incomplete-<name>-<random>``: the registry lists only names that start with a letter or a
digit) and renamed to ``<name>`` once every file is on disk. A crash or a stop leaves at most a
hidden folder, removed by the next :func:`clean_incomplete`; an existing checkpoint is never
replaced. Used by fine-tuning (issue 6) and meant for pretraining too.

The checkpoints directory may be missing (it is created on the first save), or unusable (a
file, under a file, read-only): :func:`storage_problem` says why in one sentence, the app shows
it, and :func:`ensure_new` refuses to start a run that could not save its result.

A disk budget (``PLM_CHECKPOINTS_MAX_MB``, ``PLM_CHECKPOINTS_MAX_COUNT``): every checkpoint made
from the app carries ``plm_checkpoint.json`` (when, by whom: a hash of the browser session, what
kind). Before a new one is published the oldest app-made checkpoints are removed until it fits
(:func:`make_room`); checkpoints put there by hand or by the command line are never removed, and
a run that could not fit even then is refused before it starts (:func:`check_budget`). A session
may delete its own checkpoints, an admin (``PLM_ADMIN_TOKEN``) any app-made one
(:func:`delete_checkpoint`).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from model_utils.config import get_settings
from model_utils.errors import UserError, define, message, scrub_paths
from model_utils.registry import LOCAL_PREFIX, _LOCAL_NAME

logger = logging.getLogger("plm_playground.checkpoints")

MARKER = "plm_checkpoint.json"  # written into every checkpoint made from the app

define({
    "checkpoints.no_name": "Please give the new checkpoint a name.",
    "checkpoints.bad_name": "Invalid checkpoint name {name!r}: use letters, digits, '-', '_' or '.', start with a "
                            "letter or digit, at most 128 characters, no '/' or '..'.",
    "checkpoints.exists": "A checkpoint named local:{name} already exists; choose another name (existing "
                          "checkpoints are never overwritten).",
    "checkpoints.cannot_write": "Cannot save local:{name} in the checkpoints folder ({reason}); set "
                                "PLM_CHECKPOINTS_DIR to a writable folder.",
    "checkpoints.appeared": "local:{name} appeared while this run was saving; nothing was overwritten.",
    "checkpoints.is_file": "The checkpoints folder {root} is a file, not a folder, so fine-tuned and pretrained "
                           "models cannot be saved. Set PLM_CHECKPOINTS_DIR to a writable folder.",
    "checkpoints.under_file": "The checkpoints folder {root} cannot be created: {where} is a file, not a folder, so "
                              "fine-tuned and pretrained models cannot be saved. Set PLM_CHECKPOINTS_DIR to a "
                              "writable folder.",
    "checkpoints.read_only": "The checkpoints folder {root} is read-only, so fine-tuned and pretrained models cannot "
                             "be saved. Set PLM_CHECKPOINTS_DIR to a writable folder.",
    "checkpoints.in_read_only": "The checkpoints folder {root} cannot be created in read-only {where}, so "
                                "fine-tuned and pretrained models cannot be saved. Set PLM_CHECKPOINTS_DIR to a "
                                "writable folder.",
    "checkpoints.too_big": "This run would save about {needed_mb:,.0f} MB, but the checkpoints folder may hold "
                           "{limit_mb:,.0f} MB (PLM_CHECKPOINTS_MAX_MB) and {fixed_mb:,.0f} MB of it are checkpoints "
                           "the app may not remove. Use LoRA (a small adapter is saved instead of a copy), a "
                           "smaller base model, or ask whoever runs the app for more room.",
    "checkpoints.not_found": "There is no checkpoint named local:{name}.",
    "checkpoints.not_yours": "local:{name} was not made in this browser session, so it cannot be deleted "
                             "from here (ask whoever runs the app).",
    "checkpoints.not_from_app": "local:{name} was not made from the app; only whoever runs the app can remove it.",
})

INCOMPLETE_PREFIX = ".incomplete-"
STALE_SECONDS = 24 * 3600  # hidden leftovers older than this belong to no running job


def check_name(name: str) -> str:
    """Return the stripped checkpoint name, or raise ValueError for a name with path characters."""
    name = (name or "").strip()
    if name.startswith(LOCAL_PREFIX):
        name = name[len(LOCAL_PREFIX):]
    if not name:
        raise UserError("checkpoints.no_name")
    if not _LOCAL_NAME.match(name) or ".." in name:
        raise UserError("checkpoints.bad_name", name=name)
    return name


def checkpoint_path(name: str, root: Path | None = None) -> Path:
    """Where checkpoint ``name`` lives (inside the settings' checkpoints directory by default)."""
    return (root or get_settings().checkpoints_dir) / check_name(name)


def _nearest_existing(path: Path) -> Path:
    """``path`` itself or its closest ancestor that exists (a file or a folder)."""
    while not (path.exists() or path.is_symlink()) and path.parent != path:
        path = path.parent
    return path


def storage_error(root: Path | None = None) -> UserError | None:
    """Why checkpoints cannot be saved in ``root`` (the settings' folder by default), or None if they can.

    A missing folder is fine when it can be created. Checked with ``os.access``, so a run as
    root (which may write anywhere) is only stopped by a file in the way. Paths in the error are
    shortened for users (the log gets :func:`storage_problem`'s whole sentence).
    """
    root = root or get_settings().checkpoints_dir
    existing = _nearest_existing(root.absolute())
    places = {"root": scrub_paths(str(root)), "where": scrub_paths(str(existing))}
    if existing.exists() and not existing.is_dir():
        return UserError("checkpoints.is_file" if existing == root.absolute() else "checkpoints.under_file", **places)
    if not os.access(existing, os.W_OK | os.X_OK):
        return UserError("checkpoints.read_only" if existing == root.absolute() else "checkpoints.in_read_only",
                         **places)
    return None


def storage_problem(root: Path | None = None) -> str | None:
    """The operator's sentence for :func:`storage_error` (full paths, for the log), or None."""
    error = storage_error(root)
    if error is None:
        return None
    root = root or get_settings().checkpoints_dir
    return message(error.code, root=str(root), where=str(_nearest_existing(root.absolute())))


def ensure_new(name: str, root: Path | None = None) -> Path:
    """The path of a checkpoint that does not exist yet; ValueError if the name is taken or cannot be saved."""
    path = checkpoint_path(name, root)
    problem = storage_error(path.parent)
    if problem:
        raise problem
    if path.exists():
        raise UserError("checkpoints.exists", name=path.name)
    return path


def dated_name(prefix: str) -> str:
    """A default name for a new checkpoint: ``prefix`` and the date and time (``classifier-0412-1015``);
    :func:`reserve_name` makes it unique if two runs start in the same minute."""
    return f"{prefix}-{time.strftime('%m%d-%H%M')}"


def free_name(name: str, root: Path | None = None, taken: set[str] | frozenset[str] = frozenset()) -> str:
    """``name`` if no checkpoint has it (nor ``taken``), else the first free ``name-2``, ``name-3``, ...: what
    a run is saved as instead of being refused for a taken name. UserError for an invalid name."""
    name = check_name(name)
    root = root or get_settings().checkpoints_dir
    candidate, number = name, 1
    while (root / candidate).exists() or candidate in taken:
        number += 1
        suffix = f"-{number}"
        candidate = name[:128 - len(suffix)] + suffix
    return candidate


_reserved: dict[str, float] = {}  # names promised to runs that have not saved yet -> when
_reserved_lock = threading.Lock()
RESERVATION_SECONDS = 24 * 3600  # a promise never released (a crashed process) lapses after this


def reserve_name(name: str, root: Path | None = None) -> str:
    """:func:`free_name` of ``name``, promised to one run until :func:`release_name`: two runs started at once
    with the same name are saved under two names, neither refused after training."""
    with _reserved_lock:
        now = time.time()
        for old in [n for n, when in _reserved.items() if now - when > RESERVATION_SECONDS]:
            del _reserved[old]
        chosen = free_name(name, root, frozenset(_reserved))
        _reserved[chosen] = now
        return chosen


def release_name(name: str) -> None:
    """Withdraw the promise of :func:`reserve_name` (the run saved, stopped or failed)."""
    with _reserved_lock:
        _reserved.pop(name, None)


def reserved_names() -> frozenset[str]:
    """Names promised to runs that have not saved yet."""
    with _reserved_lock:
        return frozenset(_reserved)


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
def atomic_checkpoint(name: str, root: Path | None = None, *, owner: str | None = None, kind: str = "",
                      removed: list[str] | None = None) -> Iterator[Path]:
    """Yield a temporary folder to write checkpoint ``name`` into; publish it only if the block succeeds.

    Publishing marks it (made from the app by session ``owner``, or by the CLI with ``owner=None``)
    and first removes the oldest app-made checkpoints if the budget needs room (their names are
    appended to ``removed``). On an exception the temporary folder is removed and nothing appears
    under ``name``; if ``name`` was taken meanwhile, ValueError and nothing is overwritten.
    """
    final = ensure_new(name, root)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{INCOMPLETE_PREFIX}{final.name}-", dir=final.parent))
    except OSError as err:  # e.g. a read-only file system, or a full disk
        raise UserError("checkpoints.cannot_write", name=final.name, reason=scrub_paths(str(err.strerror or err))) from err
    try:
        yield tmp
        write_marker(tmp, owner, kind)
        gone = make_room(folder_bytes(tmp), final.parent)
        if removed is not None:
            removed.extend(gone)
        if final.exists():
            raise UserError("checkpoints.appeared", name=final.name)
        os.rename(tmp, final)  # atomic on one file system; fails rather than replace a non-empty folder
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

def owner_tag(owner: str | None) -> str:
    """How a session id is stored with its checkpoints: a short hash, never the id itself."""
    return hashlib.sha256(owner.encode("utf-8")).hexdigest()[:16] if owner else ""


@dataclass(frozen=True)
class Saved:
    """One checkpoint folder as the disk budget sees it."""

    name: str
    path: Path
    bytes: int
    created: float  # seconds since the epoch
    owner: str  # owner_tag of the session that made it ("" if unknown)
    from_app: bool  # made from the app's UI or API (may be removed to make room), not by hand or the CLI
    kind: str = ""  # "fine-tune", "pretrain", ...


def folder_bytes(path: Path) -> int:
    """Bytes of every file under ``path`` (0 if it vanished meanwhile)."""
    total = 0
    for file in path.rglob("*"):
        with contextlib.suppress(OSError):
            if file.is_file() and not file.is_symlink():
                total += file.stat().st_size
    return total


def _read_marker(path: Path) -> dict:
    try:
        marker = json.loads((path / MARKER).read_text(encoding="utf-8"))
        return marker if isinstance(marker, dict) else {}
    except (OSError, ValueError):
        return {}


def saved_checkpoints(root: Path | None = None) -> list[Saved]:
    """Every checkpoint folder in ``root`` (hidden leftovers excluded), oldest first."""
    root = root or get_settings().checkpoints_dir
    try:
        folders = [p for p in root.iterdir() if p.is_dir() and _LOCAL_NAME.match(p.name)]
    except OSError:
        return []
    saved = []
    for folder in folders:
        marker = _read_marker(folder)
        created = marker.get("created") if isinstance(marker.get("created"), (int, float)) else folder.stat().st_mtime
        saved.append(Saved(folder.name, folder, folder_bytes(folder), float(created), str(marker.get("owner", "")),
                           marker.get("origin") == "app", str(marker.get("kind", ""))))
    return sorted(saved, key=lambda c: (c.created, c.name))


def _fixed_bytes(root: Path) -> int:
    """Bytes in ``root`` that the budget may not free: checkpoints not made from the app, hidden leftovers."""
    try:
        entries = list(root.iterdir())
    except OSError:
        return 0
    removable = {c.path for c in saved_checkpoints(root) if c.from_app}
    fixed = [p for p in entries if p not in removable and not p.name.startswith(INCOMPLETE_PREFIX)]
    return sum(folder_bytes(p) if p.is_dir() else p.stat().st_size for p in fixed)


def check_budget(expected_bytes: int, root: Path | None = None) -> None:
    """UserError if a checkpoint of about ``expected_bytes`` could not fit even after removing every
    app-made checkpoint (called before a run starts, so nobody trains for nothing)."""
    settings = get_settings()
    root = root or settings.checkpoints_dir
    fixed = _fixed_bytes(root)
    if fixed + expected_bytes > settings.checkpoints_max_bytes:
        raise UserError("checkpoints.too_big", needed_mb=expected_bytes / 2**20,
                        limit_mb=settings.checkpoints_max_bytes / 2**20, fixed_mb=fixed / 2**20)


def make_room(new_bytes: int, root: Path | None = None, keep: tuple[str, ...] = ()) -> list[str]:
    """Remove the oldest app-made checkpoints until ``new_bytes`` more fit in the budget and one more
    fits in the count; returns the names removed. UserError if it cannot fit even then."""
    settings = get_settings()
    root = root or settings.checkpoints_dir
    check_budget(new_bytes, root)
    saved = [c for c in saved_checkpoints(root) if c.name not in keep]
    used = _fixed_bytes(root) + sum(c.bytes for c in saved if c.from_app)
    count = sum(c.from_app for c in saved)
    removed = []
    for old in (c for c in saved if c.from_app):
        if used + new_bytes <= settings.checkpoints_max_bytes and count < settings.checkpoints_max_count:
            break
        shutil.rmtree(old.path, ignore_errors=True)
        used, count = used - old.bytes, count - 1
        removed.append(old.name)
        logger.warning("removed local:%s (%.0f MB, made %s) to stay within the checkpoints budget", old.name,
                       old.bytes / 2**20, time.strftime("%Y-%m-%d %H:%M", time.gmtime(old.created)))
    return removed


def write_marker(folder: Path, owner: str | None, kind: str, **details: object) -> None:
    """Mark ``folder`` as made from the app (``owner`` a session id) or, with ``owner=None``, by the CLI."""
    marker = {"origin": "cli" if owner is None else "app", "owner": owner_tag(owner), "kind": kind,
              "created": time.time(), **details}
    (folder / MARKER).write_text(json.dumps(marker, indent=1), encoding="utf-8")


def is_admin(token: str | None) -> bool:
    """True when ``token`` is the app's ``PLM_ADMIN_TOKEN`` (compared in constant time; never without one)."""
    expected = get_settings().admin_token
    return bool(expected and token) and hmac.compare_digest(expected.encode(), str(token).encode())


def deletable_by(owner: str | None, admin: bool = False, root: Path | None = None) -> list[str]:
    """Names of the checkpoints this session (or an admin) may delete."""
    tag = owner_tag(owner)
    return [c.name for c in saved_checkpoints(root) if c.from_app and (admin or (tag and c.owner == tag))]


def delete_checkpoint(name: str, owner: str | None, admin: bool = False, root: Path | None = None) -> str:
    """Delete checkpoint ``name`` if this session made it (or an admin asks); returns the plain name."""
    name = check_name(name)
    found = next((c for c in saved_checkpoints(root) if c.name == name), None)
    if found is None:
        raise UserError("checkpoints.not_found", name=name)
    if not found.from_app:
        raise UserError("checkpoints.not_from_app", name=name)
    if not admin and not (owner and found.owner == owner_tag(owner)):
        raise UserError("checkpoints.not_yours", name=name)
    shutil.rmtree(found.path)
    logger.info("deleted local:%s (%s)", name, "admin" if admin else "its owner")
    return name
