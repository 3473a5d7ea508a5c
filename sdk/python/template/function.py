"""{{name}}: a Streamfn function. It counts the events of each key in state and emits
`{"key": ..., "count": ...}` to the topic named by config `to` (default `out`).

Build with `fnctl build`; test with `python3 -m unittest`.
"""

from streamfn import Context, Event


def handle(event: Event, ctx: Context) -> None:
    """Handles one event; raise `Reject(reason)` or `Retry(reason)` to fail it."""
    key = event.key_text() or "-"
    count = ctx.get_json(key, 0) + 1
    ctx.set_json(key, count)
    ctx.emit_json(ctx.config("to", "out"), key, {"key": key, "count": count})
