"""The classroom's tables (SQLAlchemy 2 ORM) and the engine that stores them.

Four tables: rooms, learners, items and answers. Secrets are stored only as SHA-256 hashes
(the instructor's secret, each learner's token, the room code's lookup key). Times are UNIX
seconds (floats), the same on SQLite and PostgreSQL. The engine is SQLite by default (a file in
``PLM_DATA_DIR``, WAL mode so that readers never wait for the writer) or any database URL in
``PLM_CLASSROOM_DB``; a bare ``postgresql://`` URL uses psycopg 3.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sqlalchemy import (JSON, Boolean, Engine, Float, ForeignKey, Integer, String, UniqueConstraint,
                        create_engine, event, text)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NICKNAME_CHARS = 24  # longest nickname
ANSWER_CHARS = 40  # longest free-text answer
SQLITE_FILE = "classroom.sqlite3"


class Base(DeclarativeBase):
    """Declarative base of the classroom tables."""


class Room(Base):
    """One class session: its code, who may drive it, and which item is on the learners' screens."""

    __tablename__ = "classroom_rooms"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(16))
    code_key: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of the code: the lookup key
    instructor_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float, index=True)
    closed_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    current_item_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Learner(Base):
    """A learner in a room; the token in their browser session is stored hashed."""

    __tablename__ = "classroom_learners"
    __table_args__ = (UniqueConstraint("room_id", "nickname_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("classroom_rooms.id", ondelete="CASCADE"), index=True)
    nickname: Mapped[str] = mapped_column(String(NICKNAME_CHARS))
    nickname_key: Mapped[str] = mapped_column(String(NICKNAME_CHARS))  # casefolded: "Ann" and "ann" clash
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    on_leaderboard: Mapped[bool] = mapped_column(Boolean, default=False)
    joined_at: Mapped[float] = mapped_column(Float)


class Item(Base):
    """A question pushed to the room; the model's answer and the class summary are stored at reveal."""

    __tablename__ = "classroom_items"
    __table_args__ = (UniqueConstraint("room_id", "position"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("classroom_rooms.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict] = mapped_column(JSON)
    choices: Mapped[list | None] = mapped_column(JSON, nullable=True)
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    pushed_at: Mapped[float] = mapped_column(Float)
    deadline: Mapped[float | None] = mapped_column(Float, nullable=True)
    revealed_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    model_best: Mapped[str | None] = mapped_column(String(ANSWER_CHARS), nullable=True)  # normalized
    model_answer: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    summary: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # the class's answers at reveal


class Answer(Base):
    """One learner's answer to one item (one row per pair: a second submit replaces the first)."""

    __tablename__ = "classroom_answers"
    __table_args__ = (UniqueConstraint("item_id", "learner_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("classroom_items.id", ondelete="CASCADE"), index=True)
    learner_id: Mapped[int] = mapped_column(ForeignKey("classroom_learners.id", ondelete="CASCADE"), index=True)
    answer: Mapped[str] = mapped_column(String(ANSWER_CHARS))
    answered_at: Mapped[float] = mapped_column(Float)


def sqlite_url(data_dir: Path) -> str:
    """The default database: ``data_dir/classroom.sqlite3`` (the folder is created)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(data_dir / SQLITE_FILE).resolve()}"


def normalize_url(url: str) -> str:
    """``url`` with a driver named: ``postgresql://`` -> psycopg 3 (SQLAlchemy's default is psycopg2)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: polls read while an answer is written; busy_timeout: writers queue instead of failing;
    # foreign_keys: deleting an expired room deletes its learners, items and answers.
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=15000", "foreign_keys=ON"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def make_engine(url: str) -> Engine:
    """A new engine for ``url`` with the classroom's tables created (safe for processes starting together)."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, pool_size=8, max_overflow=24, pool_timeout=60)
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_size=8, max_overflow=24, pool_timeout=60, pool_pre_ping=True)
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":  # two app processes starting at once: one creates
            connection.execute(text("SELECT pg_advisory_xact_lock(7219001)"))
        Base.metadata.create_all(connection)
    return engine


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def shared_engine(url: str) -> Engine:
    """The process's one engine (and connection pool) for ``url``."""
    with _engines_lock:
        if url not in _engines:
            _engines[url] = make_engine(url)
        return _engines[url]
