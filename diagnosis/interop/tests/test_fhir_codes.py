"""Issue 26, finding 6: the DiagnosticReport's LOINC code follows the number of views it reads."""

import pytest

from diagnosis.interop.fhir_codes import CHEST_XRAY, VIEWS_PER_REPORT, report_code


def test_one_frontal_film_is_coded_xr_chest_single_view():
    assert report_code(1) == {"system": "http://loinc.org", "code": "36554-4", "display": "XR Chest Single view"}


def test_two_views_are_coded_xr_chest_2_views():
    assert report_code(2) == {"system": "http://loinc.org", "code": "36643-5", "display": "XR Chest 2 Views"}


def test_every_report_today_reads_one_view():
    assert VIEWS_PER_REPORT == 1
    assert CHEST_XRAY == report_code(1)


@pytest.mark.parametrize("views", [0, 3, None])
def test_a_count_of_views_without_a_code_is_refused(views):
    with pytest.raises(ValueError, match=rf"No report code for {views!r} views: Dispredo codes 1 or 2\."):
        report_code(views)


def test_the_code_handed_out_is_a_copy():
    report_code(1)["code"] = "changed"
    assert report_code(1)["code"] == "36554-4"
