"""Unit tests of the SDK's plain-Python side: events, the context's conversions and
helpers, and TestHost's host rules. Run from sdk/python: python3 -m unittest discover tests
"""

import unittest

from streamfn import Context, Event, Level, Reject, Retry, Timer
from streamfn.testing import TestHost


def count(event: Event, ctx: Context) -> None:
    key = event.key_text() or "none"
    ctx.set_json(key, ctx.get_json(key, 0) + 1)
    if event.value_text() == "bad":
        raise Reject("bad value")
    ctx.emit("out", None, "counted")
    ctx.schedule_timer(key, event.timestamp_ms + 10)


def flush(timer: Timer, ctx: Context) -> None:
    ctx.emit("flushed", timer.key, str(timer.at_ms))


class EventTest(unittest.TestCase):
    def test_text_json_and_headers(self) -> None:
        event = Event("in", key=b"k", value='{"a": [1, "é"]}'.encode(), headers=[])
        self.assertEqual(event.key_text(), "k")
        self.assertEqual(event.json(), {"a": [1, "é"]})
        host = TestHost()
        event = host.event("in", b"\xff", "v", headers=[("x", "1"), ("y", b"\x00"), ("x", "2")])
        self.assertIsNone(event.key_text())
        self.assertEqual(event.header("x"), b"1")
        self.assertIsNone(event.header("z"))
        key, value = event.headers[1]
        self.assertEqual((key, value), ("y", b"\x00"))

    def test_a_decoded_event_names_the_schema_that_wrote_it(self) -> None:
        headers = [("streamfn.schema.id", b"42"), ("streamfn.schema.subject", b"orders-value")]
        event = TestHost().event("in", b"k", "{}", headers=headers)
        self.assertEqual(event.schema_id(), 42)
        self.assertEqual(event.schema_subject(), "orders-value")
        plain = Event("in", value=b"{}")
        self.assertIsNone(plain.schema_id())
        self.assertIsNone(plain.schema_subject())

    def test_bad_or_missing_json_rejects(self) -> None:
        for value in [b"{", b"\xff", b"NaN", None]:
            with self.subTest(value=value), self.assertRaises(Reject) as caught:
                Event("in", value=value).json()
            self.assertTrue(caught.exception.reason, "a reason is given")


class ContextTest(unittest.TestCase):
    def test_keys_and_values_are_bytes_whatever_is_passed(self) -> None:
        host = TestHost()
        ctx = Context(host)
        ctx.set("text", "é")
        ctx.set(b"raw", bytearray(b"\x01"))
        ctx.set(memoryview(b"view"), b"v")
        self.assertEqual(host.state, {b"text": "é".encode(), b"raw": b"\x01", b"view": b"v"})
        self.assertTrue(all(type(k) is bytes and type(v) is bytes for k, v in host.state.items()))
        self.assertEqual(ctx.get("text"), "é".encode())
        ctx.delete("text")
        ctx.delete("missing")
        self.assertIsNone(ctx.get("text"))
        with self.assertRaises(TypeError):
            ctx.set("n", 5)  # type: ignore[arg-type]

    def test_json_state_is_compact_utf8_and_bad_json_rejects(self) -> None:
        host = TestHost()
        ctx = Context(host)
        ctx.set_json("doc", {"name": "café", "n": [1, 2.0, None]})
        self.assertEqual(host.state[b"doc"], '{"name":"café","n":[1,2.0,null]}'.encode())
        self.assertEqual(ctx.get_json("doc"), {"name": "café", "n": [1, 2.0, None]})
        self.assertEqual(ctx.get_json("missing", 7), 7)
        ctx.set("broken", "{")
        with self.assertRaises(Reject) as caught:
            ctx.get_json("broken")
        self.assertIn('"broken"', caught.exception.reason)
        with self.assertRaises(ValueError):
            ctx.set_json("nan", float("nan"))

    def test_records_carry_the_handled_timestamp_unless_given(self) -> None:
        host = TestHost()
        ctx = Context(host, 1234)
        ctx.emit("out", "k", "v", headers={"h": "v"})
        ctx.emit_json("out", None, {"a": 1}, timestamp_ms=99)
        ctx.emit("out", b"k", None)
        first, second, tombstone = host.outputs
        self.assertEqual((first.key, first.value, first.timestamp_ms), (b"k", b"v", 1234))
        self.assertEqual([tuple(h) for h in first.headers], [("h", b"v")])
        self.assertEqual((second.key, second.value, second.timestamp_ms), (None, b'{"a":1}', 99))
        self.assertIsNone(tombstone.value)

    def test_config_and_typed_config(self) -> None:
        ctx = Context(TestHost(config={"n": "5", "f": "0.5", "on": "true", "bad": "five"}))
        self.assertEqual(ctx.config("n"), "5")
        self.assertEqual(ctx.config("missing", "-"), "-")
        self.assertIsNone(ctx.config("missing"))
        self.assertEqual(ctx.config_or("n", 1), 5)
        self.assertEqual(ctx.config_or("f", 1.0), 0.5)
        self.assertIs(ctx.config_or("on", False), True)
        self.assertEqual(ctx.config_or("missing", 3), 3)
        with self.assertRaises(Reject) as caught:
            ctx.config_or("bad", 1)
        self.assertEqual(caught.exception.reason, 'config bad="five" does not parse')

    def test_logs_take_levels_or_their_names(self) -> None:
        host = TestHost()
        ctx = Context(host)
        ctx.log(Level.DEBUG, "d")
        ctx.log("warn", "w")
        ctx.info("i")
        ctx.error("e")
        self.assertEqual(host.logs, [(Level.DEBUG, "d"), (Level.WARN, "w"), (Level.INFO, "i"), (Level.ERROR, "e")])

    def test_scan_pages_through_a_prefix(self) -> None:
        host = TestHost()
        for i in range(600):
            host.set(f"k/{i:04}".encode(), b"v")
        host.set(b"other", b"v")
        ctx = Context(host)
        every = ctx.scan("k/", 10_000)
        self.assertEqual(len(every), 600)
        self.assertEqual(every[599], (b"k/0599", b"v"))
        self.assertEqual(len(ctx.scan("k/", 10)), 10)
        self.assertEqual(len(ctx.scan("", 10_000)), 601)

    def test_timer_times_must_be_integers(self) -> None:
        ctx = Context(TestHost())
        with self.assertRaises(TypeError):
            ctx.schedule_timer("t", 1.5)  # type: ignore[arg-type]


class CodecTest(unittest.TestCase):
    def test_json_is_what_the_standard_library_writes_and_reads(self) -> None:
        import json
        import math

        from streamfn.codec import from_json, to_json

        for value in [0, -7, 10**20, True, None, 1.5, -0.0, 1e-7, "é\"\n", {"k": [1, 2.0, {}]}, [], Level.WARN]:
            expected = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
            self.assertEqual(to_json(value), expected.encode(), value)
        for bad in [math.nan, math.inf, {1, 2}]:
            with self.assertRaises((ValueError, TypeError)):
                to_json(bad)
        for text in ["12", " 12 ", '{"a":[1,"x"]}', "[1, 2]\n", '"x"', "-0.0"]:
            self.assertEqual(from_json(text.encode()), json.loads(text), text)
        for text in ["", "1 2", "NaN", "Infinity", '{"a":}', "[1,", "{", " "]:
            with self.assertRaises(ValueError, msg=text):
                from_json(text.encode())
        with self.assertRaises(ValueError):
            from_json(b"\xff")


class TestHostTest(unittest.TestCase):
    def test_a_failed_event_leaves_no_effects(self) -> None:
        host = TestHost()
        host.handle(count, host.event("in", "a", "good", 1))
        with self.assertRaises(Reject):
            host.handle(count, host.event("in", "a", "bad", 2))
        self.assertEqual(host.state_json("a"), 1)
        self.assertEqual(len(host.outputs), 1)
        self.assertEqual(host.timers(), [(b"a", 11)])

    def test_a_bug_propagates_and_leaves_no_effects_either(self) -> None:
        def buggy(event: Event, ctx: Context) -> None:
            ctx.set("x", "1")
            raise KeyError("oops")

        host = TestHost()
        with self.assertRaises(KeyError):
            host.handle(buggy, host.event("in", None, "v"))
        self.assertEqual(host.state, {})

    def test_timers_fire_once_stream_time_passes_them(self) -> None:
        host = TestHost()
        host.deliver(count, flush, "in", "a", "x", 100)
        self.assertEqual(host.outputs_json("flushed"), [])
        host.deliver(count, flush, "in", "b", "x", 111)
        self.assertEqual(host.outputs_json("flushed"), [110])
        fired = [o for o in host.outputs if o.topic == "flushed"][0]
        self.assertEqual((fired.key, fired.timestamp_ms), (b"a", 110))
        self.assertEqual(host.timers(), [(b"b", 121)])

    def test_stream_time_never_goes_back(self) -> None:
        host = TestHost()
        host.event("in", None, "x", 50)
        late = host.event("in", None, "x", 20)
        self.assertEqual((late.timestamp_ms, late.stream_time_ms, late.offset), (20, 50, 1))

    def test_retry_is_an_outcome_like_reject(self) -> None:
        def later(event: Event, ctx: Context) -> None:
            raise Retry("busy")

        host = TestHost()
        with self.assertRaises(Retry) as caught:
            host.handle(later, host.event("in", None, "x"))
        self.assertEqual(caught.exception, Retry("busy"))
        self.assertNotEqual(caught.exception, Reject("busy"))
        self.assertEqual(str(caught.exception), "busy")


if __name__ == "__main__":
    unittest.main()
