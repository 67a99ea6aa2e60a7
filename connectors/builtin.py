"""The hub's own connectors, registered like a partner's: ``webhook`` (push) and ``file`` (batch)."""
from __future__ import annotations

from hub.hookspecs import hookimpl
from hub.records import ConnectorSpec

from .batch import BatchConnector
from .webhook import PushConnector

CARBONHUB_API = "1.0"


@hookimpl
def carbonhub_register_connectors(ctx):
    return [
        ConnectorSpec(id="webhook", mode="push", connector=PushConnector,
                      description="Signed pushes to POST /v1/partners/<partner>/events; every partner has it."),
        ConnectorSpec(id="file", mode="batch", connector=BatchConnector,
                      description="CSV or JSON Lines files of native records: carbonhub import <partner> <file>."),
    ]
