"""Celery tasks: thin adapters over the plain functions in ``workers``."""
