"""fraud-scorer in Python: scores every card transaction against its customer's own history
and profile, and sends the suspicious ones to `fraud-alerts`.

A port of guests/fraud-scorer (Rust) with the same topics, config, factors, weights and
alerts, written byte for byte as the Rust version writes them. Inputs are `transactions`
and `customer-profiles`, both keyed by customer id and co-partitioned, so a customer's
profile (the table side of the join) and history live in the partition state next to
their transactions: one state read and one write per transaction. It keeps its own form
of that state (a JSON array), so it takes over neither the Rust nor the Go version's.
"""

import json
import math
from decimal import Decimal
from typing import Any

from streamfn import Context, Event, Reject

TRANSACTIONS = "transactions"
PROFILES = "customer-profiles"
ALERTS = "fraud-alerts"

#: Score at or above which a transaction is alerted, unless config `alert_threshold` says.
DEFAULT_ALERT_THRESHOLD = 0.7

#: How far back the velocity and card-testing factors look.
VELOCITY_WINDOW_MS = 5 * 60_000
#: Transactions in the window that count as a burst, however slow the customer's pace...
VELOCITY_MIN_COUNT = 6
#: ...and this many times their usual pace does for a busier customer.
VELOCITY_PACE_FACTOR = 3.0
#: Transactions needed before a customer's merchants and pace say anything...
MIN_HISTORY = 5
#: ...and before the spread of their amounts does.
MIN_AMOUNT_HISTORY = 10
#: Probes (tiny amounts at new merchants) within the window that look like card testing.
CARD_TESTING_PROBES = 2
#: A probe is below this many currency units and below this share of the customer's mean.
PROBE_MAX_AMOUNT = 5.0
PROBE_MAX_SHARE = 0.5
#: The least deviation assumed, as a share of the mean.
MIN_DEVIATION_SHARE = 0.1
#: A spike is this many times the mean (the second for the larger weight) and this many
#: deviations above it.
SPIKE_RATIO = 3.0
EXTREME_RATIO = 8.0
SPIKE_Z = 3.0
#: Accounts younger than this many days are riskier.
NEW_ACCOUNT_DAYS = 30

# Bounds of the per-customer state, so that it stays small whatever the traffic.
MAX_RECENT = 32
MAX_MERCHANTS = 24
MAX_COUNTRIES = 8

# Factor weights; a score is the sum of the factors present, capped at 1.
W_VELOCITY = 0.15
W_CARD_TESTING = 0.65
W_AMOUNT_SPIKE = 0.2
W_AMOUNT_EXTREME = 0.45
W_NEW_COUNTRY = 0.25
W_NEW_MERCHANT = 0.1
W_HIGH_RISK_TIER = 0.1
W_NEW_ACCOUNT = 0.1

RISK_TIERS = {"low": 0, "medium": 1, "high": 2}
HIGH = 2

# A customer's state, a JSON array: [profile or None, count, mean, m2, first ms, last ms,
# recent, countries, merchants], where a profile is [home country, risk tier, account age
# in days], `recent` holds the transactions of the last velocity window by time as
# [timestamp, probe (1 or 0)] pairs, and `countries` and `merchants` (by tag) are most
# recently used last. The mean and m2 are Welford's running mean and sum of squared
# deviations of the amount.
PROFILE, COUNT, MEAN, M2, FIRST_MS, LAST_MS, RECENT, COUNTRIES, MERCHANTS = range(9)


def handle(event: Event, ctx: Context) -> None:
    """Scores a transaction, or stores a customer profile, depending on the input topic."""
    if event.topic == TRANSACTIONS:
        _score_transaction(event, ctx)
    elif event.topic == PROFILES:
        _store_profile(event, ctx)
    else:
        raise Reject(f"fraud-scorer reads `{TRANSACTIONS}` and `{PROFILES}`, not `{event.topic}`")


def _is_whole(value: Any) -> bool:
    """An integer that fits Rust's i64, as serde takes it."""
    return type(value) is int and -(2**63) <= value < 2**63


def _is_text(value: Any) -> bool:
    """A string that is UTF-8's: serde_json refuses an escaped lone surrogate, which Python
    takes and could not write back."""
    if type(value) is not str:
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _store_profile(event: Event, ctx: Context) -> None:
    record = event.json()
    if not (
        isinstance(record, dict)
        and _is_text(record.get("customer_id"))
        and _is_text(record.get("home_country"))
        and _is_text(record.get("risk_tier"))
        and _is_whole(record.get("account_age_days"))
        and 0 <= record["account_age_days"] <= 0xFFFFFFFF
    ):
        raise Reject("profile lacks customer_id, home_country, risk_tier or account_age_days")
    tier = RISK_TIERS.get(record["risk_tier"])
    if tier is None:
        raise Reject(f"unknown risk_tier {json.dumps(record['risk_tier'])}: expected low, medium or high")
    key = "c/" + record["customer_id"]
    customer = _load_customer(ctx, key)
    customer[PROFILE] = [record["home_country"], tier, record["account_age_days"]]
    ctx.set_json(key, _stored(customer))


def _score_transaction(event: Event, ctx: Context) -> None:
    tx = event.json()
    if not (
        isinstance(tx, dict)
        and _is_text(tx.get("id"))
        and _is_text(tx.get("customer_id"))
        and type(tx.get("amount")) in (int, float)
        and _is_text(tx.get("merchant"))
        and _is_text(tx.get("country"))
        and _is_whole(tx.get("timestamp_ms"))
    ):
        raise Reject("transaction lacks id, customer_id, amount, merchant, country or timestamp_ms")
    # JSON has no NaN, but a number too large for a double parses as infinity (or, written
    # as a whole number, does not convert).
    try:
        amount = float(tx["amount"])
    except OverflowError:
        amount = math.inf
    if not 0 <= amount < math.inf:
        raise Reject(f"transaction {tx['id']} has amount {amount}")
    threshold = ctx.config_or("alert_threshold", DEFAULT_ALERT_THRESHOLD)
    key = "c/" + tx["customer_id"]
    customer = _load_customer(ctx, key)
    score, factors, probe = _assess(tx, amount, customer)
    if score >= threshold:
        ctx.info(f"alert for {tx['customer_id']} on {tx['id']}: score {score} ({', '.join(factors)})")
        ctx.emit(
            ALERTS,
            tx["customer_id"],
            f'{{"transaction_id":{_text(tx["id"])},"customer_id":{_text(tx["customer_id"])},'
            f'"amount":{rust_float(amount)},"score":{rust_float(score)},'
            f'"factors":{json.dumps(factors, separators=(",", ":"))},"timestamp_ms":{tx["timestamp_ms"]}}}',
        )
    _record(customer, tx, amount, probe)
    ctx.set_json(key, _stored(customer))


def _text(value: str) -> str:
    """`value` as a JSON string the way serde_json writes it: UTF-8 kept as it is."""
    return json.dumps(value, ensure_ascii=False)


def _load_customer(ctx: Context, key: str) -> list[Any]:
    customer = ctx.get_json(key)
    if customer is None:
        return [None, 0, 0.0, 0.0, 0, 0, [], [], []]
    if type(customer) is not list or len(customer) != 9:
        raise Reject(f"state key {json.dumps(key)} does not hold the expected value")
    for field in (MEAN, M2):
        if type(customer[field]) is str:
            customer[field] = float(customer[field])
    return customer


def _stored(customer: list[Any]) -> list[Any]:
    """`customer` as JSON holds it: the sum of squares overflows to infinity after an
    amount near 1e154, which JSON has no number for, so it is kept as text ("inf")."""
    for field in (MEAN, M2):
        if not math.isfinite(customer[field]):
            customer[field] = repr(customer[field])
    return customer


def _assess(tx: dict[str, Any], amount: float, customer: list[Any]) -> tuple[float, list[str], bool]:
    """The score of `tx` for `customer`, the factors present, and whether it is a probe (a
    tiny amount at a new merchant, what a card tester does to see if a card works)."""
    count = customer[COUNT]
    mean = customer[MEAN]
    experienced = count >= MIN_HISTORY
    new_merchant = experienced and merchant_tag(tx["merchant"]) not in customer[MERCHANTS]
    probe = new_merchant and amount < _rust_min(PROBE_MAX_AMOUNT, PROBE_MAX_SHARE * mean)
    since = tx["timestamp_ms"] - VELOCITY_WINDOW_MS
    in_window = 0
    probes = 1
    for at, was_probe in customer[RECENT]:
        if at > since:
            in_window += 1
            probes += was_probe

    score = 0.0
    factors: list[str] = []
    if in_window + 1 >= _velocity_limit(customer):
        factors.append("velocity")
        score += W_VELOCITY
    if probe and probes >= CARD_TESTING_PROBES:
        factors.append("card_testing")
        score += W_CARD_TESTING
    ratio = _amount_ratio(customer, amount)
    if ratio >= EXTREME_RATIO:
        factors.append("amount_spike")
        score += W_AMOUNT_EXTREME
    elif ratio >= SPIKE_RATIO:
        factors.append("amount_spike")
        score += W_AMOUNT_SPIKE
    profile = customer[PROFILE]
    new_country = tx["country"] not in customer[COUNTRIES]
    if profile is None:
        new_country = new_country and experienced
    else:
        new_country = new_country and profile[0] != tx["country"]
    if new_country:
        factors.append("new_country")
        score += W_NEW_COUNTRY
    if new_merchant:
        factors.append("new_merchant")
        score += W_NEW_MERCHANT
    if profile is not None and profile[1] == HIGH:
        factors.append("high_risk_tier")
        score += W_HIGH_RISK_TIER
    if profile is not None and profile[2] < NEW_ACCOUNT_DAYS:
        factors.append("new_account")
        score += W_NEW_ACCOUNT
    # Rounded half away from zero as Rust's f64::round (the score is not negative), so that
    # sums of weights compare with a threshold as written.
    thousandths = _rust_min(score, 1.0) * 1000
    whole = math.floor(thousandths)
    return (whole + (thousandths - whole >= 0.5)) / 1000, factors, probe


def _velocity_limit(customer: list[Any]) -> int:
    """How many transactions within the velocity window make a burst for this customer."""
    count = customer[COUNT]
    span = customer[LAST_MS] - customer[FIRST_MS]
    if count < MIN_HISTORY or span < VELOCITY_WINDOW_MS:
        return VELOCITY_MIN_COUNT
    usual = float(count) * VELOCITY_WINDOW_MS / float(span)
    return max(VELOCITY_MIN_COUNT, math.ceil(VELOCITY_PACE_FACTOR * usual))


def _amount_ratio(customer: list[Any], amount: float) -> float:
    """How many times the customer's mean `amount` is, when it is also far outside their
    usual spread, or 0 (a customer whose amounts vary wildly does not spike by a ratio
    alone)."""
    count = customer[COUNT]
    mean = customer[MEAN]
    if count < MIN_AMOUNT_HISTORY or mean <= 0:
        return 0.0
    variance = customer[M2] / (count - 1)
    deviation = math.sqrt(variance) if variance >= 0 else math.nan
    # A customer who always pays the same would make any change look infinite.
    z = (amount - mean) / _rust_max(deviation, MIN_DEVIATION_SHARE * mean)
    return amount / mean if z >= SPIKE_Z else 0.0


def _record(customer: list[Any], tx: dict[str, Any], amount: float, probe: bool) -> None:
    at = tx["timestamp_ms"]
    if customer[COUNT] == 0:
        customer[FIRST_MS] = at
        customer[LAST_MS] = at
    customer[FIRST_MS] = min(customer[FIRST_MS], at)
    customer[LAST_MS] = max(customer[LAST_MS], at)
    customer[COUNT] += 1
    delta = amount - customer[MEAN]
    customer[MEAN] += delta / customer[COUNT]
    customer[M2] += delta * (amount - customer[MEAN])

    # The window's transactions by time, this one after those of the same time, the
    # oldest dropped past the bound.
    since = customer[LAST_MS] - VELOCITY_WINDOW_MS
    recent = [pair for pair in customer[RECENT] if pair[0] > since]
    if at > since:
        place = len(recent)
        while place > 0 and recent[place - 1][0] > at:
            place -= 1
        recent.insert(place, [at, 1 if probe else 0])
    customer[RECENT] = recent[-MAX_RECENT:]
    _remember(customer[COUNTRIES], tx["country"], MAX_COUNTRIES)
    _remember(customer[MERCHANTS], merchant_tag(tx["merchant"]), MAX_MERCHANTS)


def merchant_tag(merchant: str) -> int:
    """A merchant id as a 32-bit FNV-1a hash of its UTF-8 bytes. A new merchant's tag
    matches one of the few dozen a customer's state remembers about once in a hundred
    million new merchants, and the match only hides that the merchant is new."""
    tag = 0x811C9DC5
    for byte in merchant.encode():
        tag = ((tag ^ byte) * 0x01000193) & 0xFFFFFFFF
    return tag


def _remember(values: list[Any], value: Any, limit: int) -> None:
    """Marks `value` the most recently used of `values`, dropping the least recent past
    `limit`."""
    if value in values:
        values.remove(value)
    elif len(values) >= limit:
        del values[0]
    values.append(value)


# Rust's f64::min and f64::max, which ignore a NaN operand, so that scores match the Rust
# version's.
def _rust_min(a: float, b: float) -> float:
    if math.isnan(a):
        return b
    if math.isnan(b):
        return a
    return min(a, b)


def _rust_max(a: float, b: float) -> float:
    if math.isnan(a):
        return b
    if math.isnan(b):
        return a
    return max(a, b)


def rust_float(x: float) -> str:
    """`x` in JSON as serde_json writes an f64: the shortest digits that read back as `x`
    (which Python's `repr` also finds), in plain notation with at least one decimal when
    its magnitude is in [1e-5, 1e16), as `1.5e-7` outside it."""
    if x == 0:
        return "-0.0" if math.copysign(1.0, x) < 0 else "0.0"
    sign = "-" if x < 0 else ""
    _, shortest, exponent = Decimal(repr(abs(x))).as_tuple()
    # The value is 0.DIGITS times 10 to the power `point`.
    point = len(shortest) + int(exponent)
    digits = "".join(map(str, shortest)).rstrip("0")
    if 0 < point <= 16:
        if point >= len(digits):
            return f"{sign}{digits}{'0' * (point - len(digits))}.0"
        return f"{sign}{digits[:point]}.{digits[point:]}"
    if -5 < point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    mantissa = digits if len(digits) == 1 else f"{digits[0]}.{digits[1:]}"
    return f"{sign}{mantissa}e{point - 1}"
