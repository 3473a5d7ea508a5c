// The component side of contract 0.1.0: events arrive as the bindings' records and every
// effect is a host call of its own.

//go:build wasip1 && streamfn_contract_0_1

package streamfn

import (
	"fmt"
	"strings"

	witRuntime "go.bytecodealliance.org/pkg/wit/runtime"
	witTypes "go.bytecodealliance.org/pkg/wit/types"

	emit "streamfn.dev/streamfn/internal/wit/imports/streamfn_function_emit"
	state "streamfn.dev/streamfn/internal/wit/imports/streamfn_function_state"
	timers "streamfn.dev/streamfn/internal/wit/imports/streamfn_function_timers"
	types "streamfn.dev/streamfn/internal/wit/imports/streamfn_function_types"
)

// wasmHost is the Streamfn host, reached through the component's imports.
type wasmHost struct {
	configuration
	logger
}

var host wasmHost

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

// begin and finish bracket a call; 0.1.0 holds nothing between host calls.
func (h *wasmHost) begin()  {}
func (h *wasmHost) finish() {}

func (h *wasmHost) Get(key string) ([]byte, bool) { return stateGet(key) }

func (h *wasmHost) Set(key string, value []byte) {
	state.Set(view(key), value)
}

func (h *wasmHost) Delete(key string) {
	state.Delete(view(key))
}

func (h *wasmHost) Scan(prefix string, after *string, limit int) []Entry {
	return stateScan(prefix, after, limit)
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

func (h *wasmHost) Schedule(key string, atMs int64) {
	timers.Schedule(view(key), atMs)
}

func (h *wasmHost) Cancel(key string) {
	timers.Cancel(view(key))
}
