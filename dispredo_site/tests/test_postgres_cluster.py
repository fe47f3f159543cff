"""The throw-away PostgreSQL cluster bin/test runs the suite on: it answers, only on loopback and
with its password, and stop leaves nothing behind."""

import socket
import tempfile
from pathlib import Path

import psycopg
import pytest

from dispredo_site.testing import postgres


@pytest.fixture
def cluster_folder():
    try:
        postgres.check()
    except postgres.Unavailable as error:
        pytest.skip(f"PostgreSQL cannot run here: {error}")
    folder = Path(tempfile.mkdtemp(prefix="dispredo-pg-test-", dir="/tmp"))
    yield folder
    if (folder / postgres.MARKER).exists():
        postgres.stop(folder)


def test_a_started_cluster_answers_on_loopback_and_stop_removes_it(cluster_folder):
    url = postgres.start(cluster_folder)
    port = int((cluster_folder / "port").read_text())
    assert url.startswith(f"postgres://{postgres.USER}:") and url.endswith(f"@127.0.0.1:{port}/{postgres.DATABASE}")
    with psycopg.connect(url) as connection:
        assert connection.execute("SELECT 1 + 1").fetchone() == (2,)
        assert connection.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        assert connection.execute("SHOW fsync").fetchone() == ("off",)  # the suite's cluster trades durability
    wrong = url.replace(url.split(":")[2].split("@")[0], "not-the-password")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong)

    postgres.stop(cluster_folder)
    assert not cluster_folder.exists()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    postgres.stop(cluster_folder)  # a second stop is harmless


def test_a_durable_cluster_keeps_postgresqls_durability_and_reports_its_version(cluster_folder):
    url = postgres.start(cluster_folder, durable=True)
    with psycopg.connect(url) as connection:
        settings = {
            name: connection.execute(f"SHOW {name}").fetchone()[0]
            for name in ("fsync", "synchronous_commit", "full_page_writes", "listen_addresses")
        }
        server = connection.execute("SHOW server_version").fetchone()[0]
    assert settings == {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on", "listen_addresses": "127.0.0.1"}
    version = postgres.server_version()
    assert version.startswith(f"PostgreSQL {server.split()[0]}"), (version, server)


def test_stop_refuses_a_folder_it_did_not_start(tmp_path):
    (tmp_path / "keep.txt").write_text("precious")
    with pytest.raises(RuntimeError, match="holds no test cluster started by this helper; not removing it"):
        postgres.stop(tmp_path)
    assert (tmp_path / "keep.txt").read_text() == "precious"


def test_start_refuses_a_folder_that_is_not_empty(tmp_path):
    (tmp_path / "keep.txt").write_text("precious")
    with pytest.raises(RuntimeError, match="is not empty; give start an empty or new folder"):
        postgres.start(tmp_path)
    assert (tmp_path / "keep.txt").read_text() == "precious"


def test_as_root_it_refuses_a_folder_the_postgres_user_cannot_reach(tmp_path):
    import os

    if os.geteuid() != 0:
        pytest.skip("only root runs the cluster as another user")
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    with pytest.raises(RuntimeError, match=f"cannot reach {closed / 'pg'}: {closed} is closed to other users"):
        postgres.start(closed / "pg")
    assert not (closed / "pg").exists()
