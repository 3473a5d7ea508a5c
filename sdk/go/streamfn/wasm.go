// The component side of the SDK: the host reached through the bindings wit-bindgen
// generates at build (internal/wit), and the glue that turns a batch call into one handler
// call per event. Only built for wasip1; natively the package is plain Go.

//go:build wasip1

package streamfn

import (
	"bytes"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"unsafe"

	witRuntime "go.bytecodealliance.org/pkg/wit/runtime"
	witTypes "go.bytecodealliance.org/pkg/wit/types"

	handler "streamfn.dev/streamfn/internal/wit/exports/export_streamfn_function_handler"
	// The component's exports: linked in here so that a function only imports streamfn.
	_ "streamfn.dev/streamfn/internal/wit/exports/wit_exports"
	config "streamfn.dev/streamfn/internal/wit/imports/streamfn_function_config"
	emit "streamfn.dev/streamfn/internal/wit/imports/streamfn_function_emit"
	logging "streamfn.dev/streamfn/internal/wit/imports/streamfn_function_log"
	state "streamfn.dev/streamfn/internal/wit/imports/streamfn_function_state"
	timers "streamfn.dev/streamfn/internal/wit/imports/streamfn_function_timers"
	types "streamfn.dev/streamfn/internal/wit/imports/streamfn_function_types"
)

func init() {
	handler.Batch = handleBatch
	handler.Timers = handleTimers
}

// wasmHost is the Streamfn host, reached through the component's imports.
type wasmHost struct {
	// config is every configuration value, fetched on first use: an instance serves one
	// deployment version, whose configuration never changes, so one call into the host
	// replaces one per lookup.
	config map[string]string
}

var host wasmHost

// Everything the host hands over (the batch, and the results of state reads, scans and
// config) is written where cabi_realloc put it: the runtime's scratch area, which is
// reused once the export call returns. So every byte a handler can see is copied out
// first, and the batch and timer calls end by freeing the scratch area.

func handleBatch(batch []types.Event) []types.Outcome {
	defer witRuntime.ResetScratch()
	var event *Event
	defer trapOnPanic(func() string {
		return fmt.Sprintf("handling %s partition %d offset %d", event.Topic, event.Partition, event.Offset)
	})
	handle := registeredHandler()
	events := make([]Event, len(batch))
	outcomes := make([]types.Outcome, len(batch))
	ctx := &Context{host: &host}
	for i := range batch {
		event = &events[i]
		copyEvent(&batch[i], event)
		ctx.nowMs = event.TimestampMs
		outcomes[i] = outcomeOf(handle(event, ctx))
	}
	return outcomes
}

func outcomeOf(err error) types.Outcome {
	if err == nil {
		return types.MakeOutcomeOk()
	}
	retry, reason := outcome(err)
	if retry {
		return types.MakeOutcomeRetry(reason)
	}
	return types.MakeOutcomeReject(reason)
}

func handleTimers(fired []types.FiredTimer) witTypes.Result[witTypes.Unit, string] {
	defer witRuntime.ResetScratch()
	var timer Timer
	defer trapOnPanic(func() string {
		return fmt.Sprintf("handling timer %q at %d ms", timer.Key, timer.AtMs)
	})
	ctx := &Context{host: &host}
	for _, raw := range fired {
		timer = Timer{Key: string(raw.Key), AtMs: raw.AtMs}
		ctx.nowMs = timer.AtMs
		if err := timerHandler(timer, ctx); err != nil {
			return witTypes.Err[witTypes.Unit, string](timerError(err))
		}
	}
	return witTypes.Ok[witTypes.Unit, string](witTypes.Unit{})
}

// trapOnPanic turns a handler's panic into a trap, as an unrecovered panic would be, but
// writes the panic to stderr stack first and message last: the host quotes the last lines
// of stderr in the dead letter's reason, and Go's own report ends with the stack.
func trapOnPanic(handling func() string) {
	r := recover()
	if r == nil {
		return
	}
	os.Stderr.Write(debug.Stack())
	fmt.Fprintf(os.Stderr, "panic: %v [%s]\n", r, handling())
	abort()
}

// abort executes wasm's unreachable instruction: a trap that prints nothing more.
//
//go:linkname abort runtime.abort
func abort()

// topic is the last input topic seen: a batch has one or a few, so equal names share
// one copy.
var topic string

// copyEvent fills event from the bindings' form with copies of its bytes: key, value and
// header values share one allocation.
func copyEvent(raw *types.Event, event *Event) {
	if raw.Topic != topic {
		topic = strings.Clone(raw.Topic)
	}
	size := len(raw.Key.SomeOr(nil)) + len(raw.Value.SomeOr(nil))
	for _, h := range raw.Headers {
		size += len(h.Value)
	}
	buf := make([]byte, 0, size)
	*event = Event{
		Topic:        topic,
		Partition:    raw.Partition,
		Offset:       raw.Offset,
		TimestampMs:  raw.TimestampMs,
		StreamTimeMs: raw.StreamTimeMs,
	}
	event.Key, buf = carve(buf, raw.Key)
	event.Value, buf = carve(buf, raw.Value)
	if len(raw.Headers) > 0 {
		event.Headers = make([]Header, len(raw.Headers))
		for i, h := range raw.Headers {
			event.Headers[i].Key = strings.Clone(h.Key)
			event.Headers[i].Value, buf = carve(buf, witTypes.Some(h.Value))
		}
	}
}

// carve appends option's bytes to buf, which has room for them, and returns the copy (nil
// for none, non-nil for some, even when empty) and buf. The copy's capacity ends with it,
// so an append to it cannot overwrite what follows.
func carve(buf []byte, option witTypes.Option[[]byte]) ([]byte, []byte) {
	if option.Tag() != witTypes.OptionSome {
		return nil, buf
	}
	start := len(buf)
	buf = append(buf, option.Some()...)
	return buf[start:len(buf):len(buf)], buf
}

func toOption(b []byte) witTypes.Option[[]byte] {
	if b == nil {
		return witTypes.None[[]byte]()
	}
	return witTypes.Some(b)
}

// view is the bytes of s without a copy; the host only reads what it is handed.
func view(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// clone copies bytes out of the scratch area, keeping empty apart from nil.
func clone(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return bytes.Clone(b)
}

func (h *wasmHost) Get(key string) ([]byte, bool) {
	value := state.Get(view(key))
	if value.Tag() != witTypes.OptionSome {
		return nil, false
	}
	return clone(value.Some()), true
}

func (h *wasmHost) Set(key string, value []byte) {
	state.Set(view(key), value)
}

func (h *wasmHost) Delete(key string) {
	state.Delete(view(key))
}

func (h *wasmHost) Scan(prefix string, after *string, limit int) []Entry {
	start := witTypes.None[[]byte]()
	if after != nil {
		start = witTypes.Some(view(*after))
	}
	page := state.Scan(view(prefix), start, uint32(limit))
	entries := make([]Entry, len(page))
	for i, entry := range page {
		entries[i] = Entry{Key: string(entry.Key), Value: clone(entry.Value)}
	}
	return entries
}

func (h *wasmHost) Send(output *Output) {
	var headers []types.Header
	if len(output.Headers) > 0 {
		headers = make([]types.Header, len(output.Headers))
		for i, h := range output.Headers {
			headers[i] = types.Header{Key: h.Key, Value: h.Value}
		}
	}
	emit.Send(emit.Output{
		Topic:       output.Topic,
		Key:         toOption(output.Key),
		Value:       toOption(output.Value),
		Headers:     headers,
		TimestampMs: witTypes.Some(output.TimestampMs),
	})
}

func (h *wasmHost) Log(level Level, message string) {
	logging.Write(logLevel(level), message)
}

func logLevel(level Level) logging.Level {
	switch level {
	case LevelDebug:
		return logging.Level_Debug
	case LevelInfo:
		return logging.Level_Info
	case LevelWarn:
		return logging.Level_Warn
	default:
		return logging.Level_Error
	}
}

func (h *wasmHost) Config(key string) (string, bool) {
	if h.config == nil {
		all := config.All()
		h.config = make(map[string]string, len(all))
		for _, pair := range all {
			h.config[strings.Clone(pair.F0)] = strings.Clone(pair.F1)
		}
	}
	value, ok := h.config[key]
	return value, ok
}

func (h *wasmHost) Schedule(key string, atMs int64) {
	timers.Schedule(view(key), atMs)
}

func (h *wasmHost) Cancel(key string) {
	timers.Cancel(view(key))
}
