"""Unit tests of `streamfn.component`, the glue between componentize-py's bindings and a
function module, run natively against stand-ins of the generated bindings: outcomes,
records, the once-per-instance configuration, timers and the errors of a wrong project.
"""

import importlib
import sys
import types
import unittest
from dataclasses import dataclass
from enum import Enum
from typing import Any


class Bindings:
    """Stand-ins for the modules componentize-py generates from wit/function.wit, which
    record every import call."""

    def __init__(self, config: dict[str, str]) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.state: dict[bytes, bytes] = {}
        self.modules = self._modules(config)

    def _modules(self, config_values: dict[str, str]) -> dict[str, types.ModuleType]:
        calls, store = self.calls, self.state

        @dataclass(frozen=True)
        class Err(Exception):
            value: Any

        wtypes = types.ModuleType("wit_world.imports.types")

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
        class FiredTimer:
            key: bytes
            at_ms: int

        @dataclass
        class Outcome_Ok:  # noqa: N801 (the generated name)
            pass

        @dataclass
        class Outcome_Retry:  # noqa: N801
            value: str

        @dataclass
        class Outcome_Reject:  # noqa: N801
            value: str

        wtypes.__dict__.update(Header=Header, Event=Event, FiredTimer=FiredTimer, Outcome_Ok=Outcome_Ok,
                               Outcome_Retry=Outcome_Retry, Outcome_Reject=Outcome_Reject,
                               Outcome=Outcome_Ok | Outcome_Retry | Outcome_Reject)

        def exact_bytes(*values: Any) -> None:
            # The real bindings trap on anything but bytes for list<u8>.
            for value in values:
                assert value is None or type(value) is bytes, f"{value!r} is not bytes"

        state = types.ModuleType("wit_world.imports.state")

        @dataclass
        class Entry:
            key: bytes
            value: bytes

        def get(key: bytes) -> bytes | None:
            exact_bytes(key)
            return store.get(key)

        def set_(key: bytes, value: bytes) -> None:
            exact_bytes(key, value)
            store[key] = value

        def scan(prefix: bytes, start_after: bytes | None, limit: int) -> list[Entry]:
            keys = sorted(k for k in store if k.startswith(prefix) and (start_after is None or k > start_after))
            return [Entry(k, store[k]) for k in keys[:limit]]

        state.__dict__.update(get=get, set=set_, delete=lambda key: store.pop(key, None), scan=scan, Entry=Entry)

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
            calls.append(("send", output))

        emit.__dict__.update(Output=Output, send=send)

        log = types.ModuleType("wit_world.imports.log")
        Level = Enum("Level", {"DEBUG": 0, "INFO": 1, "WARN": 2, "ERROR": 3})
        log.__dict__.update(Level=Level, write=lambda level, message: calls.append(("log", (level.name, message))))

        config = types.ModuleType("wit_world.imports.config")

        def config_all() -> list[tuple[str, str]]:
            calls.append(("config.all", None))
            return sorted(config_values.items())

        config.__dict__.update(all=config_all, get=config_values.get)

        timers = types.ModuleType("wit_world.imports.timers")
        timers.__dict__.update(schedule=lambda key, at: calls.append(("schedule", (key, at))),
                               cancel=lambda key: calls.append(("cancel", key)))

        imports = types.ModuleType("wit_world.imports")
        imports.__dict__.update(types=wtypes, state=state, emit=emit, log=log, config=config, timers=timers)
        exports = types.ModuleType("wit_world.exports")
        exports.Handler = type("Handler", (), {})  # type: ignore[attr-defined]
        world = types.ModuleType("wit_world")
        world.__dict__.update(imports=imports, exports=exports)
        runtime = types.ModuleType("componentize_py_types")
        runtime.Err = Err  # type: ignore[attr-defined]
        return {"componentize_py_types": runtime, "wit_world": world, "wit_world.exports": exports,
                "wit_world.imports": imports, "wit_world.imports.types": wtypes,
                **{f"wit_world.imports.{name}": m for name, m in
                   [("state", state), ("emit", emit), ("log", log), ("config", config), ("timers", timers)]}}


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
    ctx.emit(ctx.config("to", "out"), event.key, command.upper(), headers=[("h", "v")])
    ctx.set_json(event.key, {"n": event.offset})
    ctx.schedule_timer(event.key, event.timestamp_ms + 5)
    ctx.warn(f"handled {event.offset}")

def on_timer(timer: Timer, ctx: Context) -> None:
    if timer.key == b"fail":
        raise Reject("timer refused")
    ctx.emit("out", timer.key, "fired")
'''


def load_component(bindings: Bindings, function_source: str | None) -> Any:
    """Imports streamfn.component afresh against `bindings` and a module `function`."""
    for name in [n for n in sys.modules if n == "function" or n == "streamfn.component"]:
        del sys.modules[name]
    sys.modules.update(bindings.modules)
    if function_source is not None:
        module = types.ModuleType("function")
        exec(compile(function_source, "function.py", "exec"), module.__dict__)
        sys.modules["function"] = module
    return importlib.import_module("streamfn.component")


class ComponentTest(unittest.TestCase):
    def setUp(self) -> None:
        self.bindings = Bindings({"to": "dest"})
        self.component = load_component(self.bindings, FUNCTION)
        self.wtypes = self.bindings.modules["wit_world.imports.types"]

    def tearDown(self) -> None:
        for name in [*self.bindings.modules, "function", "streamfn.component"]:
            sys.modules.pop(name, None)

    def event(self, offset: int, value: str) -> Any:
        return self.wtypes.Event("in", 0, offset, 1000 + offset, 1000 + offset, b"k%d" % offset, value.encode(),
                                 [self.wtypes.Header("x", b"1")])

    def test_one_outcome_per_event_in_order(self) -> None:
        handler = self.component.Handler()
        outcomes = handler.handle([self.event(0, "a"), self.event(1, "reject"), self.event(2, "retry"),
                                   self.event(3, "b")])
        t = self.wtypes
        self.assertEqual(outcomes, [t.Outcome_Ok(), t.Outcome_Reject("bad"), t.Outcome_Retry("later"), t.Outcome_Ok()])
        sent = [c[1] for c in self.bindings.calls if c[0] == "send"]
        self.assertEqual([(o.topic, o.key, o.value, o.timestamp_ms) for o in sent],
                         [("dest", b"k0", b"A", 1000), ("dest", b"k3", b"B", 1003)])
        self.assertEqual(sent[0].headers, [t.Header("h", b"v")])
        self.assertEqual(self.bindings.state[b"k3"], b'{"n":3}')
        self.assertIn(("schedule", (b"k0", 1005)), self.bindings.calls)
        self.assertIn(("log", ("WARN", "handled 0")), self.bindings.calls)

    def test_configuration_is_read_once_per_instance(self) -> None:
        handler = self.component.Handler()
        handler.handle([self.event(0, "a")])
        handler.handle([self.event(1, "a"), self.event(2, "a")])
        self.assertEqual([c for c in self.bindings.calls if c[0] == "config.all"], [("config.all", None)])

    def test_a_bug_escapes_so_the_call_traps(self) -> None:
        with self.assertRaises(ZeroDivisionError):
            self.component.Handler().handle([self.event(0, "a"), self.event(1, "bug")])

    def test_timers_emit_at_their_time_and_a_failure_is_the_calls_error(self) -> None:
        t, runtime = self.wtypes, self.bindings.modules["componentize_py_types"]
        handler = self.component.Handler()
        handler.on_timers([t.FiredTimer(b"t1", 77)])
        sent = [c[1] for c in self.bindings.calls if c[0] == "send"]
        self.assertEqual([(o.key, o.value, o.timestamp_ms) for o in sent], [(b"t1", b"fired", 77)])
        with self.assertRaises(runtime.Err) as caught:
            handler.on_timers([t.FiredTimer(b"fail", 78)])
        self.assertEqual(caught.exception.value, "reject: timer refused")


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
        bindings = Bindings({})
        component = load_component(bindings, "def handle(event, ctx):\n    pass\n")
        wtypes = bindings.modules["wit_world.imports.types"]
        with self.assertRaises(bindings.modules["componentize_py_types"].Err) as caught:
            component.Handler().on_timers([wtypes.FiredTimer(b"t", 5)])
        self.assertIn("defines no on_timer", caught.exception.value)


if __name__ == "__main__":
    unittest.main()
