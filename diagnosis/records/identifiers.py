"""The one rule for record numbers: a patient's record number and a DICOM header's Patient ID.

Record numbers are kept as they are given, case included (DICOM Patient IDs are case-sensitive
identifiers): only the spaces around them go, which DICOM treats as padding and nobody types on
purpose. Matching ignores case: ``abc-77`` and ``ABC-77`` are the same record number, so a Patient
ID sent in another case than it was registered in finds its patient, and no second patient can be
registered with a record number that differs from another's only in case (the database holds that
too: ``Patient``'s constraint on ``Upper(mrn)``). Spaces inside a record number are kept and count.
"""


def record_number(value):
    """``value`` as a record number is kept: as given, without the spaces around it."""
    return (value or "").strip()


def same_record_number(first, second):
    """Whether two record numbers name the same patient: equal once trimmed, ignoring case."""
    return record_number(first).upper() == record_number(second).upper()
