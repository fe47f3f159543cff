"""Receiving an X-ray from any door (upload page, API, DICOM listener, rescoring): checks, patient,
input guard, crash-safe storing, scoring, audit and metrics, and the repair of interrupted uploads."""
