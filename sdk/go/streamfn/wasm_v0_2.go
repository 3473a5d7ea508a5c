// The component side of contract 0.2.0: a batch arrives in one buffer, copied out once
// and decoded into events that share the copy, and a call's effects go back in one
// effects.apply (batchhost.go).

//go:build wasip1 && !streamfn_contract_0_1

package streamfn

import (
	"bytes"
	"fmt"

	witRuntime "go.bytecodealliance.org/pkg/wit/runtime"

	effects "streamfn.dev/streamfn/internal/wit/imports/streamfn_function_effects"
	types "streamfn.dev/streamfn/internal/wit/imports/streamfn_function_types"
)

// wasmHost is the Streamfn host, reached through the component's imports.
type wasmHost struct {
	*batchHost
	configuration
	logger
}

var host = wasmHost{batchHost: newBatchHost(batchImports{
	get:   stateGet,
	scan:  stateScan,
	apply: effects.Apply,
})}

func handleBatch(batch []byte) []types.FailedEvent {
	defer witRuntime.ResetScratch()
	var event *Event
	defer trapOnPanic(func() string {
		if event == nil {
			return "decoding the batch"
		}
		return fmt.Sprintf("handling %s partition %d offset %d", event.Topic, event.Partition, event.Offset)
	})
	handle := registeredHandler()
	events, err := decodeBatch(bytes.Clone(batch))
	if err != nil {
		panic(err)
	}
	var failed []types.FailedEvent
	host.begin()
	ctx := &Context{host: &host}
	for i := range events {
		event = &events[i]
		ctx.nowMs = event.TimestampMs
		if err := handle(event, ctx); err != nil {
			failed = append(failed, types.FailedEvent{Index: uint32(i), Failure: failureOf(err)})
		}
	}
	host.finish()
	return failed
}

func failureOf(err error) types.Failure {
	retry, reason := outcome(err)
	if retry {
		return types.MakeFailureRetry(reason)
	}
	return types.MakeFailureReject(reason)
}
