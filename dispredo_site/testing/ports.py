"""Free TCP ports on 127.0.0.1, for the tests, test helpers and benchmarks that start a server.

``free_port()`` asks the kernel for a port nothing listens on and releases it again, so the server
started next can bind it (or a test can use it as a port where nothing answers). Another process
may take the port in between; a server that must not fail for that reason starts through
``on_free_port()``, which tries again on another port.
"""

import socket

HOST = "127.0.0.1"  # loopback only: nothing these ports serve is reachable from another machine


def free_port(host=HOST):
    """A TCP port on ``host`` that nothing listens on at the moment of the call."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def on_free_port(start, *, tries=3, retry_on=(OSError,), host=HOST):
    """Call ``start(port)`` with a free port; when it raises one of ``retry_on`` (the port was taken
    between choosing and binding it), call it again with another, at most ``tries`` times in all.

    Returns ``(port, what start returned)``; after the last try its error is raised.
    """
    if tries < 1:
        raise ValueError(f"tries must be at least 1, not {tries}")
    for attempt in range(1, tries + 1):
        port = free_port(host)
        try:
            return port, start(port)
        except retry_on:
            if attempt == tries:
                raise
