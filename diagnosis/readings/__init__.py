"""Clinicians' readings: drafts, sign-off and amendments, the printable report, and how the model
does against the signed-off readings of this clinic."""
