"""Tools for running the test suite (not imported by the application)."""
