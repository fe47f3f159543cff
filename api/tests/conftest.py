import pytest


@pytest.fixture(autouse=True)
def _rate_counts_in_memory(fresh_rate_counts):
    """Every API test starts with empty rate counts, kept in memory."""
