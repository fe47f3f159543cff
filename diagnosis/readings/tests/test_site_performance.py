"""How the model does here: stored predictions against the current signed-off readings, by hand."""

import datetime
import itertools

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from diagnosis.lifecycle.models import ModelVersion
from diagnosis.readings.models import Reading
from diagnosis.readings.performance import MIN_PER_CLASS, site_performance, versions_with_readings, wilson
from diagnosis.records.models import Patient, Prediction
from dispredo_core.findings import FINDINGS
from dispredo_site.testing.factories import make_xray
from dispredo_site.testing.tiny_model import tiny_reliability

AT = datetime.datetime(2026, 3, 4, 9, 30, tzinfo=datetime.timezone.utc)
_numbers = itertools.count(1)


@pytest.fixture
def version(db):
    """A version flagging at 0.5, with Hernia not reliable and expected figures on unseen patients."""
    return ModelVersion.objects.create(
        name="clinic-check",
        artefact_path="/nowhere",
        thresholds={name: 0.5 for name in FINDINGS},
        reliability=tiny_reliability(unreliable=("Hernia",)),
        operating_point={
            "target_specificity": 0.95,
            "findings": {name: {"threshold": 0.5, "sensitivity": [0.4, 0.3, 0.5], "specificity": [0.95, 0.93, 0.97]}
                         for name in FINDINGS},
        },
        is_active=True,
    )


def read_xray(version, marks, scores, *, patient=None, status="signed", user=None):
    """An X-ray scored by ``version`` (``scores``: finding -> probability, others 0.01) with a
    reading version 1 marking ``marks`` (finding -> mark, others absent)."""
    number = next(_numbers)
    patient = patient or Patient.objects.create(mrn=f"P{number}", name=f"Patient {number}")
    xray = make_xray(patient, content=f"image {number}".encode())
    Prediction.objects.bulk_create(
        Prediction(xray=xray, finding=name, probability=scores.get(name, 0.01),
                   flagged=version.flags(name, scores.get(name, 0.01)), model_version=version)
        for name in FINDINGS
    )
    reading(xray, 1, marks, status, user)
    return xray


def reading(xray, number, marks, status="signed", user=None):
    return Reading.objects.create(
        xray=xray, version=number, status=status, marks={name: marks.get(name, "absent") for name in FINDINGS},
        signed_by=user if status == "signed" else None, signed_at=AT if status == "signed" else None,
    )


def row_of(performance, finding):
    (row,) = [row for row in performance.findings if row.finding == finding]
    return row


@pytest.mark.django_db
def test_counts_sensitivity_and_specificity_at_the_threshold_match_a_hand_count(version):
    for score in (0.9, 0.7, 0.2):  # 3 positives, 2 reach the threshold
        read_xray(version, {"Effusion": "present"}, {"Effusion": score})
    for score in (0.6, 0.1, 0.1, 0.3):  # 4 negatives, 1 reaches it
        read_xray(version, {"Effusion": "absent"}, {"Effusion": score})
    read_xray(version, {"Effusion": "not_assessable"}, {"Effusion": 0.95})  # left out of Effusion only

    performance = site_performance(version)
    row = row_of(performance, "Effusion")
    assert (performance.readings, performance.patients) == (8, 8)
    assert (row.readings, row.positives, row.negatives) == (7, 3, 4)
    assert (row.true_positives, row.false_negatives, row.false_positives, row.true_negatives) == (2, 1, 1, 3)
    assert row.sensitivity[0] == pytest.approx(2 / 3) and row.specificity[0] == pytest.approx(3 / 4)
    # The intervals are at least as wide as the Wilson interval of the same counts.
    for (estimate, low, high), (hits, total) in ((row.sensitivity, (2, 3)), (row.specificity, (3, 4))):
        w_low, w_high = wilson(hits, total)
        assert 0 <= low <= w_low < estimate < w_high <= high <= 1
    assert row.auroc is None  # 3 positives: too few
    # Another finding, marked absent on all 8 X-rays and never reaching 0.5.
    other = row_of(performance, "Mass")
    assert (other.readings, other.positives, other.true_negatives, other.sensitivity) == (8, 0, 8, None)
    assert other.specificity[0] == 1.0
    # What the version expected on unseen patients stands beside each finding.
    assert row.expected_sensitivity == [0.4, 0.3, 0.5] and row.expected_auroc["auroc"] == 0.8


def test_the_wilson_interval_of_two_out_of_three():
    low, high = wilson(2, 3)
    assert low == pytest.approx(0.2077, abs=1e-4) and high == pytest.approx(0.9385, abs=1e-4)
    assert wilson(5, 5)[1] == 1.0 and wilson(5, 5)[0] == pytest.approx(0.5655, abs=1e-4)


@pytest.mark.django_db
def test_auroc_is_given_only_with_enough_positives_and_negatives(version):
    for score in (0.9, 0.8, 0.7, 0.6, 0.3):
        # The fifth positive has Edema marked not assessable: 4 Edema positives, too few.
        edema = "not_assessable" if score == 0.3 else "present"
        read_xray(version, {"Effusion": "present", "Edema": edema}, {"Effusion": score, "Edema": score})
    for score in (0.5, 0.4, 0.2, 0.1, 0.65):
        read_xray(version, {}, {"Effusion": score, "Edema": score})
    assert MIN_PER_CLASS == 5

    performance = site_performance(version)
    effusion, edema = row_of(performance, "Effusion"), row_of(performance, "Edema")
    # 21 of the 25 positive-negative pairs are ranked right: 5 + 5 + 5 + 4 + 2.
    assert effusion.auroc["auroc"] == pytest.approx(21 / 25)
    assert 0 <= effusion.auroc["low"] < 21 / 25 < effusion.auroc["high"] <= 1
    assert (edema.positives, edema.negatives, edema.auroc) == (4, 5, None)


@pytest.mark.django_db
def test_only_the_current_signed_off_reading_counts(version, staff):
    # Amended: version 1 said present, version 2 (signed) says absent; it counts as a negative.
    amended = read_xray(version, {"Effusion": "present"}, {"Effusion": 0.9})
    reading(amended, 2, {"Effusion": "absent"}, user=staff)
    # A draft only, and a signed reading superseded by a draft amendment: neither counts.
    read_xray(version, {"Effusion": "present"}, {"Effusion": 0.9}, status="draft")
    superseded = read_xray(version, {"Effusion": "present"}, {"Effusion": 0.2})
    reading(superseded, 2, {"Effusion": "absent"}, status="draft")

    performance = site_performance(version)
    row = row_of(performance, "Effusion")
    assert performance.readings == 1
    assert (row.positives, row.negatives, row.false_positives) == (0, 1, 1)


@pytest.mark.django_db
def test_figures_whose_whole_interval_is_below_what_the_version_expected_are_marked(version, staff_client):
    for score in (0.55, 0.6, 0.1, 0.2, 0.3):  # 2 of 5 positives reach 0.5: 40 %, as expected
        read_xray(version, {"Effusion": "present"}, {"Effusion": score})
    for score in (0.7, 0.72, 0.75, 0.8, 0.82, 0.85, 0.88, 0.9, 0.05, 0.02):  # 8 of 10 negatives do
        read_xray(version, {}, {"Effusion": score})
    row = row_of(site_performance(version), "Effusion")
    assert row.sensitivity[0] == pytest.approx(0.4) and row.specificity[0] == pytest.approx(0.2)
    assert row.auroc["auroc"] == pytest.approx(10 / 50)  # each positive outranks only the 2 low negatives
    # Expected: sensitivity 40 %, specificity 95 %, AUROC 0.80.
    assert row.specificity[2] < 0.95 and row.auroc["high"] < 0.8 and row.sensitivity[2] > 0.4
    assert row.below_expected == {"specificity", "auroc"}
    page = staff_client.get(reverse("diagnosis:model_performance")).content.decode()
    effusion = page[page.index('data-finding="Effusion"'):page.index("</tr>", page.index('data-finding="Effusion"'))]
    assert effusion.count("below expected") == 2
    assert "below expected" not in effusion[:effusion.index('data-figure="specificity"')]


@pytest.mark.django_db
def test_a_finding_that_is_not_reliable_is_measured_at_its_threshold_though_never_flagged(version):
    read_xray(version, {"Hernia": "present"}, {"Hernia": 0.8})
    row = row_of(site_performance(version), "Hernia")
    assert not row.reliable and not Prediction.objects.get(finding="Hernia").flagged
    assert (row.true_positives, row.sensitivity[0]) == (1, 1.0)


@pytest.mark.django_db
def test_patients_are_resampled_not_x_rays(version):
    """Four X-rays of one patient, all flagged, and four of another, none: resampling the two
    patients draws all eight flagged (or none) a quarter of the time each, so the interval is 0 to
    100 %; resampling X-rays would rarely draw all eight alike (1 in 256) and give a narrower one."""
    first, second = (Patient.objects.create(mrn=mrn, name=mrn) for mrn in ("FLAGGED", "MISSED"))
    for score in (0.9, 0.8, 0.7, 0.6):
        read_xray(version, {"Effusion": "present"}, {"Effusion": score}, patient=first)
        read_xray(version, {"Effusion": "present"}, {"Effusion": score - 0.5}, patient=second)
    performance = site_performance(version)
    assert (performance.readings, performance.patients) == (8, 2)
    assert row_of(performance, "Effusion").sensitivity == [0.5, 0.0, 1.0]


@pytest.mark.django_db
def test_versions_with_readings_are_those_that_scored_signed_off_x_rays(version):
    other = ModelVersion.objects.create(name="unused", artefact_path="/nowhere", thresholds=version.thresholds)
    drafted = ModelVersion.objects.create(name="drafts-only", artefact_path="/nowhere", thresholds=version.thresholds)
    read_xray(version, {}, {})
    read_xray(drafted, {}, {}, status="draft")
    assert list(versions_with_readings()) == [version]
    assert site_performance(other).readings == 0
    assert all(row.readings == 0 and row.sensitivity is None for row in site_performance(other).findings)


# The page


@pytest.mark.django_db
def test_the_page_shows_the_figures_beside_what_the_version_expected(staff_client, version):
    for score in (0.9, 0.7, 0.2):
        read_xray(version, {"Effusion": "present"}, {"Effusion": score})
    for score in (0.6, 0.1, 0.1, 0.3):
        read_xray(version, {}, {"Effusion": score})
    response = staff_client.get(reverse("diagnosis:model_performance"))
    assert response.status_code == 200
    page = response.content.decode()
    assert response.context["performance"].version == version
    assert "These figures rest on <strong>7</strong> signed-off readings of 7 patients." in page
    row = page[page.index('data-finding="Effusion"'):page.index("</tr>", page.index('data-finding="Effusion"'))]
    assert '<td class="num" data-figure="readings">7 <span class="muted">(3 / 4)</span></td>' in row
    assert '<td class="num" data-figure="tp">2</td>' in row and '<td class="num" data-figure="fp">1</td>' in row
    assert '<td class="num" data-figure="sensitivity">67\u00a0% (' in row
    assert '<td class="num" data-figure="specificity">75\u00a0% (' in row
    assert "too few readings" in row and "40\u00a0% (30\u2013\u206050\u00a0%)" in row
    assert f"at least {MIN_PER_CLASS} positives and {MIN_PER_CLASS} negatives" in page
    assert '<tr class="unreliable" data-finding="Hernia">' in page and '<tr data-finding="Effusion">' in page
    assert 'Hernia <span class="chip unreliable">not reliable</span>' in page


@pytest.mark.django_db
def test_the_page_says_plainly_when_there_are_no_readings_yet(staff_client, version):
    page = staff_client.get(reverse("diagnosis:model_performance")).content.decode()
    assert "There are no signed-off readings of X-rays this version scored yet" in page
    assert 'id="performance"' not in page


@pytest.mark.django_db
def test_the_page_shows_a_chosen_version_and_offers_those_with_readings(staff_client, version):
    older = ModelVersion.objects.create(name="older", artefact_path="/nowhere", thresholds=version.thresholds)
    read_xray(older, {"Effusion": "present"}, {"Effusion": 0.9})
    response = staff_client.get(reverse("diagnosis:model_performance"))
    assert [choice.name for choice in response.context["choices"]] == ["clinic-check", "older"]
    assert response.context["version"] == version and response.context["performance"].readings == 0
    response = staff_client.get(reverse("diagnosis:model_performance"), {"version": older.pk})
    assert response.context["version"] == older and response.context["performance"].readings == 1
    assert f'<option value="{older.pk}" selected>older</option>' in response.content.decode()
    assert staff_client.get(reverse("diagnosis:model_performance"), {"version": "x"}).status_code == 404
    assert staff_client.get(reverse("diagnosis:model_performance"), {"version": 999}).status_code == 404


@pytest.mark.django_db
def test_without_any_model_version_the_page_says_so(staff_client):
    page = staff_client.get(reverse("diagnosis:model_performance")).content.decode()
    assert "No model version is installed, so there is nothing to compare yet." in page


@pytest.mark.django_db
def test_the_page_is_for_staff_only(client):
    url = reverse("diagnosis:model_performance")
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login") + "?next=")
    client.force_login(get_user_model().objects.create_user("visitor", password="correct horse battery"))
    assert client.get(url).status_code == 403
