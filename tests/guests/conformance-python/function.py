"""The conformance function in Python: one command per event, exercising every import and
every outcome, as tests/conformance/SPEC.md specifies. Its outputs must match the Rust
reference byte for byte."""

import re
import sys

from streamfn import Context, Event, Level, Reject, Retry, Timer

_LEVELS = {"debug": Level.DEBUG, "warn": Level.WARN, "error": Level.ERROR}
# The Rust reference parses times with i64's FromStr, which takes an optional sign and
# digits only; int() would also take spaces and underscores.
_TIME = re.compile(r"[+-]?[0-9]+")


def handle(event: Event, ctx: Context) -> None:
    """Runs the event's command."""
    command = event.value_text() or ""
    op, _, rest = command.partition(" ")

    def out(text: str) -> None:
        ctx.emit("out", event.key, text)

    if op == "set":
        k, _, v = rest.partition(" ")
        ctx.set(k, v)
        out(f"set {k}")
    elif op == "get":
        value = ctx.get(rest)
        out(f"get {rest}={'-' if value is None else _lossy(value)}")
    elif op == "del":
        ctx.delete(rest)
        out(f"del {rest}")
    elif op == "scan":
        entries = "".join(f" {_lossy(k)}={_lossy(v)}" for k, v in ctx.scan(rest, sys.maxsize))
        out(f"scan {rest}:{entries}")
    elif op == "emit":
        topic, _, text = rest.partition(" ")
        ctx.emit(topic, event.key, text, headers=[("h", "v")])
    elif op == "config":
        out(f"config {rest}={ctx.config(rest, '-')}")
    elif op == "log":
        level, _, message = rest.partition(" ")
        ctx.log(_LEVELS.get(level, Level.INFO), message)
        out(f"log {level}")
    elif op == "timer":
        k, _, at = rest.partition(" ")
        if not _TIME.fullmatch(at):
            raise Reject(f"bad time: {at}")
        ctx.schedule_timer(k, int(at))
        out(f"timer {k} {int(at)}")
    elif op == "cancel":
        ctx.cancel_timer(rest)
        out(f"cancel {rest}")
    elif op == "time":
        out(f"time {event.timestamp_ms} {event.stream_time_ms}")
    elif op == "meta":
        out(f"meta {event.topic} {event.partition} {event.offset} {event.key_text() or '-'}")
    elif op == "headers":
        out("headers" + "".join(f" {h.key}={_lossy(h.value)}" for h in event.headers))
    elif op == "reject":
        raise Reject(rest)
    elif op == "retry":
        raise Retry(rest)
    elif op == "trap":
        raise RuntimeError("trap requested")
    else:
        raise Reject(f"unknown command: {command}")


def on_timer(timer: Timer, ctx: Context) -> None:
    """Reports a fired timer."""
    ctx.emit("out", timer.key, f"fired {_lossy(timer.key)} {timer.at_ms}")


def _lossy(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")
