"""Unit tests of the Python recommendation-updater, run natively through the SDK's
TestHost: the Rust build's tests, asserting the same lists and scores.

    PYTHONPATH=../../sdk/python python3 -m unittest
"""

import json
import unittest
from typing import Any

from streamfn import Reject
from streamfn.testing import TestHost

import function
from function import (
    ACTIVITY,
    MAX_POPULAR_ITEMS,
    MAX_PURCHASED_ITEMS,
    MAX_RECENT_ITEMS,
    MAX_USER_CATEGORIES,
    RECOMMENDATIONS,
)

T0 = 1_767_225_600_000
HOUR = 3_600_000


def act(host: TestHost, user: str, item: str, category: str, action: str, ts: int) -> None:
    value = json.dumps({"user_id": user, "item_id": item, "category": category, "action": action, "timestamp_ms": ts})
    host.handle(function.handle, host.event(ACTIVITY, user, value, ts))


def lists(host: TestHost, user: str) -> list[Any]:
    return [r for r in host.outputs_json(RECOMMENDATIONS) if r["user_id"] == user]


def last_items(host: TestHost, user: str) -> Any:
    return lists(host, user)[-1]["items"]


class RecommendationUpdaterTest(unittest.TestCase):
    def test_a_first_activity_recommends_and_an_unchanged_list_is_not_sent_again(self) -> None:
        host = TestHost()
        act(host, "u-1", "i-1", "books", "view", T0)
        self.assertEqual(
            lists(host, "u-1"),
            [
                {
                    "user_id": "u-1",
                    "top_categories": [{"category": "books", "score": 1.0}],
                    "items": ["i-1"],
                    "timestamp_ms": T0,
                }
            ],
        )
        self.assertEqual(host.outputs[0].key, b"u-1")
        # The record's bytes are what the Rust build sends.
        self.assertEqual(
            host.outputs[0].value,
            b'{"user_id":"u-1","top_categories":[{"category":"books","score":1.0}],"items":["i-1"],"timestamp_ms":1767225600000}',
        )
        act(host, "u-1", "i-1", "books", "click", T0 + 1000)
        self.assertEqual(len(lists(host, "u-1")), 1)

    def test_lists_hold_popular_items_of_the_users_categories_not_yet_bought(self) -> None:
        host = TestHost()
        act(host, "u-2", "i-7", "books", "purchase", T0)
        act(host, "u-3", "i-8", "books", "add_to_cart", T0)
        act(host, "u-4", "i-9", "books", "view", T0)
        act(host, "u-5", "i-50", "toys", "purchase", T0)
        act(host, "u-1", "i-9", "books", "click", T0)
        # i-7 8/15 of books; i-9 3/15, boosted as u-1 just looked at it; i-8 4/15.
        self.assertEqual(last_items(host, "u-1"), ["i-7", "i-9", "i-8"])
        act(host, "u-1", "i-7", "books", "purchase", T0)
        self.assertEqual(last_items(host, "u-1"), ["i-9", "i-8"])
        self.assertEqual(len(lists(host, "u-1")), 2)

    def test_lists_mix_the_top_categories_by_interest(self) -> None:
        host = TestHost(config={"top_n": "3"})
        act(host, "u-2", "i-1", "books", "purchase", T0)
        act(host, "u-2", "i-2", "books", "view", T0)
        act(host, "u-3", "i-50", "toys", "purchase", T0)
        act(host, "u-3", "i-51", "toys", "view", T0)
        act(host, "u-1", "i-3", "garden", "view", T0)
        act(host, "u-1", "i-2", "books", "add_to_cart", T0)
        self.assertEqual(last_items(host, "u-1"), ["i-1", "i-2", "i-3"])
        act(host, "u-1", "i-51", "toys", "add_to_cart", T0)
        last = lists(host, "u-1")[-1]
        self.assertEqual(
            last["top_categories"],
            [
                {"category": "books", "score": 4.0},
                {"category": "toys", "score": 4.0},
                {"category": "garden", "score": 1.0},
            ],
        )
        self.assertEqual(last["items"], ["i-1", "i-50", "i-2"])

    def test_interest_decays_with_event_time(self) -> None:
        host = TestHost()
        act(host, "u-1", "i-1", "books", "purchase", T0)
        act(host, "u-1", "i-50", "toys", "view", T0 + 4 * HOUR)
        self.assertEqual(
            lists(host, "u-1")[-1]["top_categories"],
            [{"category": "toys", "score": 1.0}, {"category": "books", "score": 0.5}],
        )
        # An activity older than the profile counts as decayed to the profile's time.
        host = TestHost(config={"half_life_ms": "1800000"})
        act(host, "u-1", "i-1", "books", "view", T0 + HOUR)
        act(host, "u-1", "i-50", "toys", "purchase", T0)
        user = host.state_json("u/u-1")
        self.assertEqual(user["categories"]["as_of_ms"], T0 + HOUR)
        self.assertEqual(user["categories"]["scores"], {"books": 1.0, "toys": 2.0})

    def test_state_stays_bounded(self) -> None:
        host = TestHost(config={"top_n": "2"})
        for i in range(200):
            act(host, "u-1", f"i-{i}", f"cat-{i % 40}", "purchase", T0 + i)
            act(host, "u-2", f"i-{i}", "books", "view", T0 + i)
        user = host.state_json("u/u-1")
        self.assertEqual(len(user["purchased"]), MAX_PURCHASED_ITEMS)
        self.assertEqual(len(user["recent"]), MAX_RECENT_ITEMS)
        self.assertEqual(len(user["categories"]["scores"]), MAX_USER_CATEGORIES)
        self.assertEqual(len(host.state_json("pop/books")["scores"]), MAX_POPULAR_ITEMS)
        self.assertTrue(all(len(r["items"]) <= 2 for r in lists(host, "u-2")))

    def test_bad_records_and_config_are_rejected_without_effects(self) -> None:
        host = TestHost()
        bad_action = json.dumps({"user_id": "u-1", "item_id": "i-1", "category": "books", "action": "like"})
        for topic, value in [(ACTIVITY, "nope"), (ACTIVITY, bad_action), ("clicks", "{}")]:
            with self.subTest(value=value), self.assertRaises(Reject):
                host.handle(function.handle, host.event(topic, "u-1", value, T0))
        self.assertEqual(host.state, {})

        good = json.dumps({"user_id": "u-1", "item_id": "i-1", "category": "books", "action": "view"})
        for key, value in [("top_n", "0"), ("top_n", "many"), ("top_n", " 3"), ("half_life_ms", "-5")]:
            host = TestHost(config={key: value})
            with self.subTest(config=f"{key}={value}"), self.assertRaises(Reject):
                host.handle(function.handle, host.event(ACTIVITY, "u-1", good, T0))

    def test_state_documents_have_the_rust_builds_shape(self) -> None:
        host = TestHost()
        act(host, "u-1", "i-2", "toys", "purchase", T0)
        act(host, "u-1", "i-1", "books", "view", T0 + HOUR)
        self.assertEqual(
            host.state[b"u/u-1"],
            b'{"categories":{"as_of_ms":1767229200000,"scores":{"books":1.0,"toys":4.0}},'
            b'"recent":["i-2","i-1"],"purchased":["i-2"],"emitted":["i-1"]}',
        )
        self.assertEqual(host.state[b"pop/books"], b'{"as_of_ms":1767229200000,"scores":{"i-1":1.0}}')


if __name__ == "__main__":
    unittest.main()
