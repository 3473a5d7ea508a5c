// What a handler returns when an event cannot be handled, and what the host makes of it.

package streamfn

import (
	"errors"
	"fmt"
)

// Failure is an error that says what the host should do with the event that caused it.
// Handlers make one with [Reject] or [Retry]; it may be wrapped (fmt.Errorf with %w), and
// the wrapping error's text becomes the reason.
type Failure struct {
	// Retry is true for a transient failure: the host discards the event's effects and
	// delivers it again after a backoff; once the retry budget is spent it goes to the
	// dead-letter topic. When false, the event is bad: the host discards its effects and
	// dead-letters it now.
	Retry bool
	// Reason is the text the host records with the event.
	Reason string
}

// Error returns the reason.
func (f *Failure) Error() string { return f.Reason }

// Reject is an error that sends the event to the dead-letter topic with reason.
func Reject(reason string) error { return &Failure{Reason: reason} }

// Rejectf is [Reject] with a reason formatted as fmt.Sprintf does.
func Rejectf(format string, args ...any) error {
	return &Failure{Reason: fmt.Sprintf(format, args...)}
}

// Retry is an error that has the event delivered again after a backoff.
func Retry(reason string) error { return &Failure{Retry: true, Reason: reason} }

// Retryf is [Retry] with a reason formatted as fmt.Sprintf does.
func Retryf(format string, args ...any) error {
	return &Failure{Retry: true, Reason: fmt.Sprintf(format, args...)}
}

// outcome is what the host is told for a handler's error: a [Failure] anywhere in its
// chain decides between retry and reject, and any other error rejects. A plain error is
// most likely input the function did not expect (a parse error, a missing field); run
// again, it would fail the same way, so retrying would only delay the dead letter.
func outcome(err error) (retry bool, reason string) {
	var failure *Failure
	if errors.As(err, &failure) {
		return failure.Retry, err.Error()
	}
	return false, err.Error()
}

// timerError is the text on-timers reports for a failed timer, naming what the handler
// asked for, as the Rust SDK does.
func timerError(err error) string {
	retry, reason := outcome(err)
	if retry {
		return "retry: " + reason
	}
	return "reject: " + reason
}
