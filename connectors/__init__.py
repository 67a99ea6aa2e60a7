"""Transports that bring partner data to the pipeline.

The push connector (signed webhook) lives in ``hub/api/partners.py`` for now;
scheduled pulls and file batches arrive with the connectors issue.
"""
