"""What the people who run Dispredo watch: /healthz, /metrics (Prometheus) and one JSON log line per
request with a request id. Nothing here shows or logs patient data."""
