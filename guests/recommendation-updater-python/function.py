"""recommendation-updater in Python: keeps each user's interest in categories, decayed by
event time, and the popular items of every category, and sends a user a fresh top-N list
of items whenever their list changes.

A port of guests/recommendation-updater (Rust) with the same topic, configuration,
state keys and documents, and output records: either build can take over the other's
state. Popularity is counted per partition: activity is keyed by user, so each
partition sees its own share of users, which is a fair sample of what is popular.
"""

import math
import re
from typing import Any

from streamfn import Context, Event, Reject

ACTIVITY = "user-activity"
RECOMMENDATIONS = "user-recommendations"

#: Half-life of interest and popularity, unless config `half_life_ms` says.
DEFAULT_HALF_LIFE_MS = 60 * 60_000
#: Items per recommendation list, unless config `top_n` says.
DEFAULT_TOP_N = 5
#: The longest list config `top_n` may ask for.
MAX_TOP_N = 50

#: Categories a list draws from, and that the record names.
TOP_CATEGORIES = 3
# Bounds of the state, so that it stays small whatever the traffic.
MAX_USER_CATEGORIES = 16
MAX_RECENT_ITEMS = 10
MAX_PURCHASED_ITEMS = 50
MAX_POPULAR_ITEMS = 50
#: An item the user looked at lately and did not buy is the likeliest next purchase, so
#: it ranks above equally popular ones.
RECENT_BOOST = 1.5

#: What a user did with an item; a stronger signal weighs more.
WEIGHTS = {"view": 1.0, "click": 2.0, "add_to_cart": 4.0, "purchase": 8.0}

_INTEGER = re.compile(r"[+-]?[0-9]+")


class Decayed:
    """Scores that halve every half-life, all kept as of one time. Its JSON document is
    `{"as_of_ms": int, "scores": {key: float}}`, keys sorted, as the Rust build writes."""

    __slots__ = ("as_of_ms", "scores")

    def __init__(self, as_of_ms: int = 0, scores: dict[str, float] | None = None) -> None:
        self.as_of_ms = as_of_ms
        self.scores: dict[str, float] = scores if scores is not None else {}

    @classmethod
    def from_json(cls, doc: Any, what: str) -> "Decayed":
        """The scores in `doc`; `what` names the state key in the reason of a rejection."""
        try:
            as_of_ms, scores = doc["as_of_ms"], doc["scores"]
            if type(as_of_ms) is not int or type(scores) is not dict:
                raise TypeError
            for score in scores.values():
                if type(score) is not float:
                    # Rust reads an integer score as f64 and writes it back as one.
                    if type(score) is not int:
                        raise TypeError
                    scores = {k: float(v) for k, v in scores.items()}
                    break
            return cls(as_of_ms, scores)
        except (TypeError, KeyError):
            raise Reject(f"state key {what} does not hold the expected JSON") from None

    def to_json(self) -> dict[str, Any]:
        return {"as_of_ms": self.as_of_ms, "scores": dict(sorted(self.scores.items()))}

    def add(self, key: str, weight: float, ts: int, half_life_ms: int, cap: int) -> None:
        """Adds `weight` to `key` at `ts`, then drops the weakest keys beyond `cap`. A
        newcomer to a full set may be the weakest and go at once; as the others decay,
        the next activity on it gets in."""
        if ts >= self.as_of_ms:
            factor = decay(ts - self.as_of_ms, half_life_ms)
            for k in self.scores:
                self.scores[k] *= factor
            self.as_of_ms = ts
        else:
            # An event older than the scores counts as already decayed to their time.
            weight *= decay(self.as_of_ms - ts, half_life_ms)
        self.scores[key] = self.scores.get(key, 0.0) + weight
        while len(self.scores) > cap:
            del self.scores[self.ranked()[-1][0]]

    def ranked(self) -> list[tuple[str, float]]:
        """Keys by score, highest first; equal scores by key, so the order is
        deterministic."""
        return _ranked(self.scores)

    def total(self) -> float:
        # A plain left-to-right sum in key order, as Rust's Iterator::sum does; Python's
        # sum() of floats compensates rounding and would differ in the last bits.
        scores, total = self.scores, 0.0
        for key in sorted(scores):
            total += scores[key]
        return total


def decay(elapsed_ms: int, half_life_ms: int) -> float:
    return math.exp2(-float(elapsed_ms) / float(half_life_ms))


class User:
    """One user's profile: `{"categories": Decayed, "recent": [...], "purchased": [...],
    "emitted": [...]}`, recent most recent last, emitted the items of the last list sent."""

    __slots__ = ("categories", "recent", "purchased", "emitted")
    categories: Decayed
    recent: list[str]
    purchased: list[str]
    emitted: list[str]

    def __init__(self, doc: Any, what: str) -> None:
        if doc is None:
            self.categories, self.recent, self.purchased, self.emitted = Decayed(), [], [], []
            return
        try:
            self.categories = Decayed.from_json(doc["categories"], what)
            self.recent = _strings(doc["recent"])
            self.purchased = _strings(doc["purchased"])
            self.emitted = _strings(doc["emitted"])
        except (TypeError, KeyError):
            raise Reject(f"state key {what} does not hold the expected JSON") from None

    def to_json(self) -> dict[str, Any]:
        return {
            "categories": self.categories.to_json(),
            "recent": self.recent,
            "purchased": self.purchased,
            "emitted": self.emitted,
        }


def handle(event: Event, ctx: Context) -> None:
    """Updates the user's profile and the category's popularity with one activity, and
    sends the user's recommendations if they changed."""
    if event.topic != ACTIVITY:
        raise Reject(f"recommendation-updater reads `{ACTIVITY}`, not `{event.topic}`")
    user_id, item_id, category, action = _activity(event.json())
    half_life_ms = ctx.config_or("half_life_ms", DEFAULT_HALF_LIFE_MS, _parse_i64)
    top_n = ctx.config_or("top_n", DEFAULT_TOP_N, _parse_usize)
    if half_life_ms <= 0 or not 1 <= top_n <= MAX_TOP_N:
        raise Reject(
            f"config half_life_ms={half_life_ms} must be positive and top_n={top_n} within 1..={MAX_TOP_N}"
        )
    ts = event.timestamp_ms
    weight = WEIGHTS[action]

    pop_key = popularity_key(category)
    popularity = _popularity(ctx, pop_key)
    popularity.add(item_id, weight, ts, half_life_ms, MAX_POPULAR_ITEMS)
    ctx.set_json(pop_key, popularity.to_json())

    user_key = f"u/{user_id}"
    user = User(ctx.get_json(user_key), user_key)
    user.categories.add(category, weight, ts, half_life_ms, MAX_USER_CATEGORIES)
    remember(user.recent, item_id, MAX_RECENT_ITEMS)
    if action == "purchase":
        remember(user.purchased, item_id, MAX_PURCHASED_ITEMS)

    top = user.categories.ranked()[:TOP_CATEGORIES]
    popular: list[tuple[float, Decayed]] = []
    for name, score in top:
        if name == category:
            popular.append((score, popularity))
        else:
            popular.append((score, _popularity(ctx, popularity_key(name))))
    items = recommend(user, popular, top_n)

    if items != user.emitted:
        recommendations = {
            "user_id": user_id,
            "top_categories": [{"category": name, "score": _round(score * 1000.0) / 1000.0} for name, score in top],
            "items": items,
            "timestamp_ms": ts,
        }
        ctx.emit_json(RECOMMENDATIONS, user_id, recommendations)
        user.emitted = items
    ctx.set_json(user_key, user.to_json())


def recommend(user: User, popular: list[tuple[float, Decayed]], top_n: int) -> list[str]:
    """The `top_n` most popular items of the user's top categories that they have not
    bought. An item's rank is its share of its category's popularity times the
    category's share of the user's interest, so a list mixes categories as the user's
    attention does."""
    interest = 0.0
    for score, _ in popular:
        interest += score
    purchased, recent = set(user.purchased), set(user.recent)
    candidates: dict[str, float] = {}
    for score, doc in popular:
        total = doc.total()
        if interest <= 0.0 or total <= 0.0:
            continue
        # score / interest * pop / total * boost, evaluated left to right as in Rust.
        share = score / interest
        for item, pop in doc.scores.items():
            if item in purchased:
                continue
            rank = share * pop / total * (RECENT_BOOST if item in recent else 1.0)
            best = candidates.get(item)
            if best is None or rank > best:
                candidates[item] = rank
    return [item for item, _ in _ranked(candidates)[:top_n]]


def popularity_key(category: str) -> str:
    return f"pop/{category}"


def remember(items: list[str], item: str, cap: int) -> None:
    """Marks `item` as the most recent of `items`, dropping the oldest beyond `cap`."""
    items[:] = [i for i in items if i != item]
    if len(items) >= cap:
        del items[0]
    items.append(item)


def _activity(doc: Any) -> tuple[str, str, str, str]:
    """The fields of a `user-activity` record; anything else in it is ignored."""
    if not isinstance(doc, dict):
        raise Reject("value is not the expected JSON: expected an object with user_id, item_id, category, action")
    fields = []
    for name in ("user_id", "item_id", "category", "action"):
        value = doc.get(name)
        if not isinstance(value, str):
            raise Reject(f"value is not the expected JSON: `{name}` must be a string")
        fields.append(value)
    if fields[3] not in WEIGHTS:
        raise Reject(
            f"value is not the expected JSON: unknown variant `{fields[3]}`, "
            "expected one of `view`, `click`, `add_to_cart`, `purchase`"
        )
    return fields[0], fields[1], fields[2], fields[3]


def _popularity(ctx: Context, key: str) -> Decayed:
    doc = ctx.get_json(key)
    return Decayed() if doc is None else Decayed.from_json(doc, key)


def _parse_i64(raw: str) -> int:
    return _integer(raw, -(2**63), 2**63 - 1)


def _parse_usize(raw: str) -> int:
    return _integer(raw, 0, 2**32 - 1)  # usize on wasm32


def _integer(raw: str, low: int, high: int) -> int:
    # Rust's FromStr for integers: an optional sign and ASCII digits within the type's
    # range; int() would also take spaces and underscores.
    if not _INTEGER.fullmatch(raw) or not low <= int(raw) <= high:
        raise ValueError(raw)
    return int(raw)


def _ranked(scores: dict[str, float]) -> list[tuple[str, float]]:
    """Keys by score, highest first, then by key."""
    return [(key, -negated) for negated, key in sorted([(-score, key) for key, score in scores.items()])]


def _round(x: float) -> float:
    # f64::round rounds halves away from zero; Python's round() rounds them to even.
    whole = math.floor(x)
    return whole + 1.0 if x - whole >= 0.5 else float(whole)


def _strings(values: Any) -> list[str]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise TypeError
    return list(values)
