"""Streamfn's Python SDK: a function is a plain Python module with one handler per event.

    # function.py
    from streamfn import Context, Event, Reject

    def handle(event: Event, ctx: Context) -> None:
        payment = event.json()                       # malformed JSON rejects the event
        total = ctx.get_json(payment["account"], 0) + payment["amount"]
        ctx.set_json(payment["account"], total)      # state of this partition
        if total > 10_000:
            ctx.emit_json("large-spenders", payment["account"], total)

Returning normally means the event is handled; `raise Reject(reason)` dead-letters it
now, `raise Retry(reason)` redelivers it after a backoff; any other exception is a trap.
An optional `on_timer(timer, ctx)` in the same module receives stream-time timers.

`python3 -m streamfn.build` turns the project into a component (through
`streamfn.component`, the componentize-py entry point); `streamfn.testing.TestHost`
runs the handler in a native unit test. This package is not the host: it never sees
offsets being committed, batches being split or records being dead-lettered.
"""

from .context import Context, Host, Level
from .event import Event, Header, Timer
from .failure import Failure, Reject, Retry

__all__ = ["Context", "Event", "Failure", "Header", "Host", "Level", "Reject", "Retry", "Timer"]
