"""The HTTP service of optimlab: API, job use cases, database and settings."""
