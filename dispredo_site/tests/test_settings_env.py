import pytest
from django.core.exceptions import ImproperlyConfigured

from dispredo_site import env


def test_booleans_are_parsed_strictly(monkeypatch):
    monkeypatch.setenv("X_FLAG", "yes")
    assert env.env_bool("X_FLAG") is True
    monkeypatch.setenv("X_FLAG", "0")
    assert env.env_bool("X_FLAG") is False
    monkeypatch.setenv("X_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="X_FLAG must be one of true/false"):
        env.env_bool("X_FLAG")
    monkeypatch.delenv("X_FLAG")
    assert env.env_bool("X_FLAG") is False


def test_sqlite_is_the_default_database(monkeypatch, tmp_path):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert env.database("DATABASE_URL", tmp_path / "db.sqlite3") == {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(tmp_path / "db.sqlite3"),
    }


def test_postgresql_comes_from_one_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", "postgres://clinic:s%40cret@db.local:5433/dispredo")
    config = env.database("DATABASE_URL", tmp_path / "db.sqlite3")
    assert (config["ENGINE"], config["NAME"], config["USER"], config["PASSWORD"], config["HOST"], config["PORT"]) == (
        "django.db.backends.postgresql", "dispredo", "clinic", "s@cret", "db.local", "5433",
    )
    monkeypatch.setenv("DATABASE_URL", "mysql://x@y/z")
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL must look like postgres://"):
        env.database("DATABASE_URL", tmp_path / "db.sqlite3")


def test_a_generated_secret_key_is_kept_private_and_reused(monkeypatch, tmp_path):
    monkeypatch.delenv("X_SECRET", raising=False)
    first = env.secret_key("X_SECRET", tmp_path / "secret_key")
    assert len(first) > 50 and (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert env.secret_key("X_SECRET", tmp_path / "secret_key") == first
    monkeypatch.setenv("X_SECRET", "from-the-environment")
    assert env.secret_key("X_SECRET", tmp_path / "secret_key") == "from-the-environment"


def test_debug_is_off_by_default():
    from django.conf import settings

    assert settings.DEBUG is False
