// Contract 0.2.0's buffers: the events of a batch, read from the one buffer the host hands
// over, and the effects of a call, written into one buffer for effects.apply, in the
// format the package documentation of wit/0.2.0/function.wit gives. Plain Go, so it is
// tested natively.

package streamfn

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// noneLength is the length that marks an absent key or value.
const noneLength = 0xffffffff

// Effect tags.
const (
	effectSet byte = iota
	effectDelete
	effectSend
	effectSchedule
	effectCancel
)

// errShort is a batch that ends inside a field.
var errShort = errors.New("the buffer ends inside a field")

// batchReader reads the fields of a batch buffer in order.
type batchReader struct {
	buf []byte
	at  int
	err error
}

func (r *batchReader) u32() uint32 {
	if r.err != nil || len(r.buf)-r.at < 4 {
		r.err = errShort
		return 0
	}
	n := binary.LittleEndian.Uint32(r.buf[r.at:])
	r.at += 4
	return n
}

func (r *batchReader) u64() uint64 {
	if r.err != nil || len(r.buf)-r.at < 8 {
		r.err = errShort
		return 0
	}
	n := binary.LittleEndian.Uint64(r.buf[r.at:])
	r.at += 8
	return n
}

// take is the next n bytes, capped so that an append to them cannot overwrite what
// follows.
func (r *batchReader) take(n uint32) []byte {
	if r.err != nil || uint64(len(r.buf)-r.at) < uint64(n) {
		r.err = errShort
		return nil
	}
	start := r.at
	r.at += int(n)
	return r.buf[start:r.at:r.at]
}

// optional is a `bytes?`: nil for none, non-nil (even when empty) for some.
func (r *batchReader) optional() []byte {
	n := r.u32()
	if n == noneLength {
		return nil
	}
	return r.take(n)
}

// count is a number of entries to come, each of which takes at least one byte.
func (r *batchReader) count() int {
	n := r.u32()
	if r.err == nil && uint64(n) > uint64(len(r.buf)-r.at) {
		r.err = fmt.Errorf("a count of %d is more than the buffer holds", n)
		return 0
	}
	return int(n)
}

// decodeBatch is the events of batch, which they share: their keys, values and header
// values are slices of it (taken empty, never nil, when present and empty), so batch
// must be the function's own copy.
func decodeBatch(batch []byte) ([]Event, error) {
	r := &batchReader{buf: batch}
	partition := r.u32()
	topics := make([]string, r.count())
	for i := range topics {
		topics[i] = string(r.take(r.u32()))
	}
	events := make([]Event, r.count())
	for i := range events {
		event := &events[i]
		topic := int(r.u32())
		event.Partition = partition
		event.Offset = r.u64()
		event.TimestampMs = int64(r.u64())
		event.StreamTimeMs = int64(r.u64())
		event.Key = r.optional()
		event.Value = r.optional()
		if headers := r.count(); headers > 0 {
			event.Headers = make([]Header, headers)
			for h := range event.Headers {
				event.Headers[h].Key = string(r.take(r.u32()))
				event.Headers[h].Value = r.take(r.u32())
			}
		}
		if r.err == nil && topic >= len(topics) {
			r.err = fmt.Errorf("topic %d of %d", topic, len(topics))
		}
		if r.err != nil {
			return nil, fmt.Errorf("the host's batch does not decode at event %d: %w", i, r.err)
		}
		event.Topic = topics[topic]
	}
	if r.err != nil {
		return nil, fmt.Errorf("the host's batch does not decode: %w", r.err)
	}
	return events, nil
}

// effectWriter appends effects to one buffer.
type effectWriter struct {
	buf []byte
}

func (w *effectWriter) bytes(b []byte) {
	w.buf = binary.LittleEndian.AppendUint32(w.buf, uint32(len(b)))
	w.buf = append(w.buf, b...)
}

func (w *effectWriter) text(s string) {
	w.buf = binary.LittleEndian.AppendUint32(w.buf, uint32(len(s)))
	w.buf = append(w.buf, s...)
}

func (w *effectWriter) optional(b []byte) {
	if b == nil {
		w.buf = binary.LittleEndian.AppendUint32(w.buf, noneLength)
		return
	}
	w.bytes(b)
}

func (w *effectWriter) set(key string, value []byte) {
	w.buf = append(w.buf, effectSet)
	w.text(key)
	w.bytes(value)
}

func (w *effectWriter) delete(key string) {
	w.buf = append(w.buf, effectDelete)
	w.text(key)
}

func (w *effectWriter) send(output *Output) {
	w.buf = append(w.buf, effectSend)
	w.text(output.Topic)
	w.optional(output.Key)
	w.optional(output.Value)
	w.buf = binary.LittleEndian.AppendUint32(w.buf, uint32(len(output.Headers)))
	for _, h := range output.Headers {
		w.text(h.Key)
		w.bytes(h.Value)
	}
	w.buf = append(w.buf, 1)
	w.buf = binary.LittleEndian.AppendUint64(w.buf, uint64(output.TimestampMs))
}

func (w *effectWriter) schedule(key string, atMs int64) {
	w.buf = append(w.buf, effectSchedule)
	w.text(key)
	w.buf = binary.LittleEndian.AppendUint64(w.buf, uint64(atMs))
}

func (w *effectWriter) cancel(key string) {
	w.buf = append(w.buf, effectCancel)
	w.text(key)
}
