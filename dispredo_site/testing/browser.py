"""Headless Chromium for the end-to-end tests: Debian's chromium driven by Playwright."""

import contextlib
import re
import shutil

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (bin/test installs it when run as root)"),
]


@contextlib.contextmanager
def chromium_page(monkeypatch, viewport):
    """A page of a fresh headless Chromium with ``viewport`` ({"width", "height"}), closed afterwards."""
    from django.db import connections
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls here are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        try:
            yield browser.new_page(viewport=viewport)
        finally:
            browser.close()
            # Playwright runs this block in a context of its own, so the ORM's connections opened
            # here are not the test's: close them, or each stays open on PostgreSQL and the test
            # database cannot be dropped at the end.
            connections.close_all()


def pages_in(pdf):
    """The number of page objects in a PDF (``/Type /Page``, not ``/Pages``)."""
    return len(re.findall(rb"/Type\s*/Page[^s]", pdf))


def sign_in(page, base_url, username, password, then):
    """Fill in and send the sign-in form the page shows, then wait for ``then`` (a URL path)."""
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}{then}")
