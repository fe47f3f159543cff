"""The interactive API docs in a real headless browser: Swagger UI starts from local files only,
and "Try it out" reaches the API with the signed-in session."""

import pytest
from django.contrib.auth import get_user_model

from diagnosis.records.models import Patient
from dispredo_site.testing.browser import MARKS, chromium_page, sign_in

pytestmark = MARKS


@pytest.mark.django_db(transaction=True)
def test_swagger_ui_runs_from_local_files_and_tries_the_api_with_the_session(live_server, monkeypatch):
    get_user_model().objects.create_user("radiographer", password="a long local passphrase", is_staff=True)
    Patient.objects.create(mrn="DOC-1", name="Rosalind Franklin", sex="F")
    with chromium_page(monkeypatch, {"width": 1280, "height": 900}) as page:
        requested, errors = [], []
        page.on("request", lambda request: requested.append(request.url))
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{live_server.url}/api/docs/")
        sign_in(page, live_server.url, "radiographer", "a long local passphrase", "/api/docs/")

        operation = page.locator("#operations-patients-patients_list")
        operation.wait_for(timeout=15000)
        operation.locator(".opblock-summary").click()
        page.click("#operations-patients-patients_list .try-out__btn")
        page.click("#operations-patients-patients_list .execute")
        answer = page.locator("#operations-patients-patients_list .live-responses-table tr.response .response-col_status")
        answer.first.wait_for(timeout=15000)

        assert answer.first.text_content().strip() == "200"
        assert "DOC-1" in page.text_content("#operations-patients-patients_list .live-responses-table")
        assert errors == []
        outside = [url for url in requested if not url.startswith(live_server.url) and not url.startswith("data:")]
        assert outside == []
