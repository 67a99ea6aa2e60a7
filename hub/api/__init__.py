"""HTTP API under /v1: one blueprint per resource, one error shape."""
from __future__ import annotations

from flask import Flask


def register_api(app: Flask) -> None:
    """Attach every blueprint and the error handlers to ``app``."""
