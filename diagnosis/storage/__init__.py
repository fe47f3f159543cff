"""Where X-ray files are kept: a private local folder or an S3-compatible bucket, neither with a URL."""
