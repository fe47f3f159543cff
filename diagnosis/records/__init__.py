"""The records: patients, X-rays, predictions, the audit trail, who may see them, and what an X-ray shows."""
