"""Contract 0.2.0's buffers: the events of a batch, read from the one buffer the host hands
over, and the effects of a call, written into one buffer for `effects.apply`. The format
is the one the package documentation of wit/0.2.0/function.wit gives. Plain Python, so
it is tested natively."""

import struct
from collections.abc import Iterator

from .event import Event, Header

_U32 = struct.Struct("<I")
# An event's fixed fields and the length of its key: topic index, offset, timestamp,
# stream time.
_EVENT_HEAD = struct.Struct("<IQqqI")
_TAG_LEN = struct.Struct("<BI")
_I64 = struct.Struct("<q")
_TIMESTAMP = struct.Struct("<Bq")
_NONE = 0xFFFFFFFF
_NO_TIMESTAMP = b"\x00"

_SET, _DELETE, _SEND, _SCHEDULE, _CANCEL = range(5)


class MalformedBatch(ValueError):
    """A batch buffer that does not follow the format: a host bug, never a user's."""


def events(batch: bytes) -> Iterator[Event]:
    """The events of `batch`, decoded one at a time as the handler reaches them."""
    view = memoryview(batch)
    try:
        (partition,) = _U32.unpack_from(view, 0)
        at = 4
        (count,) = _U32.unpack_from(view, at)
        at += 4
        topics = []
        for _ in range(count):
            (length,) = _U32.unpack_from(view, at)
            at += 4
            topics.append(str(view[at : at + length], "utf-8"))
            at += length
        (count,) = _U32.unpack_from(view, at)
        at += 4
        for _ in range(count):
            topic, offset, timestamp, stream_time, length = _EVENT_HEAD.unpack_from(view, at)
            at += _EVENT_HEAD.size
            if length == _NONE:
                key = None
            else:
                key = bytes(view[at : at + length])
                at += length
            (length,) = _U32.unpack_from(view, at)
            at += 4
            if length == _NONE:
                value = None
            else:
                value = bytes(view[at : at + length])
                at += length
            (headers,) = _U32.unpack_from(view, at)
            at += 4
            pairs = []
            for _ in range(headers):
                (length,) = _U32.unpack_from(view, at)
                at += 4
                name = str(view[at : at + length], "utf-8")
                at += length
                (length,) = _U32.unpack_from(view, at)
                at += 4
                pairs.append(Header(name, bytes(view[at : at + length])))
                at += length
            yield Event(topics[topic], partition, offset, timestamp, stream_time, key, value, pairs)
    except (struct.error, IndexError, UnicodeDecodeError) as err:
        raise MalformedBatch(f"the host's batch does not decode: {err}") from None


class Effects:
    """The effects of a call, encoded in order into one growing buffer."""

    __slots__ = ("buffer",)

    def __init__(self) -> None:
        self.buffer = bytearray()

    def __len__(self) -> int:
        return len(self.buffer)

    def clear(self) -> None:
        """Forgets what was written (after it was applied, or when a call starts)."""
        self.buffer.clear()

    def set(self, key: bytes, value: bytes) -> None:
        buffer = self.buffer
        buffer += _TAG_LEN.pack(_SET, len(key))
        buffer += key
        buffer += _U32.pack(len(value))
        buffer += value

    def delete(self, key: bytes) -> None:
        self.buffer += _TAG_LEN.pack(_DELETE, len(key))
        self.buffer += key

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[Header],
        timestamp_ms: int | None,
    ) -> None:
        buffer = self.buffer
        name = topic.encode()
        buffer += _TAG_LEN.pack(_SEND, len(name))
        buffer += name
        for field in (key, value):
            if field is None:
                buffer += _U32.pack(_NONE)
            else:
                buffer += _U32.pack(len(field))
                buffer += field
        buffer += _U32.pack(len(headers))
        for header in headers:
            name = header.key.encode()
            buffer += _U32.pack(len(name))
            buffer += name
            buffer += _U32.pack(len(header.value))
            buffer += header.value
        if timestamp_ms is None:
            buffer += _NO_TIMESTAMP
        else:
            buffer += _TIMESTAMP.pack(1, timestamp_ms)

    def schedule(self, key: bytes, at_ms: int) -> None:
        buffer = self.buffer
        buffer += _TAG_LEN.pack(_SCHEDULE, len(key))
        buffer += key
        buffer += _I64.pack(at_ms)

    def cancel(self, key: bytes) -> None:
        self.buffer += _TAG_LEN.pack(_CANCEL, len(key))
        self.buffer += key
