"""Finding 7: the database file is private (0600) and the data folders are private (0700)."""

import os
import stat
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def run_setup(data_dir):
    env = {**os.environ, "DISPREDO_DATA_DIR": str(data_dir), "DISPREDO_ADMIN_PASSWORD": "a long local passphrase"}
    for name in ("DATABASE_URL", "DISPREDO_MEDIA_ROOT", "DISPREDO_MODEL_DIR", "DISPREDO_SECRET_KEY"):
        env.pop(name, None)
    # The usual umask, so that only Dispredo's own care can make the files private.
    result = subprocess.run(
        [sys.executable, "manage.py", "setup"], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=300, preexec_fn=lambda: os.umask(0o022),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_setup_makes_the_database_and_data_folders_private(tmp_path):
    data = tmp_path / "data"
    run_setup(data)
    assert mode(data / "dispredo.sqlite3") == 0o600
    for folder in (data, data / "media", data / "models"):
        assert folder.is_dir() and mode(folder) == 0o700, folder
    assert mode(data / "secret_key") == 0o600
    # SQLite's write-ahead log and index, where present, are as private as the database.
    for extra in ("dispredo.sqlite3-wal", "dispredo.sqlite3-shm"):
        if (data / extra).exists():
            assert mode(data / extra) == 0o600, extra


def test_setup_makes_an_existing_readable_installation_private(tmp_path):
    data = tmp_path / "data"
    run_setup(data)
    os.chmod(data, 0o755)
    os.chmod(data / "media", 0o755)
    os.chmod(data / "dispredo.sqlite3", 0o644)
    result = run_setup(data)
    assert mode(data) == 0o700 and mode(data / "media") == 0o700
    assert mode(data / "dispredo.sqlite3") == 0o600
    assert "private" in result.stdout
