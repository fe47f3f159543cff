"""Model versions: registering trained artefacts, loading them for serving, their thresholds and reliability."""
