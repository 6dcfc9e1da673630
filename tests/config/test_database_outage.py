"""A PostgreSQL restart, as bench/chaos.py does one: the API answers 503 with a code while the server
is away (not a 500 with a traceback), and the first request after it comes back does not fail on the
persistent connection the restart cut. Only this test's own connection is cut or pointed elsewhere;
the machine's PostgreSQL keeps running."""

from __future__ import annotations

import psycopg
import pytest
from django.db import close_old_connections, connection

from tests.support.serving_fixtures import free_port

pytestmark = pytest.mark.django_db(transaction=True)


def _postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL): the outage is a server's")


def test_api_answers_503_with_a_code_while_the_database_is_unreachable(auth_client) -> None:
    _postgres_only()
    real_port = connection.settings_dict["PORT"]
    connection.close()
    # Nothing listens on this port: every connect is refused, as while the server restarts.
    connection.settings_dict["PORT"] = str(free_port())
    try:
        response = auth_client.get("/api/v1/products/")
    finally:
        connection.close()
        connection.settings_dict["PORT"] = real_port
    assert response.status_code == 503, response.content
    assert response.json()["error"]["code"] == "database_unavailable"
    assert response.headers["Retry-After"]
    assert "Traceback" not in response.content.decode()
    assert auth_client.get("/api/v1/products/").status_code == 200  # and back once it answers


def test_a_connection_the_server_cut_is_replaced_at_the_next_request(auth_client, monkeypatch) -> None:
    _postgres_only()
    # The served settings' connection handling (the test settings close connections after each
    # request instead): kept connections (DB_CONN_MAX_AGE) and whatever checks them.
    from config.settings import base

    for key in ("CONN_MAX_AGE", "CONN_HEALTH_CHECKS"):
        monkeypatch.setitem(connection.settings_dict, key, base.DATABASES["default"][key])
    assert connection.settings_dict["CONN_MAX_AGE"] > 0
    connection.close()
    assert auth_client.get("/api/v1/products/").status_code == 200
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    # What a restart does to every open connection: the server ends the backend.
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"] or "postgres",
        dbname=db["NAME"],
        autocommit=True,
    ) as other:
        other.execute("SELECT pg_terminate_backend(%s)", (pid,))
    # What Django does at the start of each request (the test client leaves it out).
    close_old_connections()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
