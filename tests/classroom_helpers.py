"""Databases for the classroom tests: a fresh SQLite file, or a fresh schema on the test PostgreSQL.

``.ci/run`` starts PostgreSQL and exports ``PLM_TEST_POSTGRES_URL``; without it the PostgreSQL
variants are skipped with that reason, so a laptop without PostgreSQL still runs the rest.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Iterator

import pytest

POSTGRES_ENV = "PLM_TEST_POSTGRES_URL"
BACKENDS = ["sqlite", "postgresql"]


def postgres_url() -> str:
    """The test server's URL, or skip the calling test with the reason."""
    url = os.environ.get(POSTGRES_ENV, "").strip()
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set: no PostgreSQL server for this test (.ci/run starts one)")
    return url


@contextlib.contextmanager
def fresh_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database URL with no classroom tables yet; a PostgreSQL schema is dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'classroom.sqlite3'}"
        return
    from sqlalchemy import create_engine, text

    from classroom.schema import normalize_url

    base = normalize_url(postgres_url())
    schema = "t_" + secrets.token_hex(6)
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
