// The event a handler receives, and the timer a timer handler receives.

package streamfn

import (
	"encoding/json"
	"strconv"
)

// Header is a record header.
type Header struct {
	// Key is the header name.
	Key string
	// Value is the header value.
	Value []byte
}

// Event is one record of an input topic. Its byte slices are its own: a handler may keep
// them after it returns.
type Event struct {
	// Topic is the input topic the record came from.
	Topic string
	// Partition is the record's partition; the state a handler sees belongs to it.
	Partition uint32
	// Offset is the record's offset within its topic partition.
	Offset uint64
	// TimestampMs is the producer's timestamp, in milliseconds since the Unix epoch.
	TimestampMs int64
	// StreamTimeMs is the partition's stream time with this event counted: the largest
	// timestamp seen on it so far. Compare a window's end with it to decide, the same
	// way on every replay, whether the event is late.
	StreamTimeMs int64
	// Key is the record key; nil when the record has none.
	Key []byte
	// Value is the record value; nil for a tombstone.
	Value []byte
	// Headers are the record headers, in the order the producer sent them.
	Headers []Header
}

// KeyText is the key as text ("" when there is no key).
func (e *Event) KeyText() string { return string(e.Key) }

// ValueText is the value as text ("" for a tombstone).
func (e *Event) ValueText() string { return string(e.Value) }

// JSON parses the value as JSON into v, as json.Unmarshal does. A missing or malformed
// value returns a [Reject] error, so that returning it sends the event to the dead-letter
// topic with the parse error as the reason.
func (e *Event) JSON(v any) error {
	if e.Value == nil {
		return Reject("record has no value")
	}
	if err := json.Unmarshal(e.Value, v); err != nil {
		return Rejectf("value is not the expected JSON: %v", err)
	}
	return nil
}

// Header is the value of the first header named name, and whether there is one.
func (e *Event) Header(name string) ([]byte, bool) {
	for _, h := range e.Headers {
		if h.Key == name {
			return h.Value, true
		}
	}
	return nil, false
}

// SchemaID is the id of the registry schema that wrote the value, for an input the host
// decoded (deployed with --input-format TOPIC=avro|protobuf|json-schema), and whether
// it was.
func (e *Event) SchemaID() (uint32, bool) {
	raw, ok := e.Header("streamfn.schema.id")
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseUint(string(raw), 10, 32)
	return uint32(id), err == nil
}

// SchemaSubject is the registry subject of the schema that wrote the value, and whether
// the host decoded it.
func (e *Event) SchemaSubject() (string, bool) {
	raw, ok := e.Header("streamfn.schema.subject")
	return string(raw), ok
}

// Timer is a stream-time timer that came due.
type Timer struct {
	// Key is the key it was scheduled under.
	Key string
	// AtMs is the stream time it was scheduled for, in milliseconds.
	AtMs int64
}
