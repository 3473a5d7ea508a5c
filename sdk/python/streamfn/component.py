"""The componentize-py entry point: turns the user's module `function` into a component of
the `streamfn:function` world, of the contract version whose WIT it is built with.

    componentize-py -d wit/0.2.0 -w function componentize -p . streamfn.component -o NAME.wasm

(`python3 -m streamfn.build` runs that.) The project's module `function` defines
`handle(event, ctx)` and optionally `on_timer(timer, ctx)`. This module imports the
generated bindings, so it only loads inside the component; everything else in the
package is plain Python that unit tests import natively.
"""

import componentize_py_types
from wit_world import exports
from wit_world.imports import config, log, state, types

from . import wire
from .context import Context
from .event import Event, Header, Timer
from .failure import Failure, Reject, Retry
from .hosts import BatchHost, ImportHost

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

try:
    # Only contract 0.2.0 has the effects import.
    from wit_world.imports import effects as _effects
except ImportError:
    _effects = None

if _effects is None:
    from wit_world.imports import emit, timers

    _HOST: ImportHost | BatchHost = ImportHost(state, emit, log, timers, config, types)
else:
    _HOST = BatchHost(state, _effects, log, config)


def _run(event: Event) -> Failure | None:
    """Calls the handler on `event`; the SDK's own outcomes are caught, any other exception
    is a bug, and escaping turns it into a trap whose traceback the host keeps as the
    reason."""
    try:
        _handle(event, Context(_HOST, event.timestamp_ms))
    except (Reject, Retry) as failure:
        return failure
    return None


def _on_timers(self: exports.Handler, fired: list[types.FiredTimer]) -> None:
    _HOST.begin()
    for raw in fired:
        timer = Timer(raw.key, raw.at_ms)
        try:
            _on_timer(timer, Context(_HOST, raw.at_ms))
        except Failure as failure:
            raise componentize_py_types.Err(f"{failure.kind}: {failure.reason}") from None
    _HOST.finish()


if _effects is None:
    _OK = types.Outcome_Ok()

    class Handler(exports.Handler):
        """The world's `handler` export: one call of `handle` per event of the batch, and
        one outcome per event."""

        def handle(self, events: list[types.Event]) -> list[types.Outcome]:
            outcomes: list[types.Outcome] = []
            for raw in events:
                headers = raw.headers
                failure = _run(Event(
                    raw.topic,
                    raw.partition,
                    raw.offset,
                    raw.timestamp_ms,
                    raw.stream_time_ms,
                    raw.key,
                    raw.value,
                    [Header(h.key, h.value) for h in headers] if headers else [],
                ))
                if failure is None:
                    outcomes.append(_OK)
                elif isinstance(failure, Retry):
                    outcomes.append(types.Outcome_Retry(failure.reason))
                else:
                    outcomes.append(types.Outcome_Reject(failure.reason))
            return outcomes

        on_timers = _on_timers

else:

    class Handler(exports.Handler):  # type: ignore[no-redef]
        """The world's `handler` export: one call of `handle` per event of the batch
        buffer, and the events that failed."""

        def handle(self, batch: bytes) -> list[types.FailedEvent]:
            _HOST.begin()
            failed: list[types.FailedEvent] = []
            for index, event in enumerate(wire.events(batch)):
                failure = _run(event)
                if failure is None:
                    continue
                kind = types.Failure_Retry if isinstance(failure, Retry) else types.Failure_Reject
                failed.append(types.FailedEvent(index, kind(failure.reason)))
            _HOST.finish()
            return failed

        on_timers = _on_timers
