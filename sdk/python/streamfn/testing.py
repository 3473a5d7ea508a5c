"""An in-memory host for native unit tests of a function, with the host's rules: a failed
event leaves no effects, stream time only moves forward, and due timers fire in order.

    from streamfn.testing import TestHost
    import function

    host = TestHost(config={"to": "counts"})
    host.handle(function.handle, host.event("in", "user-1", "{}", timestamp_ms=1000))
    assert host.outputs_json("counts") == [{"key": "user-1", "count": 1}]

Plain Python: it needs neither componentize-py nor a replica.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .codec import Bytes, from_json, to_bytes
from .context import Context, Headers, Level, _headers
from .event import Event, Header, Timer

#: A function's event handler: `handle(event, ctx)`.
HandleFn = Callable[[Event, Context], None]
#: A function's timer handler: `on_timer(timer, ctx)`.
TimerFn = Callable[[Timer, Context], None]


@dataclass
class Output:
    """A record the function sent."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[Header] = field(default_factory=list)
    timestamp_ms: int | None = None

    def value_text(self) -> str | None:
        """The value as text."""
        return None if self.value is None else self.value.decode()

    def json(self) -> Any:
        """The value parsed as JSON."""
        return None if self.value is None else from_json(self.value)


class TestHost:
    """A host that keeps state, outputs, logs and timers in memory, for one partition."""

    __test__ = False  # not a pytest test class, whatever its name says

    def __init__(self, config: Mapping[str, str] | None = None, partition: int = 0) -> None:
        self.partition = partition
        self.stream_time_ms = 0
        self.state: dict[bytes, bytes] = {}
        self.outputs: list[Output] = []
        self.logs: list[tuple[Level, str]] = []
        self._config: dict[str, str] = dict(config or {})
        self._timers: dict[bytes, int] = {}
        self._next_offset = 0

    def with_config(self, key: str, value: str) -> "TestHost":
        """Adds a deploy-time configuration value; returns the host."""
        self._config[key] = value
        return self

    # Driving the function.

    def event(
        self,
        topic: str,
        key: Bytes | None,
        value: Bytes | None,
        timestamp_ms: int = 0,
        headers: Headers | None = None,
    ) -> Event:
        """The next event of the partition, with its offset and stream time filled in."""
        self.stream_time_ms = max(self.stream_time_ms, timestamp_ms)
        offset = self._next_offset
        self._next_offset += 1
        return Event(
            topic=topic,
            partition=self.partition,
            offset=offset,
            timestamp_ms=timestamp_ms,
            stream_time_ms=self.stream_time_ms,
            key=None if key is None else to_bytes(key),
            value=None if value is None else to_bytes(value),
            headers=_headers(headers) if headers else [],
        )

    def handle(self, handle: HandleFn, event: Event) -> None:
        """Runs `handle` on `event`. If it raises (`Reject`, `Retry` or a bug), the event's
        state writes, records and timer changes are undone, as the host does, and the
        exception propagates to the test."""
        self._transaction(handle, event, Context(self, event.timestamp_ms))

    def deliver(
        self,
        handle: HandleFn,
        on_timer: TimerFn,
        topic: str,
        key: Bytes | None,
        value: Bytes | None,
        timestamp_ms: int = 0,
    ) -> None:
        """Builds an event, handles it, then fires the timers its stream time made due."""
        self.handle(handle, self.event(topic, key, value, timestamp_ms))
        self.fire_due_timers(on_timer)

    def fire_due_timers(self, on_timer: TimerFn) -> None:
        """Fires every timer at or before the current stream time, in order of time and
        key, each in its own transaction."""
        while True:
            due = [(at, key) for key, at in self._timers.items() if at <= self.stream_time_ms]
            if not due:
                return
            at, key = min(due)
            del self._timers[key]
            self._transaction(on_timer, Timer(key, at), Context(self, at))

    def advance_stream_time(self, to_ms: int) -> None:
        """Moves stream time forward without an event, as a later event would."""
        self.stream_time_ms = max(self.stream_time_ms, to_ms)

    # Inspecting what it did.

    def outputs_json(self, topic: str) -> list[Any]:
        """Values sent to `topic`, parsed as JSON, oldest first."""
        return [o.json() for o in self.outputs if o.topic == topic and o.value is not None]

    def take_outputs(self) -> list[Output]:
        """Removes and returns the records sent so far."""
        taken, self.outputs = self.outputs, []
        return taken

    def state_json(self, key: Bytes) -> Any:
        """The state value under `key` parsed as JSON, or `None`."""
        raw = self.state.get(to_bytes(key))
        return None if raw is None else from_json(raw)

    def timers(self) -> list[tuple[bytes, int]]:
        """Pending timers as `(key, at_ms)`, in key order."""
        return sorted(self._timers.items())

    # The host side of the contract, called by `Context`.

    def get(self, key: bytes) -> bytes | None:
        return self.state.get(key)

    def set(self, key: bytes, value: bytes) -> None:
        self.state[key] = value

    def delete(self, key: bytes) -> None:
        self.state.pop(key, None)

    def scan(self, prefix: bytes, start_after: bytes | None, limit: int) -> list[tuple[bytes, bytes]]:
        keys = sorted(k for k in self.state if k.startswith(prefix) and (start_after is None or k > start_after))
        return [(k, self.state[k]) for k in keys[: min(limit, 1000)]]

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[Header],
        timestamp_ms: int | None,
    ) -> None:
        self.outputs.append(Output(topic, key, value, list(headers), timestamp_ms))

    def log(self, level: Level, message: str) -> None:
        self.logs.append((level, message))

    def config(self, key: str) -> str | None:
        return self._config.get(key)

    def schedule(self, key: bytes, at_ms: int) -> None:
        self._timers[key] = at_ms

    def cancel(self, key: bytes) -> None:
        self._timers.pop(key, None)

    def _transaction(self, handler: Callable[[Any, Context], None], subject: Any, ctx: Context) -> None:
        state, timers, sent = dict(self.state), dict(self._timers), len(self.outputs)
        try:
            handler(subject, ctx)
        except BaseException:
            self.state, self._timers = state, timers
            del self.outputs[sent:]
            raise
