"""Family ``digital_reading``: a share of a book read on a screen instead of in print.

    baseline = quantity × book_print                 (the printed copy not bought)
    project  = quantity × device_<device>            (reading that share on the device)

``quantity`` is in books (0.25 for a quarter of a book); the attribute
``device`` (``phone``, ``tablet``, ``e_reader``...) picks the project factor.
A device the document has no factor for raises
:class:`hub.records.RecordError` ``no_factor``, so the behaviour is rejected
and can be replayed once a version adds that device.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Mapping

from hub.records import Behaviour, Calculation, Factor, RecordError


def compute(factors: Mapping[str, Factor], behaviour: Behaviour) -> Calculation:
    q = Decimal(behaviour.quantity)
    device = behaviour.attributes.get("device")
    name = f"device_{device}"
    if name not in factors:
        raise RecordError("no_factor", f"This methodology version has no factor for reading on {device!r}.",
                          "device")
    book, screen = factors["book_print"], factors[name]
    return Calculation(baseline_g=q * book.value, project_g=q * screen.value, factors_used=("book_print", name),
                       formula=f"{q} {behaviour.unit} × {book.value} {book.unit} − "
                               f"{q} {behaviour.unit} × {screen.value} {screen.unit} ({device})")
