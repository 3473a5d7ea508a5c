// The exported handler interface of contract 0.1.0, where wit-bindgen's generated entry points
// (../wit_exports, generated at build) call the function. Part of the SDK, not generated.

//go:build wasip1 && streamfn_contract_0_1

// Package export_streamfn_function_handler implements the export
// streamfn:function/handler@0.1.0. wit-bindgen's Go generator decides its import path and
// the names Handle and OnTimers. It calls back into package streamfn through the variables
// below, which that package sets at init: importing it from here would be an import cycle.
package export_streamfn_function_handler

import (
	witTypes "go.bytecodealliance.org/pkg/wit/types"

	types "streamfn.dev/streamfn/internal/wit/imports/streamfn_function_types"
)

// Batch runs a batch of events; set by package streamfn.
var Batch func(events []types.Event) []types.Outcome

// Timers runs the timers that came due; set by package streamfn.
var Timers func(timers []types.FiredTimer) witTypes.Result[witTypes.Unit, string]

// Handle is handler.handle: one outcome per event, in order.
func Handle(events []types.Event) []types.Outcome {
	return Batch(events)
}

// OnTimers is handler.on-timers.
func OnTimers(timers []types.FiredTimer) witTypes.Result[witTypes.Unit, string] {
	return Timers(timers)
}
