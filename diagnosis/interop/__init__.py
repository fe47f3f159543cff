"""Dispredo and other systems: the DICOM listener (C-STORE from a PACS) and FHIR R4 output."""
