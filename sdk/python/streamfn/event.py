"""The event a handler receives, and the timer a timer handler receives."""

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .codec import from_json
from .failure import Reject


class Header(NamedTuple):
    """A record header: a name and opaque value bytes. Unpacks as `(key, value)`."""

    key: str
    value: bytes


@dataclass(slots=True)
class Event:
    """One record of an input topic, as the host delivered it."""

    #: The input topic it came from.
    topic: str
    #: The partition; the state a handler sees belongs to it.
    partition: int = 0
    #: Offset within the topic partition.
    offset: int = 0
    #: Producer timestamp, milliseconds since the Unix epoch.
    timestamp_ms: int = 0
    #: The partition's stream time with this event counted: the largest timestamp seen so
    #: far. Compare a window's end with it to decide, the same way on every replay, whether
    #: the event is late.
    stream_time_ms: int = 0
    #: Record key.
    key: bytes | None = None
    #: Record value; `None` for a tombstone.
    value: bytes | None = None
    #: Record headers in producer order.
    headers: list[Header] = field(default_factory=list)

    def key_text(self) -> str | None:
        """The key as text, or `None` when there is no key or it is not UTF-8."""
        return _text(self.key)

    def value_text(self) -> str | None:
        """The value as text, or `None` when there is no value or it is not UTF-8."""
        return _text(self.value)

    def json(self) -> Any:
        """The value parsed as JSON. A missing or malformed value raises `Reject`, which
        sends the event to the dead-letter topic with the parse error as the reason."""
        if self.value is None:
            raise Reject("record has no value")
        try:
            return from_json(self.value)
        except (ValueError, RecursionError) as err:
            raise Reject(f"value is not the expected JSON: {err}") from None

    def header(self, name: str) -> bytes | None:
        """The value of the first header named `name`, if any."""
        for header in self.headers:
            if header.key == name:
                return header.value
        return None

    def schema_id(self) -> int | None:
        """The id of the registry schema that wrote the value, for an input the host
        decoded (deployed with `--input-format TOPIC=avro|protobuf|json-schema`)."""
        raw = _text(self.header("streamfn.schema.id"))
        return int(raw) if raw is not None and raw.isdigit() else None

    def schema_subject(self) -> str | None:
        """The registry subject of the schema that wrote the value, if decoded."""
        return _text(self.header("streamfn.schema.subject"))


@dataclass(slots=True)
class Timer:
    """A stream-time timer that came due."""

    #: The key it was scheduled under.
    key: bytes
    #: The stream time it was scheduled for, in milliseconds.
    at_ms: int

    def key_text(self) -> str | None:
        """The key as text, or `None` when it is not UTF-8."""
        return _text(self.key)


def _text(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return None
