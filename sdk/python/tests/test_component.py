"""Unit tests of `streamfn.component`, the glue between componentize-py's bindings and a
function module, run natively against stand-ins of the bindings of both contract
versions: outcomes, records, state, the once-per-instance configuration, timers and the
errors of a wrong project. The 0.2.0 stand-ins encode batches and decode effects here,
apart from the SDK's own code, as the host does.
"""

import importlib
import struct
import sys
import types
import unittest
from dataclasses import dataclass
from enum import Enum
from typing import Any

VERSIONS = ("0.1.0", "0.2.0")


@dataclass(frozen=True)
class Sent:
    """A record the function sent, in either version's form."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp_ms: int | None


@dataclass(frozen=True)
class RawEvent:
    topic: str
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def exact_bytes(*values: Any) -> None:
    # The real bindings trap on anything but bytes for list<u8>.
    for value in values:
        assert value is None or type(value) is bytes, f"{value!r} is not bytes"


class Bindings:
    """Stand-ins for the modules componentize-py generates from one version of the
    contract, which record every effect as ("send", Sent), ("set", (key, value)),
    ("delete", key), ("schedule", (key, at)), ("cancel", key), ("log", (level, text)),
    ("config.all", None), ("apply", size) and ("get", key)."""

    def __init__(self, config: dict[str, str], version: str = "0.1.0") -> None:
        self.version = version
        self.calls: list[tuple[str, Any]] = []
        self.state: dict[bytes, bytes] = {}
        self.modules = self._modules(config)

    def record(self, name: str, arg: Any) -> None:
        self.calls.append((name, arg))
        if name == "set":
            self.state[arg[0]] = arg[1]
        elif name == "delete":
            self.state.pop(arg, None)

    def effects(self, name: str) -> list[Any]:
        return [arg for call, arg in self.calls if call == name]

    def _modules(self, config_values: dict[str, str]) -> dict[str, types.ModuleType]:
        record, store = self.record, self.state

        @dataclass(frozen=True)
        class Err(Exception):
            value: Any

        wtypes = types.ModuleType("wit_world.imports.types")

        @dataclass
        class FiredTimer:
            key: bytes
            at_ms: int

        wtypes.FiredTimer = FiredTimer  # type: ignore[attr-defined]

        state = types.ModuleType("wit_world.imports.state")

        @dataclass
        class Entry:
            key: bytes
            value: bytes

        def get(key: bytes) -> bytes | None:
            exact_bytes(key)
            record("get", key)
            return store.get(key)

        def scan(prefix: bytes, start_after: bytes | None, limit: int) -> list[Entry]:
            keys = sorted(k for k in store if k.startswith(prefix) and (start_after is None or k > start_after))
            return [Entry(k, store[k]) for k in keys[:limit]]

        state.__dict__.update(get=get, scan=scan, Entry=Entry)

        log = types.ModuleType("wit_world.imports.log")
        Level = Enum("Level", {"DEBUG": 0, "INFO": 1, "WARN": 2, "ERROR": 3})
        log.__dict__.update(Level=Level, write=lambda level, message: record("log", (level.name, message)))

        config = types.ModuleType("wit_world.imports.config")

        def config_all() -> list[tuple[str, str]]:
            record("config.all", None)
            return sorted(config_values.items())

        config.__dict__.update(all=config_all, get=config_values.get)

        imports = types.ModuleType("wit_world.imports")
        modules = {"types": wtypes, "state": state, "log": log, "config": config}
        if self.version == "0.1.0":
            modules.update(self._imports_0_1(wtypes, state))
        else:
            modules.update(self._imports_0_2(wtypes, state))
        imports.__dict__.update(modules)
        exports = types.ModuleType("wit_world.exports")
        exports.Handler = type("Handler", (), {})  # type: ignore[attr-defined]
        world = types.ModuleType("wit_world")
        world.__dict__.update(imports=imports, exports=exports)
        runtime = types.ModuleType("componentize_py_types")
        runtime.Err = Err  # type: ignore[attr-defined]
        return {"componentize_py_types": runtime, "wit_world": world, "wit_world.exports": exports,
                "wit_world.imports": imports, **{f"wit_world.imports.{n}": m for n, m in modules.items()}}

    def _imports_0_1(self, wtypes: types.ModuleType, state: types.ModuleType) -> dict[str, types.ModuleType]:
        record = self.record

        @dataclass
        class Header:
            key: str
            value: bytes

        @dataclass
        class Event:
            topic: str
            partition: int
            offset: int
            timestamp_ms: int
            stream_time_ms: int
            key: bytes | None
            value: bytes | None
            headers: list[Header]

        @dataclass
        class Outcome_Ok:  # noqa: N801 (the generated name)
            pass

        @dataclass
        class Outcome_Retry:  # noqa: N801
            value: str

        @dataclass
        class Outcome_Reject:  # noqa: N801
            value: str

        wtypes.__dict__.update(Header=Header, Event=Event, Outcome_Ok=Outcome_Ok, Outcome_Retry=Outcome_Retry,
                               Outcome_Reject=Outcome_Reject, Outcome=Outcome_Ok | Outcome_Retry | Outcome_Reject)

        def set_(key: bytes, value: bytes) -> None:
            exact_bytes(key, value)
            record("set", (key, value))

        state.__dict__.update(set=set_, delete=lambda key: record("delete", key))

        emit = types.ModuleType("wit_world.imports.emit")

        @dataclass
        class Output:
            topic: str
            key: bytes | None
            value: bytes | None
            headers: list[Header]
            timestamp_ms: int | None

        def send(output: Output) -> None:
            exact_bytes(output.key, output.value, *(h.value for h in output.headers))
            record("send", Sent(output.topic, output.key, output.value,
                                [(h.key, h.value) for h in output.headers], output.timestamp_ms))

        emit.__dict__.update(Output=Output, send=send)
        timers = types.ModuleType("wit_world.imports.timers")
        timers.__dict__.update(schedule=lambda key, at: record("schedule", (key, at)),
                               cancel=lambda key: record("cancel", key))
        return {"emit": emit, "timers": timers}

    def _imports_0_2(self, wtypes: types.ModuleType, state: types.ModuleType) -> dict[str, types.ModuleType]:
        record = self.record

        @dataclass
        class Failure_Retry:  # noqa: N801 (the generated name)
            value: str

        @dataclass
        class Failure_Reject:  # noqa: N801
            value: str

        @dataclass
        class FailedEvent:
            index: int
            failure: Failure_Retry | Failure_Reject

        wtypes.__dict__.update(Failure_Retry=Failure_Retry, Failure_Reject=Failure_Reject, FailedEvent=FailedEvent)

        def get_many(keys: list[bytes]) -> list[bytes | None]:
            return [state.get(key) for key in keys]

        state.get_many = get_many  # type: ignore[attr-defined]

        def apply(buffer: bytes) -> None:
            exact_bytes(buffer)
            record("apply", len(buffer))
            for name, arg in decode_effects(buffer):
                record(name, arg)

        effects = types.ModuleType("wit_world.imports.effects")
        effects.apply = apply  # type: ignore[attr-defined]
        return {"effects": effects}


def decode_effects(buffer: bytes) -> list[tuple[str, Any]]:
    """The entries of an effects buffer, as the host reads them."""
    at = 0

    def take(fmt: str) -> Any:
        nonlocal at
        (value,) = struct.unpack_from(fmt, buffer, at)
        at += struct.calcsize(fmt)
        return value

    def data() -> bytes:
        nonlocal at
        length = take("<I")
        at += length
        return buffer[at - length : at]

    def optional() -> bytes | None:
        nonlocal at
        if struct.unpack_from("<I", buffer, at)[0] == 0xFFFFFFFF:
            at += 4
            return None
        return data()

    entries: list[tuple[str, Any]] = []
    while at < len(buffer):
        tag = take("<B")
        if tag == 0:
            entries.append(("set", (data(), data())))
        elif tag == 1:
            entries.append(("delete", data()))
        elif tag == 2:
            topic, key, value = data().decode(), optional(), optional()
            headers = [(data().decode(), data()) for _ in range(take("<I"))]
            timestamp = take("<q") if take("<B") else None
            entries.append(("send", Sent(topic, key, value, headers, timestamp)))
        elif tag == 3:
            entries.append(("schedule", (data(), take("<q"))))
        elif tag == 4:
            entries.append(("cancel", data()))
        else:
            raise AssertionError(f"unknown effect tag {tag}")
    return entries


def encode_batch(partition: int, events: list[RawEvent]) -> bytes:
    """A batch buffer, as the host writes it; stream time is the largest timestamp so far."""
    topics = sorted({e.topic for e in events})

    def data(raw: bytes) -> bytes:
        return struct.pack("<I", len(raw)) + raw

    def optional(raw: bytes | None) -> bytes:
        return struct.pack("<I", 0xFFFFFFFF) if raw is None else data(raw)

    out = struct.pack("<II", partition, len(topics)) + b"".join(data(t.encode()) for t in topics)
    out += struct.pack("<I", len(events))
    stream_time = 0
    for e in events:
        stream_time = max(stream_time, e.timestamp_ms)
        out += struct.pack("<IQqq", topics.index(e.topic), e.offset, e.timestamp_ms, stream_time)
        out += optional(e.key) + optional(e.value) + struct.pack("<I", len(e.headers))
        out += b"".join(data(name.encode()) + data(value) for name, value in e.headers)
    return out


FUNCTION = '''
from streamfn import Context, Event, Reject, Retry, Timer

def handle(event: Event, ctx: Context) -> None:
    command = event.value_text()
    if command == "reject":
        raise Reject("bad")
    if command == "retry":
        raise Retry("later")
    if command == "bug":
        raise ZeroDivisionError("bug")
    if command == "count":
        ctx.set_json("count", ctx.get_json("count", 0) + 1)
        return
    if command == "scan":
        ctx.emit("out", None, ",".join(k.decode() for k, _ in ctx.scan("k", 10)))
        return
    ctx.emit(ctx.config("to", "out"), event.key, command.upper(), headers=[("h", "v")])
    ctx.emit("side", None, f"{event.topic}/{event.partition}/{event.header('x')!r}", timestamp_ms=-5)
    ctx.set_json(event.key, {"n": event.offset})
    ctx.schedule_timer(event.key, event.timestamp_ms + 5)
    ctx.warn(f"handled {event.offset}")

def on_timer(timer: Timer, ctx: Context) -> None:
    if timer.key == b"fail":
        raise Reject("timer refused")
    ctx.emit("out", timer.key, "fired")
    ctx.cancel_timer(b"other")
'''


def load_component(bindings: Bindings, function_source: str | None) -> Any:
    """Imports streamfn.component afresh against `bindings` and a module `function`."""
    for name in [n for n in sys.modules if n == "function" or n == "streamfn.component" or
                 n.startswith("wit_world")]:
        del sys.modules[name]
    sys.modules.update(bindings.modules)
    if function_source is not None:
        module = types.ModuleType("function")
        exec(compile(function_source, "function.py", "exec"), module.__dict__)
        sys.modules["function"] = module
    return importlib.import_module("streamfn.component")


def unload(bindings: Bindings) -> None:
    for name in [*bindings.modules, "function", "streamfn.component"]:
        sys.modules.pop(name, None)


class Call:
    """Runs the handler of one version on `RawEvent`s, with outcomes as "ok",
    "reject: reason" or "retry: reason", one per event."""

    def __init__(self, bindings: Bindings, component: Any) -> None:
        self.bindings = bindings
        self.handler = component.Handler()
        self.wtypes = bindings.modules["wit_world.imports.types"]

    def handle(self, events: list[RawEvent], partition: int = 3) -> list[str]:
        t = self.wtypes
        if self.bindings.version == "0.1.0":
            raw = [t.Event(e.topic, partition, e.offset, e.timestamp_ms, e.timestamp_ms, e.key, e.value,
                           [t.Header(k, v) for k, v in e.headers]) for e in events]
            shown = {t.Outcome_Retry: "retry", t.Outcome_Reject: "reject"}
            return [f"{shown[type(o)]}: {o.value}" if type(o) in shown else "ok" for o in self.handler.handle(raw)]
        failed = self.handler.handle(encode_batch(partition, events))
        self.bindings.test.assertEqual([f.index for f in failed], sorted({f.index for f in failed}))
        kinds = {t.Failure_Retry: "retry", t.Failure_Reject: "reject"}
        outcomes = ["ok"] * len(events)
        for f in failed:
            outcomes[f.index] = f"{kinds[type(f.failure)]}: {f.failure.value}"
        return outcomes

    def timers(self, *fired: tuple[bytes, int]) -> None:
        self.handler.on_timers([self.wtypes.FiredTimer(key, at) for key, at in fired])


def event(offset: int, value: str, topic: str = "in") -> RawEvent:
    return RawEvent(topic, offset, 1000 + offset, b"k%d" % offset, value.encode(), [("x", b"1")])


class ComponentTest(unittest.TestCase):
    """Each test runs on the bindings of both versions."""

    def each_version(self, config: dict[str, str] | None = None, source: str = FUNCTION) -> Any:
        for version in VERSIONS:
            with self.subTest(version=version):
                bindings = Bindings(config or {"to": "dest"}, version)
                bindings.test = self  # type: ignore[attr-defined]
                try:
                    yield bindings, Call(bindings, load_component(bindings, source))
                finally:
                    unload(bindings)

    def test_one_outcome_per_event_in_order(self) -> None:
        for bindings, call in self.each_version():
            outcomes = call.handle([event(0, "a"), event(1, "reject"), event(2, "retry"), event(3, "b")])
            self.assertEqual(outcomes, ["ok", "reject: bad", "retry: later", "ok"])
            self.assertEqual(bindings.effects("send"), [
                Sent("dest", b"k0", b"A", [("h", b"v")], 1000),
                Sent("side", None, b"in/3/b'1'", [], -5),
                Sent("dest", b"k3", b"B", [("h", b"v")], 1003),
                Sent("side", None, b"in/3/b'1'", [], -5),
            ])
            self.assertEqual(bindings.state, {b"k0": b'{"n":0}', b"k3": b'{"n":3}'})
            self.assertEqual(bindings.effects("schedule"), [(b"k0", 1005), (b"k3", 1008)])
            self.assertEqual(bindings.effects("log"), [("WARN", "handled 0"), ("WARN", "handled 3")])

    def test_events_of_several_topics_keep_their_own(self) -> None:
        for bindings, call in self.each_version():
            call.handle([event(0, "a", "orders"), event(1, "a", "payments"), event(2, "a", "orders")], partition=7)
            sides = [s.value for s in bindings.effects("send") if s.topic == "side"]
            self.assertEqual(sides, [b"orders/7/b'1'", b"payments/7/b'1'", b"orders/7/b'1'"])

    def test_absent_and_empty_keys_and_values_differ(self) -> None:
        source = "def handle(event, ctx):\n    ctx.emit('out', event.key, event.value, headers=event.headers)\n"
        for bindings, call in self.each_version(source=source):
            events = [RawEvent("in", 0, 1, None, None, []), RawEvent("in", 1, 2, b"", b"", [("e", b"")])]
            call.handle(events)
            self.assertEqual(bindings.effects("send"), [Sent("out", None, None, [], 1),
                                                        Sent("out", b"", b"", [("e", b"")], 2)])

    def test_a_batch_reads_its_own_writes(self) -> None:
        for bindings, call in self.each_version():
            bindings.state[b"count"] = b"5"
            call.handle([event(0, "count"), event(1, "count"), event(2, "count")])
            self.assertEqual(bindings.state[b"count"], b"8")
            if bindings.version == "0.2.0":
                # One read crosses; the writes go back in one buffer.
                self.assertEqual(bindings.effects("get"), [b"count"])
                self.assertEqual(len(bindings.effects("apply")), 1)
            call.handle([event(3, "count")])
            self.assertEqual(bindings.state[b"count"], b"9", "a new call reads what the host holds")

    def test_a_scan_sees_the_writes_before_it(self) -> None:
        for bindings, call in self.each_version():
            bindings.state[b"k9"] = b"{}"
            call.handle([event(0, "a"), event(1, "scan")])
            scanned = [s.value for s in bindings.effects("send") if s.topic == "out"]
            self.assertEqual(scanned, [b"k0,k9"])

    def test_configuration_is_read_once_per_instance(self) -> None:
        for bindings, call in self.each_version():
            call.handle([event(0, "a")])
            call.handle([event(1, "a"), event(2, "a")])
            self.assertEqual(bindings.effects("config.all"), [None])

    def test_a_bug_escapes_so_the_call_traps(self) -> None:
        for bindings, call in self.each_version():
            with self.assertRaises(ZeroDivisionError):
                call.handle([event(0, "a"), event(1, "bug")])
            if bindings.version == "0.2.0":
                self.assertEqual(bindings.effects("apply"), [], "a trapped call applies nothing")

    def test_timers_emit_at_their_time_and_a_failure_is_the_calls_error(self) -> None:
        for bindings, call in self.each_version():
            call.timers((b"t1", 77))
            self.assertEqual(bindings.effects("send"), [Sent("out", b"t1", b"fired", [], 77)])
            self.assertEqual(bindings.effects("cancel"), [b"other"])
            with self.assertRaises(bindings.modules["componentize_py_types"].Err) as caught:
                call.timers((b"fail", 78))
            self.assertEqual(caught.exception.value, "reject: timer refused")

    def test_the_contract_is_the_one_the_bindings_are_of(self) -> None:
        for bindings, call in self.each_version():
            host = type(sys.modules["streamfn.component"]._HOST).__name__
            self.assertEqual(host, {"0.1.0": "ImportHost", "0.2.0": "BatchHost"}[bindings.version])


class WrongProjectTest(unittest.TestCase):
    def tearDown(self) -> None:
        for name in ["function", "streamfn.component", "componentize_py_types"]:
            sys.modules.pop(name, None)
        for name in [n for n in sys.modules if n.startswith("wit_world")]:
            del sys.modules[name]

    def test_a_project_without_function_py_is_told_what_to_write(self) -> None:
        with self.assertRaisesRegex(ImportError, "no module `function`"):
            load_component(Bindings({}), None)

    def test_a_function_module_without_handle_is_told_what_to_define(self) -> None:
        with self.assertRaisesRegex(TypeError, "must define `handle"):
            load_component(Bindings({}), "x = 1\n")

    def test_timers_without_on_timer_are_an_error_naming_the_timer(self) -> None:
        for version in VERSIONS:
            bindings = Bindings({}, version)
            component = load_component(bindings, "def handle(event, ctx):\n    pass\n")
            wtypes = bindings.modules["wit_world.imports.types"]
            with self.assertRaises(bindings.modules["componentize_py_types"].Err) as caught:
                component.Handler().on_timers([wtypes.FiredTimer(b"t", 5)])
            self.assertIn("defines no on_timer", caught.exception.value)


if __name__ == "__main__":
    unittest.main()
