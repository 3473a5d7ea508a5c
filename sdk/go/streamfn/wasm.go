// The component side of the SDK: the host reached through the bindings wit-bindgen
// generates at build (internal/wit), and the glue that turns a batch call into one handler
// call per event. What both contract versions share is here; wasm_v0_1.go and
// wasm_v0_2.go hold what differs, one built per component (the tag streamfn_contract_0_1
// picks 0.1.0). Only built for wasip1; natively the package is plain Go.

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
	logging "streamfn.dev/streamfn/internal/wit/imports/streamfn_function_log"
	state "streamfn.dev/streamfn/internal/wit/imports/streamfn_function_state"
	types "streamfn.dev/streamfn/internal/wit/imports/streamfn_function_types"
)

func init() {
	handler.Batch = handleBatch
	handler.Timers = handleTimers
}

// Everything the host hands over (the batch, and the results of state reads, scans and
// config) is written where cabi_realloc put it: the runtime's scratch area, which is
// reused once the export call returns. So every byte a handler can see is copied out
// first, and the batch and timer calls end by freeing the scratch area.

func handleTimers(fired []types.FiredTimer) witTypes.Result[witTypes.Unit, string] {
	defer witRuntime.ResetScratch()
	var timer Timer
	defer trapOnPanic(func() string {
		return fmt.Sprintf("handling timer %q at %d ms", timer.Key, timer.AtMs)
	})
	host.begin()
	ctx := &Context{host: &host}
	for _, raw := range fired {
		timer = Timer{Key: string(raw.Key), AtMs: raw.AtMs}
		ctx.nowMs = timer.AtMs
		if err := timerHandler(timer, ctx); err != nil {
			return witTypes.Err[witTypes.Unit, string](timerError(err))
		}
	}
	host.finish()
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

// stateGet is state.get, with the value copied out.
func stateGet(key string) ([]byte, bool) {
	value := state.Get(view(key))
	if value.Tag() != witTypes.OptionSome {
		return nil, false
	}
	return clone(value.Some()), true
}

// stateScan is state.scan, with the entries copied out.
func stateScan(prefix string, after *string, limit int) []Entry {
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

// configuration is every configuration value, fetched on first use: an instance serves
// one deployment version, whose configuration never changes, so one call into the host
// replaces one per lookup.
type configuration map[string]string

func (c *configuration) Config(key string) (string, bool) {
	if *c == nil {
		all := config.All()
		*c = make(map[string]string, len(all))
		for _, pair := range all {
			(*c)[strings.Clone(pair.F0)] = strings.Clone(pair.F1)
		}
	}
	value, ok := (*c)[key]
	return value, ok
}

// logger writes log lines through the log import.
type logger struct{}

func (logger) Log(level Level, message string) {
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
