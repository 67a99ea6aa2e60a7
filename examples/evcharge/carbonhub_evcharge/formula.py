"""Family ``ev_displacement``: petrol not burnt because a battery-electric car drove on grid electricity.

    distance = kWh ÷ factor ``ev_use``                 (how far the charged energy takes the EV)
    baseline = distance × factor ``petrol_car``        (a petrol car's CO2 over that distance)
    project  = kWh × factor ``grid``                   (the grid's CO2 for the charged energy)

The distance unit (here miles) only has to agree between ``ev_use`` and
``petrol_car``; it cancels out. Never negative: the hub floors the difference at 0.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Mapping

from hub.records import Behaviour, Calculation, Factor


def compute(factors: Mapping[str, Factor], behaviour: Behaviour) -> Calculation:
    """The calculation for one charging session of ``behaviour.quantity`` kWh."""
    kwh = Decimal(behaviour.quantity)
    ev, car, grid = factors["ev_use"], factors["petrol_car"], factors["grid"]
    baseline = kwh / ev.value * car.value
    project = kwh * grid.value
    text = (f"{kwh} kWh ÷ {ev.value} {ev.unit} × {car.value} {car.unit} − "
            f"{kwh} kWh × {grid.value} {grid.unit}")
    return Calculation(baseline_g=baseline, project_g=project, factors_used=("ev_use", "petrol_car", "grid"),
                       formula=text)
