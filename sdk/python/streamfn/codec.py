"""How the SDK turns what a function hands it into the contract's bytes and back: text as
UTF-8, documents as compact JSON."""

import json
from typing import Any

#: What the SDK accepts wherever the contract wants bytes; text is encoded as UTF-8.
Bytes = bytes | bytearray | memoryview | str

# One encoder, made once: json.dumps with options builds a new one on every call.
# Compact separators and raw UTF-8 write what serde_json writes for the same document,
# so Python and Rust functions read each other's state and records; only floats below
# 1e-4 or from 1e16 up differ in form (Python writes 1e-05 where Rust writes 0.00001),
# not in value. NaN and infinity are not JSON: writing one is a bug that should trap
# rather than send a record no consumer can parse.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# Parses UTF-8 only, as RFC 8259 and serde_json do (json.loads would also guess UTF-16
# and UTF-32 on every call), and refuses NaN and Infinity, which are not JSON either.
# Either error is a ValueError, like a syntax error.
_DECODER = json.JSONDecoder(parse_constant=_no_constant)


def to_bytes(value: Bytes) -> bytes:
    """`value` as `bytes`: text as UTF-8, bytes as they are."""
    # The component's bindings trap on anything but exact bytes for list<u8>, so every
    # bytes-like value is copied into bytes here, where a wrong type is a clear TypeError.
    if type(value) is bytes:
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"expected str or bytes, not {type(value).__name__}")


def _c_encoder() -> Any:
    """The C encoder that `_ENCODER.encode` builds anew on every call, built once with the
    same options, or None where the interpreter has no C accelerator or builds it another
    way (it is the standard library's own, not public). Without the circular check: a
    value that holds itself fails with RecursionError rather than ValueError."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return None
    try:
        encode = make(None, _ENCODER.default, json.encoder.encode_basestring, None, ":", ",", False, False, False)
        sample = {"é": [1, 2.5, None, True, "\n"]}
        if "".join(encode(sample, 0)) != _ENCODER.encode(sample):
            return None
    except (TypeError, ValueError):
        return None
    return encode


_C_ENCODE = _c_encoder()

# The C scanner `_DECODER.decode` runs after matching whitespace on both sides in Python.
_SCAN = _DECODER.scan_once


def to_json(value: Any) -> bytes:
    """`value` as compact UTF-8 JSON, the form `set_json` and `emit_json` write."""
    # In the component CPython is interpreted wasm, where the Python-level steps of
    # `json.dumps` cost twice what encoding does: whole numbers (counts) and everything
    # else go straight to the C code.
    if type(value) is int:
        return str(value).encode()
    if _C_ENCODE is None:
        return _ENCODER.encode(value).encode()
    return "".join(_C_ENCODE(value, 0)).encode()


def from_json(raw: bytes) -> Any:
    """`raw` (UTF-8) parsed as JSON."""
    text = raw.decode()
    # A document without whitespace around it, as Streamfn's SDKs write them, is scanned
    # directly; anything else takes the decoder's whole path and its errors.
    try:
        value, end = _SCAN(text, 0)
    except StopIteration:
        return _DECODER.decode(text)
    if end != len(text):
        return _DECODER.decode(text)
    return value
