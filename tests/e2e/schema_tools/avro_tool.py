"""Avro in the schema registry's framing, written and read by fastavro, for the schema tests.

    avro_tool.py encode SCHEMA_FILE SCHEMA_ID   JSON lines on stdin -> base64 framed values
    avro_tool.py decode SCHEMA_FILE             base64 framed values -> schema id, JSON

In the JSON, {"$decimal": "12.30"} is a decimal and {"$bytes": "<base64>"} bytes, since
JSON has neither; timestamps are milliseconds.
"""

import base64
import datetime
import decimal
import io
import json
import struct
import sys

import fastavro


def to_avro(value):
    if isinstance(value, dict):
        if set(value) == {"$decimal"}:
            return decimal.Decimal(value["$decimal"])
        if set(value) == {"$bytes"}:
            return base64.b64decode(value["$bytes"])
        return {k: to_avro(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_avro(v) for v in value]
    return value


EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def to_json(value):
    if isinstance(value, datetime.datetime):
        # timestamp-millis, as the number it was written as.
        return (value - EPOCH) // datetime.timedelta(milliseconds=1)
    if isinstance(value, decimal.Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    return value


def main():
    command, schema_file = sys.argv[1], sys.argv[2]
    with open(schema_file) as f:
        schema = fastavro.parse_schema(json.load(f))
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        if command == "encode":
            out = io.BytesIO()
            out.write(struct.pack(">bI", 0, int(sys.argv[3])))
            fastavro.schemaless_writer(out, schema, to_avro(json.loads(line)))
            print(base64.b64encode(out.getvalue()).decode())
        elif command == "decode":
            framed = base64.b64decode(line)
            magic, schema_id = struct.unpack(">bI", framed[:5])
            if magic != 0:
                sys.exit(f"not a framed value: magic byte {magic}")
            rest = io.BytesIO(framed[5:])
            datum = fastavro.schemaless_reader(rest, schema)
            if rest.read():
                sys.exit("bytes left after the datum")
            print(json.dumps({"schema_id": schema_id, "value": to_json(datum)}))
        else:
            sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
