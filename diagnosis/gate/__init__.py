"""Changing what the model does to records: the activation gate (a candidate against the active
version on held-out readings) and a version's operating point (which re-flags stored predictions)."""
