"""Unit tests of the Python fraud-scorer, run natively through the SDK's TestHost: the Rust
build's tests, asserting the same alerts, and the bytes of an alert as Rust writes them.

    PYTHONPATH=../../sdk/python python3 -m unittest
"""

import json
import unittest
from typing import Any

from streamfn import Reject
from streamfn.testing import TestHost

import function
from function import ALERTS, PROFILES, TRANSACTIONS, W_VELOCITY, rust_float

T0 = 1_767_225_600_000
MINUTE = 60_000


def profile(host: TestHost, customer: str, home: str, tier: str, age_days: int) -> None:
    value = json.dumps(
        {"customer_id": customer, "home_country": home, "risk_tier": tier, "account_age_days": age_days}
    )
    host.handle(function.handle, host.event(PROFILES, customer, value, T0))


def pay(host: TestHost, tx: str, customer: str, amount: float, merchant: str, country: str, ts: int) -> None:
    value = json.dumps(
        {
            "id": tx,
            "customer_id": customer,
            "amount": amount,
            "currency": "EUR",
            "merchant": merchant,
            "merchant_category": "grocery",
            "country": country,
            "timestamp_ms": ts,
        }
    )
    host.handle(function.handle, host.event(TRANSACTIONS, customer, value, ts))


def regular(host: TestHost, customer: str) -> int:
    """A steady customer: 20 purchases of 30-50 EUR at home, at three shops, every 4 minutes."""
    profile(host, customer, "DE", "low", 1200)
    ts = T0
    for i in range(20):
        ts += 4 * MINUTE
        pay(host, f"tx-{customer}-{i}", customer, 30.0 + (i * 7 % 20), f"m-{i % 3}", "DE", ts)
    return ts


def alerts(host: TestHost) -> list[Any]:
    return host.outputs_json(ALERTS)


class FraudScorerTest(unittest.TestCase):
    def test_normal_traffic_raises_no_alert(self) -> None:
        host = TestHost()
        regular(host, "c-1")
        self.assertEqual(alerts(host), [])
        customer = host.state_json("c/c-1")
        self.assertEqual(customer[function.COUNT], 20)
        self.assertAlmostEqual(customer[function.MEAN], 39.5, places=9)

    def test_account_takeover_is_alerted_with_its_factors_in_the_rust_bytes(self) -> None:
        host = TestHost()
        ts = regular(host, "c-1")
        pay(host, "tx-ato", "c-1", 520.0, "m-999", "BR", ts + MINUTE)
        [alert] = host.take_outputs()
        self.assertEqual(alert.key, b"c-1")
        self.assertEqual(
            alert.value_text(),
            '{"transaction_id":"tx-ato","customer_id":"c-1","amount":520.0,"score":0.8,'
            f'"factors":["amount_spike","new_country","new_merchant"],"timestamp_ms":{ts + MINUTE}}}',
        )

    def test_card_testing_is_alerted_from_the_second_probe(self) -> None:
        host = TestHost()
        ts = regular(host, "c-1")
        for i in range(6):
            pay(host, f"probe-{i}", "c-1", 1.0, f"m-web-{i}", "DE", ts + i * 10_000)
        found = alerts(host)
        self.assertEqual([a["transaction_id"] for a in found], [f"probe-{i}" for i in range(1, 6)])
        self.assertIn("card_testing", found[0]["factors"])

    def test_a_burst_beyond_the_customers_pace_adds_velocity(self) -> None:
        host = TestHost(config={"alert_threshold": "0.1"})
        ts = regular(host, "c-1")
        for i in range(6):
            pay(host, f"fast-{i}", "c-1", 40.0, "m-1", "DE", ts + i * 10_000)
        found = alerts(host)
        # Two of the regular purchases are still in the window: the fourth fast one is the
        # sixth transaction in five minutes.
        self.assertEqual([a["transaction_id"] for a in found], ["fast-3", "fast-4", "fast-5"])
        self.assertTrue(all(a["factors"] == ["velocity"] and a["score"] == W_VELOCITY for a in found))

    def test_bad_records_and_config_are_rejected_without_effects(self) -> None:
        host = TestHost()
        for value in [
            "not json",
            '{"id":"tx-1"}',
            '{"id":"tx-1","customer_id":"c","amount":-1,"merchant":"m","country":"DE","timestamp_ms":1}',
            '{"id":"tx-1","customer_id":"c","amount":1,"merchant":"m","country":"DE","timestamp_ms":1e3}',
            '{"id":"tx-1","customer_id":"c","amount":1,"merchant":"m","country":"DE","timestamp_ms":9223372036854775808}',
            '{"id":"tx-\\ud800","customer_id":"c","amount":1,"merchant":"m","country":"DE","timestamp_ms":1}',
        ]:
            with self.assertRaises(Reject):
                host.handle(function.handle, host.event(TRANSACTIONS, "c-1", value, T0))
        host = TestHost(config={"alert_threshold": "high"})
        value = '{"id":"tx-1","customer_id":"c-1","amount":1.0,"merchant":"m","country":"DE","timestamp_ms":1}'
        with self.assertRaises(Reject):
            host.handle(function.handle, host.event(TRANSACTIONS, "c-1", value, T0))
        self.assertIsNone(host.state_json("c/c-1"))
        self.assertEqual(host.take_outputs(), [])

    def test_a_huge_amount_is_scored_and_the_customer_goes_on(self) -> None:
        host = TestHost()
        ts = regular(host, "c-1")
        # The sum of squares overflows to infinity, which JSON holds as text.
        pay(host, "tx-huge", "c-1", 1e200, "m-1", "DE", ts + MINUTE)
        pay(host, "tx-next", "c-1", 1e200, "m-1", "DE", ts + 2 * MINUTE)
        pay(host, "tx-after", "c-1", 40.0, "m-1", "DE", ts + 3 * MINUTE)
        customer = host.state_json("c/c-1")
        self.assertEqual((customer[function.COUNT], customer[function.M2]), (23, "inf"))
        # A spike alone (0.45) stays below the threshold; past it the spread is infinite.
        self.assertEqual(alerts(host), [])

    def test_numbers_are_written_as_serde_json_writes_them(self) -> None:
        cases = {
            520.0: "520.0",
            0.8: "0.8",
            12.34: "12.34",
            -0.0: "-0.0",
            0.00001: "0.00001",
            0.000001: "1e-6",
            1.5e-7: "1.5e-7",
            1e16: "1e16",
            1.2345e20: "1.2345e20",
            123456789012345.6: "123456789012345.6",
        }
        for value, written in cases.items():
            self.assertEqual(rust_float(value), written)


if __name__ == "__main__":
    unittest.main()
