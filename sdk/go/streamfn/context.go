// The handler's view of the host: state, output records, configuration, logs and timers.

package streamfn

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// Level is the severity of a log line.
type Level uint8

const (
	// LevelDebug is fine-grained detail.
	LevelDebug Level = iota
	// LevelInfo is normal operation.
	LevelInfo
	// LevelWarn is something unexpected that the function handled.
	LevelWarn
	// LevelError is something that failed.
	LevelError
)

// String is the level's name, as the host shows it.
func (l Level) String() string {
	switch l {
	case LevelDebug:
		return "debug"
	case LevelInfo:
		return "info"
	case LevelWarn:
		return "warn"
	default:
		return "error"
	}
}

// Output is a record to send to an output topic.
type Output struct {
	// Topic is one of the output topics declared at deploy.
	Topic string
	// Key is the record key (nil for none); it picks the partition.
	Key []byte
	// Value is the record value (nil for none).
	Value []byte
	// Headers are the record headers.
	Headers []Header
	// TimestampMs is the record timestamp in milliseconds since the Unix epoch. Zero, the
	// usual value, means the timestamp of the event (or timer) being handled, so that a
	// replay writes the same timestamps.
	TimestampMs int64
}

// Entry is a state key and its value.
type Entry struct {
	// Key is the state key.
	Key string
	// Value is the value stored under it.
	Value []byte
}

// Host is what a [Context] needs from whatever runs the function: the Streamfn host
// inside wasm, or streamfntest.Host in a unit test. Functions do not use it directly.
type Host interface {
	// Get is the state value under key.
	Get(key string) ([]byte, bool)
	// Set stores value under key.
	Set(key string, value []byte)
	// Delete removes key.
	Delete(key string)
	// Scan is up to limit entries whose keys start with prefix, in key order, after the
	// key *after when after is not nil.
	Scan(prefix string, after *string, limit int) []Entry
	// Send sends a record to an output topic.
	Send(output *Output)
	// Log writes a log line.
	Log(level Level, message string)
	// Config is a deploy-time configuration value.
	Config(key string) (string, bool)
	// Schedule schedules the stream-time timer key at atMs.
	Schedule(key string, atMs int64)
	// Cancel cancels the timer key.
	Cancel(key string)
}

// Context is handed to every handler call: the partition's state, the output topics, the
// configuration, logs and timers. It is valid only during the call.
type Context struct {
	host  Host
	nowMs int64
}

// NewContext is a context over host for handling something that happened at timestampMs:
// records sent through it carry that timestamp unless they set their own.
func NewContext(host Host, timestampMs int64) *Context {
	return &Context{host: host, nowMs: timestampMs}
}

// Get is the raw state value under key, and whether there is one.
func (c *Context) Get(key string) ([]byte, bool) {
	return c.host.Get(key)
}

// GetJSON parses the state value under key as JSON into v and reports whether there was
// one. A value that does not parse returns a [Reject] error naming the key.
func (c *Context) GetJSON(key string, v any) (bool, error) {
	raw, ok := c.host.Get(key)
	if !ok {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, Rejectf("state key %q does not hold the expected JSON: %v", key, err)
	}
	return true, nil
}

// Set stores value under key.
func (c *Context) Set(key string, value []byte) {
	c.host.Set(key, value)
}

// SetJSON stores v as JSON under key. It fails only for values JSON cannot hold (a
// channel, a NaN); returning that error rejects the event.
func (c *Context) SetJSON(key string, v any) error {
	raw, err := marshal(v)
	if err != nil {
		return err
	}
	c.host.Set(key, raw)
	return nil
}

// Delete removes key from state. Removing a missing key does nothing.
func (c *Context) Delete(key string) {
	c.host.Delete(key)
}

// scanPage is how many entries one call into the host asks for.
const scanPage = 256

// Scan is every state entry whose key starts with prefix, in key order, fetched from the
// host a page at a time, stopping after max entries.
func (c *Context) Scan(prefix string, max int) []Entry {
	var entries []Entry
	for len(entries) < max {
		want := min(max-len(entries), scanPage)
		var after *string
		if len(entries) > 0 {
			after = &entries[len(entries)-1].Key
		}
		page := c.host.Scan(prefix, after, want)
		entries = append(entries, page...)
		if len(page) < want {
			break
		}
	}
	return entries
}

// Emit sends value to the output topic topic, keyed by key (nil for no key).
func (c *Context) Emit(topic string, key, value []byte) {
	c.host.Send(&Output{Topic: topic, Key: key, Value: value, TimestampMs: c.nowMs})
}

// EmitJSON sends v as JSON to topic, keyed by key (nil for no key). It fails only for
// values JSON cannot hold, as [Context.SetJSON] does.
func (c *Context) EmitJSON(topic string, key []byte, v any) error {
	raw, err := marshal(v)
	if err != nil {
		return err
	}
	c.Emit(topic, key, raw)
	return nil
}

// Send sends a fully built record, with headers or a timestamp of its own.
func (c *Context) Send(output Output) {
	if output.TimestampMs == 0 {
		output.TimestampMs = c.nowMs
	}
	c.host.Send(&output)
}

// Config is the deploy-time configuration value under key, and whether it was given.
func (c *Context) Config(key string) (string, bool) {
	return c.host.Config(key)
}

// ConfigOr is the configuration value under key, or def when it was not given.
func (c *Context) ConfigOr(key, def string) string {
	if value, ok := c.host.Config(key); ok {
		return value
	}
	return def
}

// ConfigFloat is the configuration value under key as a number, or def when it was not
// given. A value that does not parse returns a [Reject] error naming the key.
func (c *Context) ConfigFloat(key string, def float64) (float64, error) {
	raw, ok := c.host.Config(key)
	if !ok {
		return def, nil
	}
	value, err := strconv.ParseFloat(raw, 64)
	if err != nil {
		return def, Rejectf("config %s=%q does not parse", key, raw)
	}
	return value, nil
}

// ConfigInt is the configuration value under key as an integer, or def when it was not
// given. A value that does not parse returns a [Reject] error naming the key.
func (c *Context) ConfigInt(key string, def int64) (int64, error) {
	raw, ok := c.host.Config(key)
	if !ok {
		return def, nil
	}
	value, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		return def, Rejectf("config %s=%q does not parse", key, raw)
	}
	return value, nil
}

// Log writes a log line at level; the host keeps it with the event's coordinates.
func (c *Context) Log(level Level, message string) {
	c.host.Log(level, message)
}

// Debug writes a debug log line.
func (c *Context) Debug(message string) { c.host.Log(LevelDebug, message) }

// Info writes an info log line.
func (c *Context) Info(message string) { c.host.Log(LevelInfo, message) }

// Warn writes a warning log line.
func (c *Context) Warn(message string) { c.host.Log(LevelWarn, message) }

// ScheduleTimer schedules the timer key for stream time atMs, replacing any timer of that
// key. The function's timer handler is called once the partition's stream time reaches it.
func (c *Context) ScheduleTimer(key string, atMs int64) {
	c.host.Schedule(key, atMs)
}

// CancelTimer cancels the timer key, if there is one.
func (c *Context) CancelTimer(key string) {
	c.host.Cancel(key)
}

// marshal is json.Marshal without HTML escaping: records are not HTML, and the other SDKs
// write <, > and & as they are, so the same output is the same bytes in every language.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	encoder := json.NewEncoder(&buf)
	encoder.SetEscapeHTML(false)
	if err := encoder.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
