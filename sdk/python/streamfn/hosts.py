"""The Streamfn host as the component reaches it, one `Host` per contract version: each is
given the modules componentize-py generates and imports nothing generated itself, so
`streamfn.component` picks one by the bindings it was built with, and unit tests drive
both natively with stand-ins.
"""

from typing import Any

from .context import Level
from .event import Header
from .wire import Effects

# Held effects are applied once they reach this size, so a call that writes a lot does
# not keep it all in guest memory.
_HELD_EFFECTS = 1 << 20


class _Config:
    """The deployment's configuration, fetched once: an instance serves one deployment
    version, whose configuration never changes, so it crosses into the host once rather
    than on every event. Not at import: imports run while the component is built, where
    there is no host to ask."""

    __slots__ = ("_all", "_values")

    def __init__(self, all_values: Any) -> None:
        self._all = all_values
        self._values: dict[str, str] | None = None

    def get(self, key: str) -> str | None:
        if self._values is None:
            self._values = dict(self._all())
        return self._values.get(key)


class ImportHost:
    """Contract 0.1.0: one host call per read, write, record and timer."""

    def __init__(self, state: Any, emit: Any, log: Any, timers: Any, config: Any, types: Any) -> None:
        self.get = state.get
        self.set = state.set
        self.delete = state.delete
        self.schedule = timers.schedule
        self.cancel = timers.cancel
        self._scan = state.scan
        self._send = emit.send
        self._output = emit.Output
        self._header = types.Header
        self._write = log.write
        self._levels = (log.Level.DEBUG, log.Level.INFO, log.Level.WARN, log.Level.ERROR)
        self.config = _Config(config.all).get

    def begin(self) -> None:
        """Nothing is held between host calls."""

    def finish(self) -> None:
        """Nothing is held between host calls."""

    def scan(self, prefix: bytes, start_after: bytes | None, limit: int) -> list[tuple[bytes, bytes]]:
        return [(e.key, e.value) for e in self._scan(prefix, start_after, limit)]

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[Header],
        timestamp_ms: int | None,
    ) -> None:
        wit_headers = [self._header(h.key, h.value) for h in headers] if headers else []
        self._send(self._output(topic, key, value, wit_headers, timestamp_ms))

    def log(self, level: Level, message: str) -> None:
        self._write(self._levels[level], message)


class BatchHost:
    """Contract 0.2.0: a call's writes, records and timers are held in one buffer and
    handed over in one `effects.apply`, and its reads are served from a cache of what the
    call read and wrote, so each key crosses at most once per call."""

    def __init__(self, state: Any, effects: Any, log: Any, config: Any) -> None:
        self._read = state.get
        self._scan = state.scan
        self._apply = effects.apply
        self._held = Effects()
        self._cache: dict[bytes, bytes | None] = {}
        self._write = log.write
        self._levels = (log.Level.DEBUG, log.Level.INFO, log.Level.WARN, log.Level.ERROR)
        self.config = _Config(config.all).get

    def begin(self) -> None:
        """Starts a call: what an earlier call read or held belongs to it alone."""
        self._cache.clear()
        self._held.clear()

    def finish(self) -> None:
        """Ends a call that returns: hands the host what it holds."""
        self._flush()

    def _flush(self) -> None:
        if self._held:
            self._apply(bytes(self._held.buffer))
            self._held.clear()

    def _hold(self) -> None:
        if len(self._held) >= _HELD_EFFECTS:
            self._flush()

    def get(self, key: bytes) -> bytes | None:
        cache = self._cache
        if key in cache:
            return cache[key]
        value = self._read(key)
        cache[key] = value
        return value

    def set(self, key: bytes, value: bytes) -> None:
        self._held.set(key, value)
        self._cache[key] = value
        self._hold()

    def delete(self, key: bytes) -> None:
        self._held.delete(key)
        self._cache[key] = None
        self._hold()

    def scan(self, prefix: bytes, start_after: bytes | None, limit: int) -> list[tuple[bytes, bytes]]:
        # The host merges what it was handed with what is stored.
        self._flush()
        return [(e.key, e.value) for e in self._scan(prefix, start_after, limit)]

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[Header],
        timestamp_ms: int | None,
    ) -> None:
        self._held.send(topic, key, value, headers, timestamp_ms)
        self._hold()

    def schedule(self, key: bytes, at_ms: int) -> None:
        self._held.schedule(key, at_ms)
        self._hold()

    def cancel(self, key: bytes) -> None:
        self._held.cancel(key)
        self._hold()

    def log(self, level: Level, message: str) -> None:
        self._write(self._levels[level], message)
