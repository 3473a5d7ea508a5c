"""Protobuf in the schema registry's framing, written and read by Google's protobuf runtime
(the .proto compiled by grpcio-tools' protoc), for the schema tests.

    proto_tool.py encode PROTO_FILE MESSAGE SCHEMA_ID   JSON lines on stdin -> base64 framed values
    proto_tool.py decode PROTO_FILE                     base64 framed values -> schema id, message, JSON

A framed value is magic byte 0, the schema id in four bytes, the message indexes (zigzag
varints: their count, then each; [0] as the single byte 0) and the message. The JSON is
protobuf's own mapping, with the .proto's field names and every field present.
"""

import base64
import json
import os
import struct
import sys
import tempfile

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from grpc_tools import protoc
import grpc_tools


def compile_proto(path):
    """The descriptor pool of the .proto at `path`, with the well-known types it imports."""
    includes = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    with tempfile.TemporaryDirectory() as out:
        target = os.path.join(out, "set.pb")
        args = ["protoc", "-I", os.path.dirname(os.path.abspath(path)), "-I", includes,
                "--include_imports", f"--descriptor_set_out={target}", os.path.basename(path)]
        if protoc.main(args) != 0:
            sys.exit(f"protoc could not compile {path}")
        with open(target, "rb") as f:
            files = descriptor_pb2.FileDescriptorSet.FromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for proto in files.file:
        pool.Add(proto)
    return pool, files.file[-1].name


def zigzag(n, out):
    n = (n << 1) ^ (n >> 63)
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def read_zigzag(data, at):
    shift = raw = 0
    while True:
        byte = data[at]
        at += 1
        raw |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return (raw >> 1) ^ -(raw & 1), at


def indexes_of(descriptor):
    """The path of `descriptor` from its file's top-level messages."""
    path = []
    while descriptor.containing_type is not None:
        parent = descriptor.containing_type
        path.append(list(parent.nested_types).index(descriptor))
        descriptor = parent
    path.append(list(descriptor.file.message_types_by_name.values()).index(descriptor))
    return list(reversed(path))


def message_at(pool, file_name, indexes):
    descriptor = list(pool.FindFileByName(file_name).message_types_by_name.values())[indexes[0]]
    for index in indexes[1:]:
        descriptor = descriptor.nested_types[index]
    return descriptor


def encode(path, name, schema_id):
    pool, _ = compile_proto(path)
    descriptor = pool.FindMessageTypeByName(name)
    cls = message_factory.GetMessageClass(descriptor)
    for line in sys.stdin:
        if not line.strip():
            continue
        message = json_format.ParseDict(json.loads(line), cls())
        indexes = indexes_of(descriptor)
        head = bytearray(b"\0" + struct.pack(">I", schema_id))
        if indexes == [0]:
            head.append(0)
        else:
            zigzag(len(indexes), head)
            for index in indexes:
                zigzag(index, head)
        print(base64.b64encode(bytes(head) + message.SerializeToString()).decode())


def decode(path):
    pool, file_name = compile_proto(path)
    for line in sys.stdin:
        if not line.strip():
            continue
        data = base64.b64decode(line)
        if data[0] != 0:
            sys.exit("not framed")
        (schema_id,) = struct.unpack(">I", data[1:5])
        count, at = read_zigzag(data, 5)
        indexes = [0] if count == 0 else []
        for _ in range(count):
            index, at = read_zigzag(data, at)
            indexes.append(index)
        descriptor = message_at(pool, file_name, indexes)
        message = message_factory.GetMessageClass(descriptor).FromString(data[at:])
        value = json_format.MessageToDict(message, preserving_proto_field_name=True,
                                          always_print_fields_with_no_presence=True)
        print(json.dumps({"schema_id": schema_id, "message": descriptor.full_name, "value": value}))


if __name__ == "__main__":
    if sys.argv[1] == "encode":
        encode(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif sys.argv[1] == "decode":
        decode(sys.argv[2])
    else:
        sys.exit(__doc__)
