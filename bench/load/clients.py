"""The load benchmark's clients: a browser-like HTTP client with its own session (standard library
only), a multipart body, signing clients in and registering the patient they upload for."""

import http.cookiejar
import re
import secrets
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid

from bench._common import BenchError
from dispredo_site.testing.ports import HOST  # the only address this benchmark ever talks to

USERNAME = "bench"
CSRF_INPUT = re.compile(rb'name="csrfmiddlewaretoken" value="([^"]+)"')
REQUEST_TIMEOUT_S = 120


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Hand redirects back to the caller, which needs the Location of the upload's redirect."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class Client:
    """One browser-like user: its own cookies (session, CSRF), talking only to 127.0.0.1.

    With several servers (``ports``) it sends each request to the one it is told (``server``: an index,
    default its ``home``); cookies ignore the port, so one session serves them all, as behind a load
    balancer."""

    def __init__(self, ports, home=0):
        ports = [ports] if isinstance(ports, int) else list(ports)
        self.bases = [f"http://{HOST}:{port}" for port in ports]
        self.home = home % len(self.bases)
        self.sent = 0  # uploads sent so far, to spread the next ones over the servers
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect())

    def request(self, method, path, body=None, content_type=None, server=None):
        """(status, headers, body bytes); HTTP errors and redirects are returned, not raised."""
        headers = {"Content-Type": content_type} if content_type else {}
        base = self.bases[self.home if server is None else server % len(self.bases)]
        req = urllib.request.Request(base + path, data=body, method=method, headers=headers)
        try:
            with self.opener.open(req, timeout=REQUEST_TIMEOUT_S) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.headers, exc.read()

    def csrf_token(self):
        for cookie in self.jar:
            if cookie.name == "csrftoken":
                return cookie.value
        raise BenchError("No CSRF cookie: the server did not set csrftoken.")

    def form_token(self, path):
        status, _, body = self.request("GET", path)
        match = CSRF_INPUT.search(body)
        if status != 200 or not match:
            raise BenchError(f"GET {path} gave {status} without a CSRF token in the form.")
        return match.group(1).decode()

    def sign_in(self, username, password):
        token = self.form_token("/accounts/login/")
        body = urllib.parse.urlencode(
            {"username": username, "password": password, "csrfmiddlewaretoken": token, "next": "/"}
        ).encode()
        status, headers, _ = self.request("POST", "/accounts/login/", body, "application/x-www-form-urlencoded")
        if status != 302 or "/accounts/login/" in (headers.get("Location") or ""):
            raise BenchError(f"Signing in as {username} failed (HTTP {status}).")

    def post_form(self, path, fields):
        fields = {"csrfmiddlewaretoken": self.csrf_token(), **fields}
        body = urllib.parse.urlencode(fields).encode()
        return self.request("POST", path, body, "application/x-www-form-urlencoded")


def multipart(fields, files):
    """A multipart/form-data body: (bytes, content type). ``files``: {name: (filename, bytes, type)}."""
    boundary = f"----dispredo-bench-{uuid.uuid4().hex}"
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    for name, (filename, data, content_type) in files.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def sign_in_all(ports, count, password):
    """``count`` signed-in clients; client i's home (where it signs in) is server i."""
    clients = [Client(ports, home=i) for i in range(count)]
    errors = []

    def sign_in(client):
        try:
            client.sign_in(USERNAME, password)
        except (BenchError, OSError) as exc:
            errors.append(str(exc))

    # A few at a time: each sign-in hashes the password (PBKDF2), about half a second of CPU.
    for start in range(0, count, 4):
        threads = [threading.Thread(target=sign_in, args=(c,)) for c in clients[start : start + 4]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if errors:
        raise BenchError(f"{len(errors)} of {count} clients could not sign in: {errors[0]}")
    return clients


def create_patient(client):
    client.form_token("/patients/new/")  # as a browser: the form first (sets the CSRF cookie)
    mrn = f"BENCH-{secrets.token_hex(4).upper()}"
    status, headers, _ = client.post_form(
        "/patients/new/", {"mrn": mrn, "name": "Load Benchmark", "sex": "U", "date_of_birth": "", "notes": ""}
    )
    match = re.match(r"^/patients/(\d+)/$", urllib.parse.urlsplit(headers.get("Location") or "").path)
    if status != 302 or not match:
        raise BenchError(f"Creating a patient failed (HTTP {status}).")
    return int(match.group(1))
