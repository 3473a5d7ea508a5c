// An in-memory host for native unit tests of a function, with the host's rules.

// Package streamfntest runs a function's handlers in ordinary Go tests, without wasm and
// without a Streamfn host, the way the host would: a failed event leaves no effects,
// stream time only moves forward, and due timers fire in order of time and key.
//
//	func TestCounts(t *testing.T) {
//		host := streamfntest.NewHost().WithConfig("to", "counts")
//		event := host.Event("in", "k1", "hello", 1000)
//		if err := host.Handle(Handle, event); err != nil {
//			t.Fatal(err)
//		}
//		// host.Outputs(), host.State("k1"), host.Timers(), host.Logs() ...
//	}
package streamfntest

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"sort"
	"strings"

	"streamfn.dev/streamfn"
)

// Log is a log line a handler wrote.
type Log struct {
	Level   streamfn.Level
	Message string
}

// Host keeps a partition's state, outputs, logs and timers in memory. It implements
// [streamfn.Host], so a test can also seed state with Set before handling events.
type Host struct {
	state        map[string][]byte
	config       map[string]string
	timers       map[string]int64
	outputs      []streamfn.Output
	logs         []Log
	streamTimeMs int64
	nextOffset   uint64
}

// NewHost is an empty host at stream time 0, with no configuration.
func NewHost() *Host {
	return &Host{
		state:  map[string][]byte{},
		config: map[string]string{},
		timers: map[string]int64{},
	}
}

// WithConfig adds a deploy-time configuration value and returns the host.
func (h *Host) WithConfig(key, value string) *Host {
	h.config[key] = value
	return h
}

// Event is the next event of the partition, with its offset and stream time filled in.
// Set its Key to nil for a record without a key, or add Headers, before handling it.
func (h *Host) Event(topic, key, value string, timestampMs int64) *streamfn.Event {
	h.streamTimeMs = max(h.streamTimeMs, timestampMs)
	offset := h.nextOffset
	h.nextOffset++
	return &streamfn.Event{
		Topic:        topic,
		Offset:       offset,
		TimestampMs:  timestampMs,
		StreamTimeMs: h.streamTimeMs,
		Key:          []byte(key),
		Value:        []byte(value),
	}
}

// Handle runs handle on event and returns its error. When it fails, the event's state
// writes, outputs and timer changes are undone, as the host does.
func (h *Host) Handle(handle streamfn.Handler, event *streamfn.Event) error {
	return h.transaction(func() error {
		return handle(event, streamfn.NewContext(h, event.TimestampMs))
	})
}

// Deliver builds an event, handles it, then fires the timers its stream time made due.
// A nil onTimer stands for a function that registered no timer handler.
func (h *Host) Deliver(handle streamfn.Handler, onTimer streamfn.TimerHandler, topic, key, value string, timestampMs int64) error {
	if err := h.Handle(handle, h.Event(topic, key, value, timestampMs)); err != nil {
		return err
	}
	return h.FireDueTimers(onTimer)
}

// FireDueTimers fires every timer at or before the current stream time, in order of time
// and key, and stops at the first that fails. A nil onTimer stands for a function that
// registered no timer handler.
func (h *Host) FireDueTimers(onTimer streamfn.TimerHandler) error {
	if onTimer == nil {
		onTimer = streamfn.NoTimers
	}
	for {
		due, ok := h.nextDue()
		if !ok {
			return nil
		}
		delete(h.timers, due.Key)
		err := h.transaction(func() error {
			return onTimer(due, streamfn.NewContext(h, due.AtMs))
		})
		if err != nil {
			return err
		}
	}
}

func (h *Host) nextDue() (streamfn.Timer, bool) {
	pending := h.Timers()
	if len(pending) == 0 || pending[0].AtMs > h.streamTimeMs {
		return streamfn.Timer{}, false
	}
	return pending[0], true
}

// AdvanceStreamTime moves stream time forward without an event, as a later event would.
func (h *Host) AdvanceStreamTime(toMs int64) {
	h.streamTimeMs = max(h.streamTimeMs, toMs)
}

// StreamTimeMs is the partition's stream time.
func (h *Host) StreamTimeMs() int64 { return h.streamTimeMs }

// Outputs are the records sent so far, oldest first.
func (h *Host) Outputs() []streamfn.Output { return h.outputs }

// TakeOutputs returns the records sent so far and forgets them.
func (h *Host) TakeOutputs() []streamfn.Output {
	outputs := h.outputs
	h.outputs = nil
	return outputs
}

// OutputsJSON parses the values sent to topic, oldest first, into v, a pointer to a
// slice (as json.Unmarshal would parse a JSON array of them).
func (h *Host) OutputsJSON(topic string, v any) error {
	var values [][]byte
	for _, output := range h.outputs {
		if output.Topic == topic {
			values = append(values, output.Value)
		}
	}
	array := append(append([]byte("["), bytes.Join(values, []byte(","))...), ']')
	return json.Unmarshal(array, v)
}

// State is the state value under key, and whether there is one.
func (h *Host) State(key string) ([]byte, bool) {
	value, ok := h.state[key]
	return value, ok
}

// StateJSON parses the state value under key into v and reports whether there was one.
func (h *Host) StateJSON(key string, v any) (bool, error) {
	value, ok := h.state[key]
	if !ok {
		return false, nil
	}
	return true, json.Unmarshal(value, v)
}

// StateLen is the number of state keys.
func (h *Host) StateLen() int { return len(h.state) }

// Timers are the pending timers, in the order they would fire: by time, then key.
func (h *Host) Timers() []streamfn.Timer {
	pending := make([]streamfn.Timer, 0, len(h.timers))
	for key, at := range h.timers {
		pending = append(pending, streamfn.Timer{Key: key, AtMs: at})
	}
	sort.Slice(pending, func(i, j int) bool {
		if pending[i].AtMs != pending[j].AtMs {
			return pending[i].AtMs < pending[j].AtMs
		}
		return pending[i].Key < pending[j].Key
	})
	return pending
}

// Logs are the log lines written so far, oldest first.
func (h *Host) Logs() []Log { return h.logs }

// transaction runs fn and undoes its state, output and timer changes when it fails.
func (h *Host) transaction(fn func() error) error {
	state := maps.Clone(h.state)
	timers := maps.Clone(h.timers)
	sent := len(h.outputs)
	err := fn()
	if err != nil {
		h.state = state
		h.timers = timers
		h.outputs = h.outputs[:sent]
	}
	return err
}

// Get implements [streamfn.Host].
func (h *Host) Get(key string) ([]byte, bool) {
	value, ok := h.state[key]
	return value, ok
}

// Set implements [streamfn.Host]; it keeps a copy of value, as the host does.
func (h *Host) Set(key string, value []byte) {
	h.state[key] = bytes.Clone(nonNil(value))
}

// Delete implements [streamfn.Host].
func (h *Host) Delete(key string) {
	delete(h.state, key)
}

// Scan implements [streamfn.Host].
func (h *Host) Scan(prefix string, after *string, limit int) []streamfn.Entry {
	keys := slices.Sorted(maps.Keys(h.state))
	var entries []streamfn.Entry
	for _, key := range keys {
		if len(entries) == limit {
			break
		}
		if !strings.HasPrefix(key, prefix) || (after != nil && key <= *after) {
			continue
		}
		entries = append(entries, streamfn.Entry{Key: key, Value: h.state[key]})
	}
	return entries
}

// Send implements [streamfn.Host]; it keeps a copy of the record, as the host does.
func (h *Host) Send(output *streamfn.Output) {
	sent := *output
	sent.Key = bytes.Clone(output.Key)
	sent.Value = bytes.Clone(output.Value)
	sent.Headers = slices.Clone(output.Headers)
	h.outputs = append(h.outputs, sent)
}

// Log implements [streamfn.Host].
func (h *Host) Log(level streamfn.Level, message string) {
	h.logs = append(h.logs, Log{Level: level, Message: message})
}

// Config implements [streamfn.Host].
func (h *Host) Config(key string) (string, bool) {
	value, ok := h.config[key]
	return value, ok
}

// Schedule implements [streamfn.Host].
func (h *Host) Schedule(key string, atMs int64) {
	h.timers[key] = atMs
}

// Cancel implements [streamfn.Host].
func (h *Host) Cancel(key string) {
	delete(h.timers, key)
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
