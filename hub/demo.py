"""Demo data so a newcomer sees accounts, partners and credited behaviours at once.

Three customers, their consents, and three months of partner records for every
enabled scenario, each partner sending its own native records (``FEEDS``):

- ``demo-alice`` commutes in Shenzhen by metro, bus and shared bike paying
  with her bank card, flies without a checked bag, sells her old phone, reads
  in the digital library, pays her bills online and has an e-card: the most
  points, enough for any benefit in the catalogue;
- ``demo-chen`` lives in Wuhan (metro, bus, bike, power bills, reading): in
  between, enough for the cheapest benefit;
- ``demo-bob`` rides now and then in Shenzhen and never authorised
  e-statements: the fewest points, not yet enough for a benefit.

Like real feeds they also carry resends and the same act reported by two
partners (answered ``duplicate``), and acts the rules refuse (no consent,
implausible values, invalid fields, a cap, a checked bag…), so the inbox and
its rejection reasons are not empty. Every record is dated before the hub's
clock and within its methodology's dates, whatever day the demo runs.

Running it again is safe, on any later day too: the records are dated back
from the first run and keep their ids, so a second run answers them
``duplicate`` (or rejects them again) and credits nothing twice.
"""
from __future__ import annotations

import secrets
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from . import codes
from .config import Settings, read_env_file
from .context import FixedClock
from .core import Hub
from .ingest import BatchResult
from .records import REJECTED

DEMO_USERS = ("demo-alice", "demo-bob", "demo-chen")
CST = timezone(timedelta(hours=8))  # partners in China write Beijing time
UNLINKED = "acc_" + "0" * 28  # a card still linked to a carbon account that no longer exists
# Consents are given this many days before the demo (before its oldest record, a bill of two months
# ago); some only recently; some never.
CONSENT_DAYS = 120
RECENT_CONSENTS = {("demo-chen", "bike"): 30}  # chen linked her Hellobike account a month ago
NOT_AUTHORISED = {"demo-bob": ("estatement",)}
# Voucher codes for the benefits that hand out codes, as an operator's file would bring them.
DEMO_CODES = {"metro-ride-voucher": [f"DEMO-SZM-{n:04d}" for n in range(1, 21)]}

# (entry, exit, line, km) per city; a commute goes back the other way.
SZ_METRO = [("Luohu", "Shijie Zhichuang", "1", "18.6"), ("Futian", "Shenzhen North", "4", "9.2"),
            ("Chegongmiao", "Airport", "11", "23.7"), ("Window of the World", "Shekou Port", "2", "7.4")]
WH_METRO = [("Jianghan Road", "Guanggu Square", "2", "15.0"),
            ("Wuhan Railway Station", "Hongshan Square", "4", "11.6")]
Feed = Callable[[dict[str, str], datetime], list[dict[str, Any]]]


def ensure_secrets(settings: Settings) -> dict[str, str]:
    """Write random values for every configured secret that has none yet.

    Only for local development: the values go to ``hub.secrets_file`` (under
    ``var/``, git-ignored); production sets real environment variables.
    """
    path: Path = settings.secrets_file
    existing = read_env_file(path)
    names = [p.secret_env for p in settings.partners.values()] + [k.key_env for k in settings.api_keys.values()]
    names.append(settings.web.secret_key_env)
    # Plugins name their secrets with *_env keys (e.g. plugin_config.utility_payments.coupon_secret_env).
    names += [v for conf in settings.plugin_config.values() for k, v in conf.items()
              if k.endswith("_env") and isinstance(v, str)]
    missing = [n for n in names if settings.secret(n) is None]
    if missing:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            if not existing:
                fh.write("# Local development secrets written by `carbonhub demo`. Never commit.\n")
            for name in missing:
                value = secrets.token_urlsafe(24)
                fh.write(f"{name}={value}\n")
                existing[name] = value
        path.chmod(0o600)
        settings._file_secrets = None  # reread on next lookup
    return {n: settings.secret(n) or "" for n in names}


# --- dates: always in the past, spread over this month and the two before ----------------------------


def _day(now: datetime, days_ago: int, hour: int, minute: int = 0) -> datetime:
    """``hour:minute`` Beijing time, ``days_ago`` (>= 1) days before today: always before ``now``."""
    return (now.astimezone(CST) - timedelta(days=days_ago)).replace(hour=hour, minute=minute, second=0,
                                                                     microsecond=0)


def _monthly(now: datetime, day: int, hour: int, minute: int = 0) -> Iterator[tuple[str, datetime]]:
    """(previous month ``YYYY-MM``, ``day`` of the month at ``hour:minute``) for this month and the two
    before, skipping a day not yet come: a bill paid, a statement viewed early in the next month."""
    first = now.astimezone(CST).replace(day=1, hour=hour, minute=minute, second=0, microsecond=0)
    months = [first]
    for _ in range(2):
        months.insert(0, (months[0] - timedelta(days=1)).replace(day=1))
    for month in months:
        when = month.replace(day=day)
        if when < now:
            yield f"{(month - timedelta(days=1)):%Y-%m}", when


def _utc(t: datetime, seconds: int = 0) -> str:
    """As a card network writes it: UTC, a few seconds after the operator's minute (same minute)."""
    return (t + timedelta(seconds=seconds)).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- metro: the operators' gate records, and the card network's fares of alice's rides ----------------


def _sz_rides(now: datetime) -> list[tuple[str, datetime, tuple[str, str, str, str]]]:
    """(user, entry time, route) of the Shenzhen rides: alice to work every third day (and back every
    sixth), bob now and then."""
    rides = []
    for day in range(2, 80, 3):
        entry, exit_, line, km = route = SZ_METRO[day % 3]
        rides.append(("demo-alice", _day(now, day, 8, 5), route))
        if day % 2 == 0:
            rides.append(("demo-alice", _day(now, day, 18, 20), (exit_, entry, line, km)))
    rides += [("demo-bob", _day(now, day, 9, 40), SZ_METRO[3]) for day in (5, 26, 47, 68)]
    return rides


def _gate_record(ride_id: str, account: str, user: str, city: str, start: datetime,
                 route: tuple[str, str, str, str]) -> dict[str, Any]:
    entry, exit_, line, km = route
    return {"ride_id": ride_id, "account_id": account, "card_token": f"tok-{user}", "city": city, "line": line,
            "entry_station": entry, "exit_station": exit_, "entry_at": start.isoformat(),
            "exit_at": (start + timedelta(minutes=35)).isoformat(), "distance_km": km}


def _szmetro_records(accounts: dict[str, str], now: datetime) -> list[dict[str, Any]]:
    records = [_gate_record(f"SZM-{start:%Y%m%d%H%M}-{user}", accounts[user], user, "shenzhen", start, route)
               for user, start, route in _sz_rides(now)]
    first = records[0]
    records.append(dict(first))  # the operator resends a ride: duplicate_event
    records.append({**first, "ride_id": first["ride_id"] + "-X", "distance_km": "310"})  # implausible_distance
    records.append({**records[1], "ride_id": records[1]["ride_id"] + "-U", "account_id": UNLINKED,
                    "card_token": "tok-closed"})  # unknown_account
    return records


def _whmetro_records(accounts: dict[str, str], now: datetime) -> list[dict[str, Any]]:
    starts = [_day(now, day, 8, 30) for day in (9, 37)]  # chen's rides, one per route
    return [_gate_record(f"WHM-{start:%Y%m%d%H%M}-demo-chen", accounts["demo-chen"], "demo-chen", "wuhan", start,
                         route) for start, route in zip(starts, WH_METRO)]


def _unionpay_metro_records(accounts: dict[str, str], now: datetime) -> list[dict[str, Any]]:
    """Alice taps her bank card at the gates: each ride again as a fare (double_claim), and yesterday's,
    which the operator has not sent yet (credited from here)."""
    rides = [r for r in _sz_rides(now) if r[0] == "demo-alice"] + [("demo-alice", _day(now, 1, 8, 5), SZ_METRO[0])]
    records = []
    for user, start, (entry, exit_, line, km) in rides:
        records.append({"txn_id": f"UPT-{start:%Y%m%d%H%M}-{user}", "account_id": accounts[user],
                        "card_token": f"tok-{user}", "mode": "metro", "merchant": "Shenzhen Metro",
                        "amount": "4.00", "city": "shenzhen", "line": line, "entry_station": entry,
                        "exit_station": exit_, "entry_at": _utc(start, 5),
                        "exit_at": _utc(start + timedelta(minutes=35), 12), "distance_km": km})
    return records


# --- bus: Shenzhen per km (tap on and off), Wuhan per ride (tap on only) -----------------------------


def _sz_bus_rides(now: datetime) -> list[tuple[str, datetime, tuple[str, str, str, str]]]:
    """(user, tap-on, (line, boarding stop, alighting stop, km)) of the Shenzhen bus rides."""
    rides = [("demo-alice", _day(now, day, 7, 48), ("26", "Shenzhen University", "Window of the World", "7.4"))
             for day in range(4, 80, 6)]
    return rides + [("demo-bob", _day(now, day, 13, 5), ("M133", "Futian Checkpoint", "Huaqiangbei", "4.6"))
                    for day in (12, 40)]


def _szbus_records(accounts: dict[str, str], now: datetime) -> list[dict[str, Any]]:
    records = []
    for user, tap, (line, board, alight, km) in _sz_bus_rides(now):
        records.append({"tap_id": f"SZB-{tap:%Y%m%d%H%M}-{line}-{user}", "account_id": accounts[user],
                        "card_token": f"tok-{user}", "city": "shenzhen", "line": line, "boarding_stop": board,
                        "tap_at": tap.isoformat(), "alighting_stop": alight,
                        "alight_at": (tap + timedelta(minutes=28)).isoformat(), "distance_km": km})
    first = records[0]  # alice taps twice boarding the same bus: double_tap
    tap = datetime.fromisoformat(first["tap_at"])
    records.append({key: first[key] for key in ("account_id", "card_token", "city", "line", "boarding_stop")}
                   | {"tap_id": first["tap_id"] + "-2", "tap_at": (tap + timedelta(seconds=40)).isoformat(),
                      "prev_tap_at": first["tap_at"], "prev_tap_line": first["line"]})
    return records


def _whbus_records(accounts: dict[str, str], now: datetime) -> list[dict[str, Any]]:
    stops = [("402", "Wuchang Railway Station"), ("9", "Hankou Railway Station")]
    records = []
    for n, day in enumerate((3, 17, 31, 45, 59, 73)):
        line, stop = stops[n % 2]
        tap = _day(now, day, 17, 40)
        records.append({"tap_id": f"WHB-{tap:%Y%m%d%H%M}-{line}-chen", "account_id": accounts["demo-chen"],
                        "card_token": "tok-demo-chen", "city": "wuhan", "line": line, "boarding_stop": stop,
                        "tap_at": tap.isoformat()})
    return records


def _unionpay_bus_records(accounts: dict[str, str], now: datetime) -> list[dict[str, Any]]:
    """Alice's bus fares paid by bank card: the operator's rides again (double_claim)."""
    return [{"txn_id": f"UPB-{tap:%Y%m%d%H%M}-{user}", "account_id": accounts[user], "card_token": f"tok-{user}",
             "mode": "bus", "merchant": "Shenzhen Bus Group", "amount": "2.00", "city": "shenzhen", "line": line,
             "boarding_stop": board, "tap_at": _utc(tap, 5), "alighting_stop": alight,
             "alight_at": _utc(tap + timedelta(minutes=28), 9), "distance_km": km}
            for user, tap, (line, board, alight, km) in _sz_bus_rides(now) if user == "demo-alice"]


# --- shared bikes -------------------------------------------------------------------------------------


def _hellobike_records(accounts: dict[str, str], now: datetime) -> list[dict[str, Any]]:
    def ride(user: str, days_ago: int, hour: int, minute: int, minutes: int, metres: int | None = None,
             bike_type: str = "pedal") -> dict[str, Any]:
        unlock = _day(now, days_ago, hour, minute)
        record = {"order_id": f"HB-{unlock:%Y%m%d%H%M}-{user}", "account_id": accounts[user],
                  "bike_id": f"8620{unlock:%m%d%H%M}", "city": "wuhan" if user == "demo-chen" else "shenzhen",
                  "bike_type": bike_type, "unlock_at": unlock.isoformat(),
                  "lock_at": (unlock + timedelta(minutes=minutes)).isoformat()}
        if metres is None:  # Wuhan's older bikes report only where they were unlocked and locked
            return record | {"unlock_location": {"lat": 30.5801, "lng": 114.2734},
                             "lock_location": {"lat": 30.5952, "lng": 114.2987}}
        return record | {"distance_m": metres}

    rides = [ride("demo-alice", d, 18, 40, 16, 2600 + 100 * (d % 13)) for d in range(3, 80, 7)]
    # A day out along the bay: the third leg is trimmed to the day's 1000 g, the fourth is cap_reached.
    rides += [ride("demo-alice", 20, hour, 0, 20, metres)
              for hour, metres in ((9, 3800), (11, 4200), (14, 3500), (16, 2000))]
    return rides + [ride("demo-bob", 15, 8, 10, 9, 1900),
                    ride("demo-bob", 33, 8, 10, 9, 2100, bike_type="ebike"),  # ebike_not_covered
                    ride("demo-chen", 48, 8, 20, 18),  # before chen linked her account: no_consent
                    ride("demo-chen", 22, 8, 20, 18), ride("demo-chen", 6, 8, 20, 18)]


# --- flights: the airline's segments and the travel agency's orders -----------------------------------


def _xiamenair_records(accounts: dict[str, str], now: datetime) -> list[dict[str, Any]]:
    def segment(user: str, flight: str, origin: str, destination: str, departure: datetime, *, bags: int = 0,
                boarding: str = "electronic") -> dict[str, Any]:
        return {"segment_id": f"MF-{departure:%Y%m%d}-{flight}-{user}", "account_id": accounts[user],
                "ffp_token": f"egret-{user}", "flight_no": flight, "origin": origin, "destination": destination,
                "scheduled_departure": departure.isoformat(), "status": "flown", "checked_bags": bags,
                "boarding_pass": boarding}

    return [segment("demo-alice", "MF8521", "SZX", "PEK", _day(now, 45, 7, 30)),
            segment("demo-alice", "MF8522", "PEK", "SZX", _day(now, 41, 19, 10), boarding="paper"),
            segment("demo-chen", "MF8379", "WUH", "XMN", _day(now, 28, 10, 15), bags=1)]  # checked_bag


def _ctrip_records(accounts: dict[str, str], now: datetime) -> list[dict[str, Any]]:
    def order(user: str, order_id: str, n: int, flight: str, origin: str, destination: str, departure: datetime,
              status: str = "used") -> dict[str, Any]:
        return {"order_id": order_id, "segment_no": n, "account_id": accounts[user],
                "passenger": {"ffp_token": f"egret-{user}"},
                "segment": {"operating_flight": flight, "from": origin, "to": destination,
                            "departure_time": _utc(departure)},
                "ticket_status": status, "baggage_pieces": 0, "e_boarding": True}

    out = _day(now, 45, 7, 30)  # alice's flight, booked through the agency too: double_claim
    back = _day(now, 25, 16, 40)  # chen cancelled her return: not_flown
    return [order("demo-alice", f"CT-{out:%y%m%d}-alice", 1, "MF8521", "SZX", "PEK", out),
            order("demo-chen", f"CT-{back:%y%m%d}-chen", 1, "MF8380", "XMN", "WUH", back, status="refunded")]


# --- second-hand, reading, bills -------------------------------------------------------------------------


def _aihuishou_records(accounts: dict[str, str], now: datetime) -> list[dict[str, Any]]:
    def item(user: str, days_ago: int, n: int, kind: str, outcome: str, **measure: Any) -> dict[str, Any]:
        at = _day(now, days_ago, 15, 20)
        return {"item_id": f"AHS-{at:%Y%m%d}-{user}-{n:02d}", "order_id": f"AHS-{at:%Y%m%d}-{user}",
                "account_id": accounts[user], "item_kind": kind, "outcome": outcome,
                "handed_over_at": at.isoformat(), **measure}

    return [item("demo-alice", 52, 1, "phone", "resold", device_token="imei-demo-alice", model="Huawei P50",
                 condition_pct=85),
            item("demo-alice", 23, 1, "clothes", "donated", weight_kg="4.2"),
            item("demo-chen", 35, 1, "book", "resold", copies=3),
            item("demo-chen", 35, 2, "clothes", "donated", weight_kg="68")]  # the scale's typo: implausible_weight


def _citicpress_records(accounts: dict[str, str], now: datetime) -> list[dict[str, Any]]:
    books = {"9787508684918": ("Notes on a Low-Carbon City", 320),
             "9787508672656": ("A Short History of Paper Money", 256),
             "9787521701128": ("Rivers of the South", 400),
             "978-7-5086-8491-9": ("Notes on a Low-Carbon City", 320)}  # mistyped ISBN: invalid_record

    def report(user: str, days_ago: int, isbn: str, device: str, pct: int) -> dict[str, Any]:
        at = _day(now, days_ago, 22, 10)
        title, pages = books[isbn]
        return {"report_id": f"CPR-{at:%Y%m%d}-{user}-{isbn[-4:]}", "account_id": accounts[user], "isbn": isbn,
                "title": title, "device": device, "progress_pct": pct, "pages": pages,
                "reading_seconds": pages * pct * 90 // 100 + 600, "reported_at": at.isoformat()}

    # Progress is cumulative: each report credits only the quarters of the book it newly reached.
    records = [report("demo-alice", 60, "9787508684918", "phone", 30),
               report("demo-alice", 38, "9787508684918", "phone", 80),
               report("demo-alice", 12, "9787508684918", "phone", 100),
               report("demo-alice", 4, "9787508672656", "e_reader", 50),
               report("demo-chen", 30, "9787521701128", "tablet", 50),
               report("demo-chen", 14, "9787521701128", "tablet", 100),
               report("demo-chen", 8, "978-7-5086-8491-9", "tablet", 40)]
    records.append(dict(records[0]))  # the library resends a report: duplicate_event
    return records


def _bill(account: str, payment_id: str, biller: str, bill_type: str, number: str, period: str, amount: str,
          paid: datetime, channel: str) -> dict[str, Any]:
    return {"payment_id": payment_id, "account_id": account, "biller": biller, "bill_type": bill_type,
            "bill_account": number, "billing_period": period, "amount": amount, "currency": "CNY",
            "paid_at": paid.isoformat(), "channel": channel}


def _sgcc_records(accounts: dict[str, str], now: datetime) -> list[dict[str, Any]]:
    """Chen's power bill, paid in the app early each month."""
    return [_bill(accounts["demo-chen"], f"SGCC-HB-{paid:%Y%m%d}-chen", "sgcc-hubei", "power", "4200718833",
                  period, "236.50", paid, "app") for period, paid in _monthly(now, 6, 20, 14)]


def _unionpay_bill_records(accounts: dict[str, str], now: datetime) -> list[dict[str, Any]]:
    """Bills paid through the card network's bill-payment service."""
    alice, bob, chen = accounts["demo-alice"], accounts["demo-bob"], accounts["demo-chen"]
    records = [_bill(alice, f"UP-BP-{paid:%Y%m%d}-alice-phone", "china-mobile-guangdong", "phone", "13900000001",
                     period, "88.00", paid, "autopay") for period, paid in _monthly(now, 2, 6, 0)]
    records += [_bill(alice, f"UP-BP-{paid:%Y%m%d}-alice-water", "shenzhen-water", "water", "SZW-00812345",
                      period, "41.30", paid, "mini_program") for period, paid in _monthly(now, 12, 9, 30)]
    records += [_bill(bob, f"UP-BP-{paid:%Y%m%d}-bob-phone", "china-mobile-guangdong", "phone", "13900000002",
                      period, "58.00", paid, "app") for period, paid in list(_monthly(now, 4, 21, 0))[-1:]]
    last = list(_monthly(now, 6, 20, 14))[-1:]  # chen's latest power bill, paid with her bank card: double_claim
    records += [_bill(chen, f"UP-BP-{paid:%Y%m%d}-chen-power", "sgcc-hubei", "power", "4200718833", period,
                      "236.50", paid, "app") for period, paid in last]
    records += [_bill(chen, f"UP-BP-{paid:%Y%m%d}-chen-gas", "wuhan-gas", "gas", "WHG-77120934", period, "96.00",
                      paid, "counter") for period, paid in last]  # paid at the gas company's hall: offline_payment
    return records


# --- the card centre: e-statements (and the app's view log of them), e-cards -------------------------


def _cycles(now: datetime) -> Iterator[tuple[str, datetime]]:
    """The last three statement cycles, each viewed early the month after."""
    yield from _monthly(now, 3, 9, 0)


def _cardcentre_statements(accounts: dict[str, str], now: datetime) -> list[dict[str, Any]]:
    records = []
    for n, (cycle, viewed) in enumerate(_cycles(now)):
        for user, account in accounts.items():
            paper = user == "demo-chen" and n == 0  # chen still had paper mailed that month: paper_sent
            records.append({"statement_id": f"ST-{cycle}-{user}", "account_id": account, "card_ref": f"card-{user}",
                            "cycle": cycle, "viewed_at": viewed.isoformat(), "channel": "app",
                            "paper_suppressed": not paper})
    return records


def _mbank_statements(accounts: dict[str, str], now: datetime) -> list[dict[str, Any]]:
    """The app's view log of the same statements (double_claim), in its own shape."""
    records = []
    for n, (cycle, viewed) in enumerate(_cycles(now)):
        for user, account in accounts.items():
            paper = user == "demo-chen" and n == 0
            records.append({"log_id": f"MBL-{cycle}-{user}", "event": "estatement_view", "carbon_account": account,
                            "card": {"ref": f"card-{user}"}, "bill_month": cycle.replace("-", ""),
                            "ts": int(viewed.timestamp() * 1000) + 417, "platform": "ios",
                            "delivery": "paper_and_electronic" if paper else "electronic"})
    return records


def _cardcentre_ecards(accounts: dict[str, str], now: datetime) -> list[dict[str, Any]]:
    def issued(user: str, days_ago: int, issue: str = "new") -> dict[str, Any]:
        at = _day(now, days_ago, 10, 22)
        return {"application_id": f"ECA-{at:%Y%m%d}-{user}", "type": "issued", "account_id": accounts[user],
                "card_token": f"ctk-{user}-{days_ago}", "product": "e-card UnionPay", "issue": issue,
                "applied_at": (at - timedelta(minutes=34)).isoformat(), "issued_at": at.isoformat(),
                "plastic_card": False}

    chen = issued("demo-chen", 19)
    notice = _day(now, 6, 16, 3)  # chen ordered a plastic card after all: plastic_card_ordered, for the operator
    return [issued("demo-alice", 55), chen, issued("demo-bob", 30, issue="replacement"),  # reissued_card
            {"notice_id": f"ECN-{notice:%Y%m%d}-chen", "type": "plastic_ordered",
             "application_id": chen["application_id"], "account_id": chen["account_id"],
             "card_token": chen["card_token"], "ordered_at": notice.isoformat()}]


# Who sends what, in the order they arrive: the operators first, then the card network and the
# second reporters, whose copies of the same acts are answered duplicate (double_claim).
FEEDS: list[tuple[str, str, Feed]] = [
    ("szmetro", "metro", _szmetro_records), ("whmetro", "metro", _whmetro_records),
    ("unionpay", "metro", _unionpay_metro_records),
    ("szbus", "bus", _szbus_records), ("whbus", "bus", _whbus_records), ("unionpay", "bus", _unionpay_bus_records),
    ("hellobike", "bike", _hellobike_records),
    ("xiamenair", "light_travel", _xiamenair_records), ("ctrip", "light_travel", _ctrip_records),
    ("aihuishou", "recycling", _aihuishou_records), ("citicpress", "reading", _citicpress_records),
    ("sgcc", "utility_payments", _sgcc_records), ("unionpay", "utility_payments", _unionpay_bill_records),
    ("cardcentre", "estatement", _cardcentre_statements), ("mbank", "estatement", _mbank_statements),
    ("cardcentre", "ecard", _cardcentre_ecards),
]


def _latest_time(record: dict[str, Any]) -> datetime | None:
    """The latest ``*_at`` time of a partner record: when the partner would have sent it."""
    found = []
    for key, value in record.items():
        if key.endswith("_at") and isinstance(value, str):
            try:
                when = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            found.append(when if when.tzinfo else when.replace(tzinfo=CST))
    return max(found, default=None)


def _replay(hub: Hub, clock: FixedClock, by_day: dict[Any, list[tuple[str, str, dict[str, Any]]]],
            now: datetime, results: dict[str, BatchResult]) -> None:
    for day in sorted(by_day):
        batches: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for partner_id, scenario, record in by_day[day]:  # FEEDS order within the day: operators first
            batches[(partner_id, scenario)].append(record)
        for (partner_id, scenario), records in batches.items():
            clock.current = min(now, max((_latest_time(r) or now) for r in records) + timedelta(hours=1))
            done = hub.pipeline.ingest(partner_id, records, source="demo")
            merged = results.setdefault(f"{partner_id}/{scenario}", BatchResult(done.batch_id))
            merged.counts.update(done.counts)
            merged.reasons.update(done.reasons)
            merged.grams += done.grams
            merged.points += done.points
            merged.records.extend(done.records)


def run_demo(hub: Hub) -> dict[str, Any]:
    """Open demo accounts, grant consents, push demo records; returns a summary."""
    hub.init_db()
    keys = ensure_secrets(hub.settings)
    accounts, opened = {}, []
    for user in DEMO_USERS:
        account, _ = hub.open_account(user)
        accounts[user] = account.id
        opened.append(account.opened_at)
    # The records are dated back from the first run (when the accounts were opened, hub.now() then),
    # so a run on a later day sends the very same records again instead of a new three months.
    now = min(opened)
    enabled = hub.enabled_scenarios()
    for user, account in accounts.items():
        for scenario in enabled:
            if scenario in NOT_AUTHORISED.get(user, ()):
                continue  # e.g. bob never authorised e-statements: his are rejected no_consent
            since = now - timedelta(days=RECENT_CONSENTS.get((user, scenario), CONSENT_DAYS))
            hub.set_consent(account, scenario, True, at=since, source="demo")
    codes_left = {}
    for benefit, demo_codes in DEMO_CODES.items():
        if benefit in hub.settings.benefits:
            codes.load_codes(benefit, demo_codes, now)
            codes_left[benefit] = codes.codes_left(benefit)
    # Replay the traffic day by day, each record received an hour after its act (by a hub whose
    # clock stands at that moment), so the console's ingestion chart shows three months, not one day.
    by_day: dict[Any, list[tuple[str, str, dict[str, Any]]]] = defaultdict(list)
    for partner_id, scenario, feed in FEEDS:
        partner = hub.settings.partners.get(partner_id)
        if partner is None or not partner.enabled or scenario not in partner.scenarios or scenario not in enabled:
            continue
        for record in feed(accounts, now):
            received = min(now, (_latest_time(record) or now) + timedelta(hours=1))
            by_day[received.astimezone(hub.settings.timezone).date()].append((partner_id, scenario, record))
    clock = FixedClock(now)
    results: dict[str, BatchResult] = {}
    with hub.clock_set_to(clock):
        _replay(hub, clock, by_day, now, results)
    rejections = Counter(r.reason for result in results.values() for r in result.records if r.status == REJECTED)
    return {"accounts": accounts, "results": {k: r.summary() for k, r in results.items()},
            "rejections": dict(rejections.most_common()), "keys": keys, "codes_left": codes_left}
