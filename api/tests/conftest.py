import pytest


@pytest.fixture(autouse=True)
def _fresh_rate_counts(fresh_rate_counts):
    """Every API test starts with empty rate counts."""
