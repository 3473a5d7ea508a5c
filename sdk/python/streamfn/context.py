"""The handler's view of the host: state, output records, configuration, logs and timers.

`Context` is the same object inside the component and in a native unit test; only the
`Host` behind it differs (`streamfn.component` reaches the real host through the
component's imports, `streamfn.testing.TestHost` keeps everything in memory).
"""

import enum
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, TypeVar

from .codec import Bytes, from_json, to_bytes, to_json
from .event import Header
from .failure import Reject

#: Headers as `(name, value)` pairs or a mapping of names to values.
Headers = Iterable[tuple[str, Bytes]] | Mapping[str, Bytes]

T = TypeVar("T")

# The host pages scans itself (at most 1000 entries per call); smaller pages keep the
# guest's memory flat when a caller only wants the first few entries.
_SCAN_PAGE = 256


class Level(enum.IntEnum):
    """Severity of a log line."""

    DEBUG = 0
    INFO = 1
    WARN = 2
    ERROR = 3


class Host(Protocol):
    """What the SDK needs from whatever runs the function: the Streamfn host inside the
    component, or `streamfn.testing.TestHost` in a native unit test."""

    def get(self, key: bytes) -> bytes | None:
        """The state value under `key`."""

    def set(self, key: bytes, value: bytes) -> None:
        """Stores `value` under `key`."""

    def delete(self, key: bytes) -> None:
        """Removes `key`."""

    def scan(self, prefix: bytes, start_after: bytes | None, limit: int) -> list[tuple[bytes, bytes]]:
        """Up to `limit` entries with keys starting with `prefix`, after `start_after`."""

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[Header],
        timestamp_ms: int | None,
    ) -> None:
        """Sends a record to an output topic."""

    def log(self, level: Level, message: str) -> None:
        """Writes a log line."""

    def config(self, key: str) -> str | None:
        """A deploy-time configuration value."""

    def schedule(self, key: bytes, at_ms: int) -> None:
        """Schedules a stream-time timer under `key`."""

    def cancel(self, key: bytes) -> None:
        """Cancels the timer under `key`."""


class Context:
    """Handed to every handler call: the partition's state, the output topics, the
    deploy-time configuration, logs and timers.

    Keys and values may be `bytes` or `str` (stored as UTF-8). Records sent through a
    context carry the timestamp of the event or timer being handled, as Kafka Streams
    does, so a replay writes the same records.
    """

    __slots__ = ("_host", "_now_ms")

    def __init__(self, host: Host, timestamp_ms: int | None = None) -> None:
        self._host = host
        self._now_ms = timestamp_ms

    # State.

    def get(self, key: Bytes) -> bytes | None:
        """The raw state value under `key`, or `None`."""
        return self._host.get(to_bytes(key))

    def get_json(self, key: Bytes, default: Any = None) -> Any:
        """The state value under `key` parsed as JSON, or `default` when there is none.
        A value that does not parse rejects the event being handled."""
        raw = self._host.get(to_bytes(key))
        if raw is None:
            return default
        try:
            return from_json(raw)
        except (ValueError, RecursionError) as err:
            raise Reject(f"state key {_show(key)} does not hold the expected JSON: {err}") from None

    def set(self, key: Bytes, value: Bytes) -> None:
        """Stores `value` under `key`."""
        self._host.set(to_bytes(key), to_bytes(value))

    def set_json(self, key: Bytes, value: Any) -> None:
        """Stores `value` as compact JSON under `key`."""
        self._host.set(to_bytes(key), to_json(value))

    def delete(self, key: Bytes) -> None:
        """Removes `key` from state; removing a missing key does nothing."""
        self._host.delete(to_bytes(key))

    def scan(self, prefix: Bytes, max: int) -> list[tuple[bytes, bytes]]:  # noqa: A002 (the contract's word)
        """Up to `max` state entries whose keys start with `prefix`, in key order, as
        `(key, value)` pairs; fetched from the host a page at a time."""
        prefix = to_bytes(prefix)
        entries: list[tuple[bytes, bytes]] = []
        while len(entries) < max:
            want = min(max - len(entries), _SCAN_PAGE)
            after = entries[-1][0] if entries else None
            page = self._host.scan(prefix, after, want)
            entries.extend(page)
            if len(page) < want:
                break
        return entries

    # Output records.

    def emit(
        self,
        topic: str,
        key: Bytes | None,
        value: Bytes | None,
        headers: Headers | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        """Sends a record to `topic`, one of the outputs declared at deploy. The key picks
        the partition; the timestamp is the handled event's unless given."""
        self._host.send(
            topic,
            None if key is None else to_bytes(key),
            None if value is None else to_bytes(value),
            _headers(headers) if headers else [],
            self._now_ms if timestamp_ms is None else timestamp_ms,
        )

    def emit_json(
        self,
        topic: str,
        key: Bytes | None,
        value: Any,
        headers: Headers | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        """Sends `value` serialised as compact JSON to `topic`."""
        self.emit(topic, key, to_json(value), headers, timestamp_ms)

    # Configuration.

    def config(self, key: str, default: str | None = None) -> str | None:
        """The deploy-time configuration value under `key` (`fnctl deploy --config
        KEY=VALUE`), or `default`. Read from the host once per instance."""
        value = self._host.config(key)
        return default if value is None else value

    def config_or(self, key: str, default: T, parse: Callable[[str], T] | None = None) -> T:
        """The configuration value under `key` converted by `parse` (by default the type
        of `default`: `int`, `float`, `str`, or `bool` from `true`/`false`), or `default`
        when it is absent. A value that does not convert rejects the event, naming it."""
        raw = self._host.config(key)
        if raw is None:
            return default
        convert = parse or (_parse_bool if isinstance(default, bool) else type(default))
        try:
            return convert(raw)  # type: ignore[call-arg,return-value]
        except (ValueError, TypeError, KeyError):
            raise Reject(f"config {key}={json.dumps(raw, ensure_ascii=False)} does not parse") from None

    # Logs.

    def log(self, level: Level | str, message: str) -> None:
        """Writes a log line at `level` (a `Level` or `"debug"`, `"info"`, `"warn"`,
        `"error"`); `fnctl logs NAME` shows it with the event's coordinates."""
        if isinstance(level, str):
            level = Level[level.upper()]
        self._host.log(Level(level), str(message))

    def debug(self, message: str) -> None:
        """Writes a debug log line."""
        self._host.log(Level.DEBUG, str(message))

    def info(self, message: str) -> None:
        """Writes an info log line."""
        self._host.log(Level.INFO, str(message))

    def warn(self, message: str) -> None:
        """Writes a warning log line."""
        self._host.log(Level.WARN, str(message))

    def error(self, message: str) -> None:
        """Writes an error log line."""
        self._host.log(Level.ERROR, str(message))

    # Timers.

    def schedule_timer(self, key: Bytes, at_ms: int) -> None:
        """Schedules the timer `key` for stream time `at_ms`, replacing any timer of that
        key. The module's `on_timer(timer, ctx)` runs once stream time reaches it."""
        if type(at_ms) is not int:
            raise TypeError(f"at_ms must be an int of milliseconds, not {type(at_ms).__name__}")
        self._host.schedule(to_bytes(key), at_ms)

    def cancel_timer(self, key: Bytes) -> None:
        """Cancels the timer `key`, if there is one."""
        self._host.cancel(to_bytes(key))


def _headers(headers: Headers) -> list[Header]:
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return [Header(str(name), to_bytes(value)) for name, value in pairs]


def _parse_bool(raw: str) -> bool:
    return {"true": True, "false": False}[raw.strip().lower()]


def _show(key: Bytes) -> str:
    text = key if isinstance(key, str) else bytes(key).decode("utf-8", "replace")
    return json.dumps(text, ensure_ascii=False)
