"""Celery app, tasks and the pure training engine of optimlab."""
