"""The fixtures every test folder shares live in dispredo_site/testing/fixtures.py."""

pytest_plugins = ["dispredo_site.testing.fixtures"]
