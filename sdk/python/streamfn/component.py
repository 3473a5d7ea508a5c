"""The componentize-py entry point: turns the user's module `function` into a component of
the `streamfn:function` world.

    componentize-py -d wit -w function componentize -p . streamfn.component -o NAME.wasm

(`python3 -m streamfn.build` runs that.) The project's module `function` defines
`handle(event, ctx)` and optionally `on_timer(timer, ctx)`. This module imports the
generated bindings, so it only loads inside the component; everything else in the
package is plain Python that unit tests import natively.
"""

import componentize_py_types
from wit_world import exports
from wit_world.imports import config, emit, log, state, timers, types

from .context import Context, Level
from .event import Event, Header, Timer
from .failure import Failure, Reject, Retry

try:
    import function as _function
except ModuleNotFoundError as err:
    if err.name != "function":
        raise
    raise ImportError(
        "streamfn: the project has no module `function`: write function.py with "
        "`def handle(event: Event, ctx: Context) -> None`"
    ) from None

_handle = getattr(_function, "handle", None)
if not callable(_handle):
    raise TypeError("streamfn: function.py must define `handle(event: Event, ctx: Context) -> None`")


def _no_timers(timer: Timer, ctx: Context) -> None:
    raise Reject(f"a timer fired ({timer.key!r} at {timer.at_ms} ms) but function.py defines no on_timer")


_on_timer = getattr(_function, "on_timer", None) or _no_timers

_LEVELS = (log.Level.DEBUG, log.Level.INFO, log.Level.WARN, log.Level.ERROR)
_OK = types.Outcome_Ok()


class _WasmHost:
    """The Streamfn host, reached through the component's imports."""

    __slots__ = ("_config",)

    def __init__(self) -> None:
        self._config: dict[str, str] | None = None

    get = staticmethod(state.get)
    set = staticmethod(state.set)
    delete = staticmethod(state.delete)
    schedule = staticmethod(timers.schedule)
    cancel = staticmethod(timers.cancel)

    @staticmethod
    def scan(prefix: bytes, start_after: bytes | None, limit: int) -> list[tuple[bytes, bytes]]:
        return [(e.key, e.value) for e in state.scan(prefix, start_after, limit)]

    @staticmethod
    def send(
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[Header],
        timestamp_ms: int | None,
    ) -> None:
        wit_headers = [types.Header(h.key, h.value) for h in headers] if headers else []
        emit.send(emit.Output(topic, key, value, wit_headers, timestamp_ms))

    @staticmethod
    def log(level: Level, message: str) -> None:
        log.write(_LEVELS[level], message)

    def config(self, key: str) -> str | None:
        # An instance serves one deployment version, whose configuration never changes,
        # so it crosses into the host once rather than on every event. Not at import:
        # imports run while the component is built, where there is no host to ask.
        if self._config is None:
            self._config = dict(config.all())
        return self._config.get(key)


_HOST = _WasmHost()


class Handler(exports.Handler):
    """The world's `handler` export: one call of `handle` per event of the batch."""

    def handle(self, events: list[types.Event]) -> list[types.Outcome]:
        outcomes: list[types.Outcome] = []
        for raw in events:
            headers = raw.headers
            event = Event(
                raw.topic,
                raw.partition,
                raw.offset,
                raw.timestamp_ms,
                raw.stream_time_ms,
                raw.key,
                raw.value,
                [Header(h.key, h.value) for h in headers] if headers else [],
            )
            # Only the SDK's own outcomes are caught: any other exception is a bug, and
            # escaping turns it into a trap whose traceback the host keeps as the reason.
            try:
                _handle(event, Context(_HOST, raw.timestamp_ms))
            except Reject as failure:
                outcomes.append(types.Outcome_Reject(failure.reason))
                continue
            except Retry as failure:
                outcomes.append(types.Outcome_Retry(failure.reason))
                continue
            outcomes.append(_OK)
        return outcomes

    def on_timers(self, timers: list[types.FiredTimer]) -> None:
        for raw in timers:
            timer = Timer(raw.key, raw.at_ms)
            try:
                _on_timer(timer, Context(_HOST, raw.at_ms))
            except Failure as failure:
                raise componentize_py_types.Err(f"{failure.kind}: {failure.reason}") from None
