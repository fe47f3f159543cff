"""Finding 6: a Content Security Policy without inline script, and HTTPS settings that pass check --deploy."""

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

REPO = Path(__file__).resolve().parents[2]


def policy(response):
    """The response's Content-Security-Policy as {directive: [sources]}."""
    header = response["Content-Security-Policy"]
    directives = {}
    for part in header.split(";"):
        name, *sources = part.split()
        directives[name] = sources
    return directives


def production_env(tmp_path):
    """The environment of README.md's "Production" section (PostgreSQL is named, never connected to)."""
    return {
        **os.environ,
        "DISPREDO_SECRET_KEY": secrets.token_urlsafe(50),
        "DISPREDO_ALLOWED_HOSTS": "dispredo.clinic.example",
        "DISPREDO_CSRF_TRUSTED_ORIGINS": "https://dispredo.clinic.example",
        "DISPREDO_SECURE_COOKIES": "true",
        "DISPREDO_BEHIND_PROXY": "true",
        "DATABASE_URL": "postgres://dispredo:PASSWORD@localhost:5432/dispredo",
        "DISPREDO_DATA_DIR": str(tmp_path / "srv"),
    }


@pytest.mark.django_db
def test_pages_carry_a_policy_without_inline_script(client, staff_client, admin_client_, patient):
    pages = [
        (client, reverse("login")),
        (staff_client, reverse("diagnosis:worklist")),
        (staff_client, reverse("diagnosis:patient_detail", args=[patient.pk])),
        (staff_client, reverse("diagnosis:upload")),
        (admin_client_, reverse("admin:index")),
    ]
    for who, url in pages:
        directives = policy(who.get(url))
        assert directives["default-src"] == ["'self'"], url
        assert directives["script-src"] == ["'self'"], url
        assert directives["object-src"] == ["'none'"], url
        assert directives["frame-ancestors"] == ["'none'"], url
        assert directives["base-uri"] == ["'self'"] and directives["form-action"] == ["'self'"], url
        # The admin's ROC curves are data: URIs; the upload preview is a blob: URL.
        assert directives["img-src"] == ["'self'", "data:", "blob:"], url
        # Inline style attributes (the findings' bar widths) are allowed; inline script never is.
        assert directives["style-src"] == ["'self'", "'unsafe-inline'"], url


def template_files():
    return sorted(p for p in (REPO / "templates").rglob("*.html"))


INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I)
EVENT_ATTRIBUTE = re.compile(r"<[^>]*\son[a-z]+\s*=", re.I)
JAVASCRIPT_URL = re.compile(r"""(href|src|action)\s*=\s*["']?\s*javascript:""", re.I)


def test_no_template_holds_inline_script():
    assert template_files()
    found = []
    for path in template_files():
        text = path.read_text()
        for pattern in (INLINE_SCRIPT, EVENT_ATTRIBUTE, JAVASCRIPT_URL):
            found += [f"{path.relative_to(REPO)}: {match.group(0)}" for match in pattern.finditer(text)]
    assert found == []


def test_check_deploy_is_clean_under_the_production_settings(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO, env=production_env(tmp_path), capture_output=True, text=True, timeout=180,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues" in output, output


PROBE = """
import json, django
django.setup()
from django.test import Client
client = Client()
plain = client.get("/favicon.ico")
secure = client.get("/favicon.ico", HTTP_X_FORWARDED_PROTO="https")
print(json.dumps({
    "plain": [plain.status_code, plain.get("Location")],
    "secure": [secure.status_code, secure.get("Strict-Transport-Security")],
}))
"""


def test_https_settings_redirect_to_https_and_send_hsts(tmp_path):
    env = production_env(tmp_path)
    env.pop("DATABASE_URL")
    env["DISPREDO_ALLOWED_HOSTS"] = "testserver"
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["plain"] == [301, "https://testserver/favicon.ico"]
    assert seen["secure"] == [301, "max-age=31536000; includeSubDomains"]


def test_without_the_https_settings_there_is_no_redirect_or_hsts(tmp_path):
    env = {**os.environ, "DISPREDO_DATA_DIR": str(tmp_path), "DISPREDO_ALLOWED_HOSTS": "testserver"}
    for name in ("DISPREDO_SECURE_COOKIES", "DISPREDO_BEHIND_PROXY"):
        env.pop(name, None)
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["plain"][0] == 301 and seen["plain"][1].startswith("/static/")
    assert seen["secure"][1] is None
