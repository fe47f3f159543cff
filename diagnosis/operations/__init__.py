"""Operating an installation: backup and restore of records, files and model artefacts."""
