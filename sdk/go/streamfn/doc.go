// Package streamfn is the Go SDK of Streamfn: a function is a plain Go func over one event
// at a time.
//
//	package main
//
//	import "streamfn.dev/streamfn"
//
//	type payment struct {
//		Account string  `json:"account"`
//		Amount  float64 `json:"amount"`
//	}
//
//	func init() { streamfn.OnEvent(Handle) }
//
//	// Handle adds each payment to its account's total and reports large spenders.
//	func Handle(event *streamfn.Event, ctx *streamfn.Context) error {
//		var p payment
//		if err := event.JSON(&p); err != nil {
//			return err // malformed JSON rejects the event
//		}
//		var total float64
//		if _, err := ctx.GetJSON(p.Account, &total); err != nil {
//			return err
//		}
//		total += p.Amount
//		if err := ctx.SetJSON(p.Account, total); err != nil {
//			return err
//		}
//		if total > 10_000 {
//			return ctx.EmitJSON("large-spenders", []byte(p.Account), total)
//		}
//		return nil
//	}
//
//	func main() {}
//
// A handler returns nil (handled), [Reject] (the record is bad: it goes to the dead-letter
// topic now), [Retry] (transient: it is delivered again after a backoff, then
// dead-lettered) or any other error, which rejects the event with the error's text. A
// panic is a trap: the host finds the event that caused it and dead-letters it.
//
// Built with fnctl build (GOOS=wasip1), the registered handlers become the exports of a
// component of the streamfn:function world; main is never called. Built natively, the
// package is ordinary Go, and package streamfntest runs handlers in unit tests with the
// host's rules, without wasm.
//
// The SDK is not the host: it never sees offsets being committed, batches being split or
// records being dead-lettered. It only says what one event should do.
package streamfn
