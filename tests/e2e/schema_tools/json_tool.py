"""JSON Schema in the schema registry's framing, written and checked by Python's jsonschema,
for the schema tests.

    json_tool.py encode SCHEMA_ID              JSON lines on stdin -> base64 framed values
    json_tool.py decode SCHEMA_FILE            base64 framed values -> schema id, JSON, and
                                               whether the JSON fits the schema

A framed value is magic byte 0, the schema id in four bytes and the JSON text.
"""

import base64
import json
import struct
import sys

import jsonschema


def encode(schema_id):
    for line in sys.stdin:
        if line.strip():
            framed = b"\0" + struct.pack(">I", schema_id) + line.strip().encode()
            print(base64.b64encode(framed).decode())


def decode(path):
    with open(path) as f:
        schema = json.load(f)
    validator = jsonschema.validators.validator_for(schema)(schema)
    for line in sys.stdin:
        if not line.strip():
            continue
        data = base64.b64decode(line)
        if data[0] != 0:
            sys.exit("not framed")
        (schema_id,) = struct.unpack(">I", data[1:5])
        value = json.loads(data[5:])
        print(json.dumps({"schema_id": schema_id, "value": value, "fits": validator.is_valid(value)}))


if __name__ == "__main__":
    if sys.argv[1] == "encode":
        encode(int(sys.argv[2]))
    elif sys.argv[1] == "decode":
        decode(sys.argv[2])
    else:
        sys.exit(__doc__)
