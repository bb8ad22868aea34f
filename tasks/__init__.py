"""Celery app and thin task wrappers, one module per queue (``celery -A tasks worker``)."""

from tasks.app import app

__all__ = ["app"]
