"""Issue 26: the API's rate counts hold under concurrency. Processes with their own connections (as
gunicorn's workers are) check one user's rate at once; of N requests at a limit of M, exactly M are
allowed. On SQLite (a database file, as a server uses) and on PostgreSQL (the test database)."""

import json
import os
import subprocess
import sys
import time

import pytest
from django.db import connection

from api.models import RateCount
from dispredo_site.testing.helpers import REPO

PROCESSES, REQUESTS_EACH, LIMIT = 4, 12, 20
# Per day, so that the race cannot straddle the start of a new window.
RATE = f"{LIMIT}/day"


def run(*args, env):
    return [sys.executable, "-m", "dispredo_site.testing.rate_race", *args]


def shared_database(tmp_path, env):
    """A database every process reaches: the PostgreSQL test database, or a new SQLite file (the
    SQLite test database lives in this process's memory) with the rate count table."""
    settings = {key: value for key, value in connection.settings_dict.items() if key != "TEST"}
    if connection.vendor != "sqlite":
        return json.dumps(settings, default=str)
    settings["NAME"] = str(tmp_path / "rates.sqlite3")
    database = json.dumps(settings, default=str)
    subprocess.run(run("prepare", database, env=env), cwd=REPO, env=env, check=True, timeout=120)
    return database


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_at_a_limit_of_m_allow_exactly_m(tmp_path):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "dispredo_site.settings",
           "DISPREDO_DATA_DIR": str(tmp_path / "data"), "DISPREDO_SECRET_KEY": "rate-race"}
    database = shared_database(tmp_path, env)
    folder = tmp_path / "race"
    folder.mkdir()
    racers = [
        subprocess.Popen(
            run("race", database, RATE, str(REQUESTS_EACH), str(folder), str(number), env=env),
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for number in range(PROCESSES)
    ]
    try:
        deadline = time.monotonic() + 120
        while len(list(folder.glob("ready-*"))) < PROCESSES:
            assert time.monotonic() < deadline, "the racing processes did not start"
            assert all(racer.poll() is None for racer in racers), [racer.communicate() for racer in racers]
            time.sleep(0.01)
        (folder / "go").touch()  # all connected: they start together
        results = [racer.communicate(timeout=120) for racer in racers]
    finally:
        for racer in racers:
            racer.kill()
    assert all(racer.returncode == 0 for racer in racers), [err[-2000:] for _, err in results]

    allowed = [int(out) for out, _ in results]
    assert sum(allowed) == LIMIT, allowed
    if connection.vendor != "sqlite":
        assert RateCount.objects.get(key="throttle_requests_user-7").count == PROCESSES * REQUESTS_EACH


@pytest.mark.django_db
def test_a_new_window_starts_the_count_again_and_removes_ended_ones():
    assert RateCount.hit("a", 60, 120.5) == (1, 180)
    assert RateCount.hit("a", 60, 179.9) == (2, 180)
    assert RateCount.hit("b", 60, 150) == (1, 180)
    # A new window of "a": the rows of windows ended by then ("b"'s) are removed.
    assert RateCount.hit("a", 60, 180) == (1, 240)
    assert sorted(RateCount.objects.values_list("key", flat=True)) == ["a"]
    # A server whose clock is a little behind counts in the window already stored.
    assert RateCount.hit("a", 60, 178) == (2, 240)
    assert RateCount.hit("c", 60, 300) == (1, 360)
    assert sorted(RateCount.objects.values_list("key", flat=True)) == ["c"]
