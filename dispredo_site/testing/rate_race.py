"""Processes racing for the API's rate counts, for the test that N concurrent requests at a limit of M
allow exactly M (api/tests/test_api_rate_count_race.py). Each is a separate Python process with its
own database connection, as gunicorn's workers are.

    python -m dispredo_site.testing.rate_race prepare DATABASE
    python -m dispredo_site.testing.rate_race race DATABASE RATE REQUESTS FOLDER NUMBER

``prepare`` makes the rate count table in a new database. ``race`` writes FOLDER/ready-NUMBER once it
is connected, waits for FOLDER/go, makes REQUESTS throttle checks of one user at RATE as fast as it
can, and prints how many were allowed. DATABASE is a Django database entry in JSON.
"""

import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace


def main(argv):
    mode, database = argv[0], json.loads(argv[1])
    import dispredo_site.settings as site

    site.DATABASES = {"default": database}
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.test import RequestFactory

    from api.models import RateCount
    from api.throttles import RequestThrottle

    if mode == "prepare":
        with connection.schema_editor() as editor:
            editor.create_model(RateCount)
        return
    rate, requests, folder, number = argv[2], int(argv[3]), Path(argv[4]), argv[5]
    settings.DISPREDO_API_REQUEST_RATE = rate
    request = RequestFactory().get("/api/patients/")
    request.user = SimpleNamespace(pk=7, is_authenticated=True)
    connection.ensure_connection()
    (folder / f"ready-{number}").touch()
    while not (folder / "go").exists():
        time.sleep(0.002)
    allowed = sum(bool(RequestThrottle().allow_request(request, None)) for _ in range(requests))
    print(allowed)


if __name__ == "__main__":
    main(sys.argv[1:])
