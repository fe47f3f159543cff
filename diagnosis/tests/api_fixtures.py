"""Fixtures of the API tests: token-bearing clients, and rate counts that start empty in each test.

Import them into a test module (``from diagnosis.tests.api_fixtures import *``)."""

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import caches
from rest_framework.test import APIClient

from api.models import ApiToken

__all__ = ["fresh_rate_counts", "api", "token_of", "anonymous_api", "visitor", "bearer"]


@pytest.fixture(autouse=True)
def fresh_rate_counts(settings):
    """Rate counts in memory, emptied for each test (not in the data folder's files)."""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "api-tests-default"},
        settings.DISPREDO_API_THROTTLE_CACHE: {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "api-tests-throttle",
        },
    }
    caches[settings.DISPREDO_API_THROTTLE_CACHE].clear()
    yield
    caches[settings.DISPREDO_API_THROTTLE_CACHE].clear()


def bearer(key):
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


@pytest.fixture
def token_of(db):
    """``token_of(user)``: a new token key of ``user``."""

    def issue(user, name="test"):
        return ApiToken.issue(user, name)[1]

    return issue


@pytest.fixture
def api(staff, token_of):
    """An API client sending ``staff``'s token."""
    client = APIClient()
    client.credentials(**bearer(token_of(staff)))
    return client


@pytest.fixture
def anonymous_api():
    return APIClient()


@pytest.fixture
def visitor(db):
    """A signed-up user without staff status."""
    return get_user_model().objects.create_user("visitor", password="correct horse battery")
