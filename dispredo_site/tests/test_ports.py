"""The free-port helper the tests and benchmarks start their servers with: a port nothing listens on,
and another try when the port is taken between choosing and binding it."""

import errno
import socket

import pytest

from dispredo_site.testing.ports import HOST, free_port, on_free_port


def _listen(port):
    """A real server socket on ``port`` (no SO_REUSEADDR: a taken port fails as a server's would)."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        server.bind((HOST, port))
    except OSError:
        server.close()
        raise
    server.listen()
    return server


def test_free_port_gives_a_loopback_port_nothing_answers_on_and_a_server_can_bind():
    port = free_port()
    assert 1024 <= port <= 65535
    with pytest.raises(ConnectionRefusedError), socket.create_connection((HOST, port), timeout=5):
        pass
    with _listen(port) as server:
        assert server.getsockname() == (HOST, port)


def test_on_free_port_tries_another_port_when_the_first_is_taken_meanwhile():
    tried, squatters = [], []

    def start(port):
        tried.append(port)
        if len(tried) == 1:  # another process binds the port between choosing it and the server's bind
            squatters.append(_listen(port))
        return _listen(port)

    try:
        port, server = on_free_port(start)
        with server:
            assert len(tried) == 2 and port == tried[1] != tried[0]
            assert server.getsockname() == (HOST, port)
    finally:
        for squatter in squatters:
            squatter.close()


def test_on_free_port_raises_the_last_error_after_its_tries():
    tried = []

    def start(port):
        tried.append(port)
        raise OSError(errno.EADDRINUSE, f"port {port} taken")

    with pytest.raises(OSError, match=r"port \d+ taken") as raised:
        on_free_port(start, tries=3)
    assert len(tried) == 3 and raised.value.errno == errno.EADDRINUSE


def test_on_free_port_lets_other_errors_through_at_once():
    tried = []

    def start(port):
        tried.append(port)
        raise ValueError("not a port problem")

    with pytest.raises(ValueError, match="not a port problem"):
        on_free_port(start)
    assert len(tried) == 1
