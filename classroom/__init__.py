"""Classroom mode's storage and logic: rooms, items, answers, scores, expiry, rate limits, CSV export.

A top-level package rather than part of ``model_utils``: it is about people, not models (its
one contact with models is each item kind's ``model_answer``, which calls the ``model_utils``
task functions lazily), it brings its own dependency (SQLAlchemy and a database driver), and
its tests run against SQLite and PostgreSQL without loading torch. It never imports Gradio or
``demo``; ``demo/classroom_tab.py`` is its UI.

    from classroom import open_classroom
    room = open_classroom().create_room()      # {"code", "secret", "expires_at"}
"""

from __future__ import annotations

from classroom.export import to_csv
from classroom.kinds import KINDS, ItemKind, normalize_answer
from classroom.limits import RateLimiter
from classroom.rooms import Classroom, new_room_code, normalize_code
from classroom.schema import make_engine, shared_engine, sqlite_url

__all__ = ["Classroom", "ItemKind", "KINDS", "RateLimiter", "database_url", "make_engine", "new_room_code",
           "normalize_answer", "normalize_code", "open_classroom", "to_csv"]


def database_url(settings: object | None = None) -> str:
    """``PLM_CLASSROOM_DB``, or the SQLite file in ``PLM_DATA_DIR``."""
    from model_utils.config import get_settings

    settings = settings or get_settings()
    return settings.classroom_db or sqlite_url(settings.data_dir)


def _default_model(task: str) -> str:
    """The checkpoint a question of ``task`` is answered by when the instructor names none."""
    from model_utils.config import get_settings, hub_offline

    settings = get_settings()
    return settings.default_checkpoint(task, hub_offline(settings))


def open_classroom(settings: object | None = None) -> Classroom:
    """The classroom on the configured database (the process shares one engine per URL)."""
    from model_utils.config import get_settings

    settings = settings or get_settings()
    return Classroom(shared_engine(database_url(settings)), ttl_s=settings.room_ttl_s,
                     max_learners=settings.classroom_max_learners, default_model=_default_model)
