"""Findings 3 and 8 (gunicorn): workers are recycled, and binding beyond loopback without a proxy warns."""

import re
import shlex
from pathlib import Path

import pytest

from dispredo_site.env import bind_warning

START = Path(__file__).resolve().parents[2] / "bin" / "start"


def gunicorn_arguments():
    """bin/start's gunicorn command line, with each ${VAR:-default} at its default, as gunicorn parses it."""
    from gunicorn.config import Config

    text = START.read_text()
    command = text[text.index("exec gunicorn"):].replace("\\\n", " ").splitlines()[0]
    command = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", command)
    argv = shlex.split(command)[2:]
    return Config().parser().parse_args(argv)


def test_bin_start_recycles_workers_with_jitter():
    arguments = gunicorn_arguments()
    assert arguments.max_requests == 500
    assert arguments.max_requests_jitter == 50
    assert arguments.bind == ["127.0.0.1:8000"]


def test_bin_start_prints_the_bind_warning_before_serving():
    text = START.read_text()
    assert "bind_warning" in text and text.index("print_bind_warning") < text.index("exec gunicorn")


@pytest.mark.parametrize("bind", ["127.0.0.1:8000", "localhost:8000", "[::1]:8000", "127.0.0.2:9000", "unix:/run/dispredo.sock"])
def test_loopback_and_unix_sockets_need_no_warning(bind):
    assert bind_warning(bind, behind_proxy=False) is None


@pytest.mark.parametrize("bind", ["0.0.0.0:8000", "192.168.1.20:8000", "[::]:8000", ":8000", "dispredo.clinic.example:80"])
def test_binding_beyond_loopback_without_a_proxy_warns(bind):
    warning = bind_warning(bind, behind_proxy=False)
    assert warning.startswith(f"Warning: gunicorn listens on {bind}, beyond this machine")
    assert "DISPREDO_BEHIND_PROXY=true" in warning and "127.0.0.1" in warning


def test_binding_beyond_loopback_behind_a_proxy_is_fine():
    assert bind_warning("0.0.0.0:8000", behind_proxy=True) is None
