"""The local PostgreSQL test server answers (``bash infra/scripts/postgres.sh start``).

The URL comes from ``PUHUI_TEST_DATABASE_URL``, else from ``postgres.sh url``. An unreachable
server is a failure, never a skip: these tests exist to prove the real server is there.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
POSTGRES_SCRIPT = REPO_ROOT / "infra" / "scripts" / "postgres.sh"


def database_url() -> str:
    """``PUHUI_TEST_DATABASE_URL``, else the URL that ``postgres.sh url`` prints."""
    url = os.environ.get("PUHUI_TEST_DATABASE_URL", "").strip()
    if url:
        return url
    done = subprocess.run(
        ["bash", str(POSTGRES_SCRIPT), "url"],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return done.stdout.strip()


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    url = make_url(database_url())
    assert url.get_backend_name() == "postgresql", f"not a PostgreSQL URL: {url!r}"
    engine = create_engine(url, connect_args={"connect_timeout": 5})
    yield engine
    engine.dispose()


def connect(engine: Engine) -> Connection:
    """A connection, or a test failure (not an error, not a skip) saying how to start the server."""
    try:
        return engine.connect()
    except OperationalError as exc:
        pytest.fail(
            f"PostgreSQL at {engine.url!r} is not reachable "
            f"(start it with `bash infra/scripts/postgres.sh start`): {exc}",
            pytrace=False,
        )


def test_server_reports_its_version(engine: Engine) -> None:
    with connect(engine) as conn:
        version = conn.execute(text("select version()")).scalar_one()
        version_num = int(conn.execute(text("show server_version_num")).scalar_one())
        encoding = conn.execute(text("show server_encoding")).scalar_one()
    assert version.startswith("PostgreSQL "), version
    assert version_num >= 150000, version
    assert encoding == "UTF8"


def test_temp_table_round_trip(engine: Engine) -> None:
    with connect(engine) as conn, conn.begin():
        conn.execute(text("create temp table puhui_probe (id int primary key, zone text not null)"))
        conn.execute(
            text("insert into puhui_probe (id, zone) values (:id, :zone)"),
            [{"id": 1, "zone": "打浦桥街道"}, {"id": 2, "zone": "田子坊"}],
        )
        rows = conn.execute(text("select id, zone from puhui_probe order by id")).all()
        conn.execute(text("drop table puhui_probe"))
    assert [tuple(row) for row in rows] == [(1, "打浦桥街道"), (2, "田子坊")]


def test_app_role_can_create_and_drop_tables(engine: Engine) -> None:
    """Since PostgreSQL 15 only the database owner may create in ``public`` by default."""
    table = f"puhui_probe_{uuid.uuid4().hex[:12]}"
    with connect(engine) as conn:
        try:
            with conn.begin():
                conn.execute(text(f"create table {table} (id bigint primary key)"))
                conn.execute(text(f"insert into {table} (id) values (1), (2), (3)"))
            with conn.begin():
                count = conn.execute(text(f"select count(*) from {table}")).scalar_one()
        finally:
            conn.rollback()
            with conn.begin():
                conn.execute(text(f"drop table if exists {table}"))
        with conn.begin():
            exists = conn.execute(text("select to_regclass(:name)"), {"name": table}).scalar_one()
    assert count == 3
    assert exists is None
