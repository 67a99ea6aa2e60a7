"""POST /v1/calculator: a monthly footprint from sourced factors, and the best ways to reduce it.

Expected grams are computed here by hand from the factors documented in
docs/calculator.md (methodologies/footprint/calculator-2026.toml and the
scenarios' methodology documents), never read back from the code.
"""
from __future__ import annotations

import math
import tomllib
from pathlib import Path

import pytest

from api_helpers import error_of

ROOT = Path(__file__).resolve().parents[1]
# Coordinates as in plugins/airlines/airports.csv (decimal degrees).
COORDS = {"PEK": (40.0801, 116.5846), "SZX": (22.6393, 113.8107), "PVG": (31.1443, 121.8083),
          "NRT": (35.7720, 140.3929)}


def km(a: str, b: str) -> int:
    """Great-circle km on a 6,371 km sphere (haversine), rounded down, as docs/calculator.md says."""
    (la1, lo1), (la2, lo2) = (map(math.radians, COORDS[a]), map(math.radians, COORDS[b]))
    h = math.sin((la2 - la1) / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    return math.floor(2 * 6371 * math.asin(math.sqrt(h)))


@pytest.fixture
def config_data(config_data, request):
    # Beside the test config's metro and estatement: more scenarios to suggest.
    for sid in ("bike", "bus", "light_travel", "utility_payments"):
        config_data["scenarios"][sid] = {}
    disable = getattr(request, "param", {}).get("disable")
    if disable:
        config_data["scenarios"][disable]["enabled"] = False
    return config_data


def test_distances_of_the_worked_examples():
    assert (km("PEK", "SZX"), km("PVG", "NRT")) == (1956, 1795)


def test_every_factor_cites_a_source():
    with open(ROOT / "methodologies" / "footprint" / "calculator-2026.toml", "rb") as fh:
        doc = tomllib.load(fh)
    assert {"id", "version", "reviewer", "reviewed_on", "effective_from"} <= set(doc)
    for name, factor in doc["factors"].items():
        assert factor["source"].strip() and factor["unit"], name


def test_lines_carry_quantity_factor_unit_grams_and_source(client):
    body = {"car_km": 100, "metro_km": "22", "paper_bills": 2, "counter_payments": 3,
            "flights": [{"origin": "PEK", "destination": "SZX", "checked_bag": True},
                        {"origin": "pvg", "destination": "NRT", "cabin": "business", "count": 2}]}
    response = client.post("/v1/calculator", json=body)
    assert response.status_code == 200, response.get_json()
    data = response.get_json()
    assert data["methodology"]["id"] == "personal-footprint" and data["methodology"]["version"] == "2026.1"
    assert data["period"] == "month"
    lines = {(line["activity"], line.get("origin")): line for line in data["lines"]}
    car = lines[("car", None)]
    assert (car["quantity"], car["unit"], car["factor"], car["factor_unit"], car["grams"]) == \
        ("100", "km", "271.8", "gCO2e/km", 27180)  # 100 km × 271.8 g
    assert "Beijing MaaS" in car["source"]
    assert lines[("metro", None)]["grams"] == 1348  # 22 × 61.3 = 1348.6, rounded down
    domestic = lines[("flight", "PEK")]
    assert domestic["distance_km"] == 1956 and domestic["cabin"] == "economy"
    assert domestic["grams"] == 1956 * 255  # 498,780 g: DESNZ 2024 domestic economy 0.255 kg/pkm
    assert "DESNZ" in domestic["source"]
    assert domestic["neutralise"]["grams"] == domestic["grams"]
    assert domestic["neutralise"]["footprint"] == {"kind": "flight", "from": "PEK", "to": "SZX", "cabin": "economy"}
    assert "/neutralisations" in domestic["neutralise"]["hint"]
    business = lines[("flight", "PVG")]
    # International: DESNZ short-haul 0.156 kg/pkm; business ×3 (ICAO, lower bound); two flights.
    assert business["grams"] == 1795 * 156 * 3 * 2 == 1680120
    assert business["multiplier"] == "3" and "ICAO" in business["multiplier_source"]
    assert lines[("paper_bill", None)]["grams"] == 48  # 2 × 24 g
    assert lines[("counter_payment", None)]["grams"] == 267  # 3 × 89 g
    assert data["total_g"] == 27180 + 1348 + 498780 + 1680120 + 48 + 267


def test_suggestions_rank_enabled_scenarios_by_grams_a_month(client):
    body = {"car_km": 100, "paper_bills": 2, "counter_payments": 3,
            "flights": [{"origin": "PEK", "destination": "SZX", "checked_bag": True}]}
    data = client.post("/v1/calculator", json=body).get_json()
    ranked = [(s["scenario"], s["grams_per_month"]) for s in data["suggestions"]]
    assert ranked == [
        ("light_travel", 23550),  # 1956 km × 20 kg × 0.602 kgCO2/tkm = 23,550.24 g
        ("bike", 9330),  # 100 km × 93.3 g (Wuhan)
        ("metro", 4680),  # 100 km × 46.8 g (Shenzhen, metro-avoided-car 2021.1 in force)
        ("bus", 2690),  # 100 km × 26.9 g (Shenzhen)
        ("utility_payments", 267),  # 3 × 89 g
        ("estatement", 48),  # 2 × 24 g
    ]
    metro = next(s for s in data["suggestions"] if s["scenario"] == "metro")
    assert (metro["methodology"], metro["version"], metro["factor"]) == ("metro-avoided-car", "2021.1", "46.8")
    assert "Shenzhen" in metro["source"]


def test_wuhan_prices_travel_at_wuhan_factors(client):
    data = client.post("/v1/calculator", json={"car_km": 10, "city": "wuhan"}).get_json()
    # The Wuhan bus figure is per ride (212.5 g), not per km: no bus suggestion; metro at 78.4 g/km is
    # not in force yet (2026.1 starts 2026-12-01), so 2021.1's single figure applies.
    assert [(s["scenario"], s["grams_per_month"]) for s in data["suggestions"]] == [("bike", 933), ("metro", 468)]


@pytest.mark.parametrize("config_data", [{"disable": "metro"}], indirect=True)
def test_disabled_scenarios_are_not_suggested(client):
    data = client.post("/v1/calculator", json={"car_km": 10, "paper_bills": 1}).get_json()
    assert [(s["scenario"], s["grams_per_month"]) for s in data["suggestions"]] == [
        ("bike", 933), ("bus", 269), ("estatement", 24)]  # 10 × 93.3, 10 × 26.9, 1 × 24; no metro


def test_empty_body_is_an_empty_footprint(client):
    data = client.post("/v1/calculator", json={}).get_json()
    assert (data["lines"], data["total_g"], data["suggestions"]) == ([], 0, [])


@pytest.mark.parametrize("body, path", [
    ({"car_km": -1}, ["car_km"]),
    ({"metro_km": "-0.5"}, ["metro_km"]),
    ({"car_km": "NaN"}, ["car_km"]),
    ({"paper_bills": -2}, ["paper_bills"]),
    ({"flights": [{"origin": "XXX", "destination": "SZX"}]}, ["flights", "0", "origin"]),
    ({"flights": [{"origin": "PEK", "destination": "ZZZ"}]}, ["flights", "0", "destination"]),
    ({"flights": [{"origin": "PEK", "destination": "PEK"}]}, ["flights", "0", "destination"]),
    ({"flights": [{"origin": "PEK", "destination": "SZX", "cabin": "first"}]}, ["flights", "0", "cabin"]),
    ({"flights": [{"origin": "PEK", "destination": "SZX", "count": 0}]}, ["flights", "0", "count"]),
    ({"electricity_kwh": 100}, ["electricity_kwh"]),  # no sourced factor: not accepted
])
def test_bad_input_is_422_with_the_field(client, body, path):
    response = client.post("/v1/calculator", json=body)
    assert response.status_code == 422
    err = error_of(response)
    assert err["code"] == "validation_error"
    node = err["fields"]
    for key in path:
        node = node[key]
    assert node and all(isinstance(m, str) for m in node)


def test_malformed_json_is_400(client):
    response = client.post("/v1/calculator", data=b"{", content_type="application/json")
    assert response.status_code == 400 and error_of(response)["code"] == "malformed_json"
