// Registering a function's handlers: what the component's exports call (wasm.go), or a test.

package streamfn

// Handler handles one event. It returns nil when the event was handled, or an error that
// says what the host should do with it (see [Failure]).
type Handler func(event *Event, ctx *Context) error

// TimerHandler handles one stream-time timer that came due.
type TimerHandler func(timer Timer, ctx *Context) error

var (
	eventHandler Handler
	timerHandler TimerHandler = NoTimers
)

// OnEvent makes handle the function's event handler. Call it from an init function: the
// host calls the component's exports after package initialization, and never calls main.
func OnEvent(handle Handler) {
	eventHandler = handle
}

// OnTimer makes onTimer the function's timer handler, called for each timer scheduled
// with [Context.ScheduleTimer] once it comes due. Call it from an init function.
func OnTimer(onTimer TimerHandler) {
	timerHandler = onTimer
}

// NoTimers is the timer handler of a function that registered none: a timer that fires
// anyway is reported as a failure.
func NoTimers(timer Timer, _ *Context) error {
	return Rejectf("a timer fired (%s at %d ms) but the function handles none", timer.Key, timer.AtMs)
}

// registeredHandler is the event handler, or a trap when there is none: a function that
// never called OnEvent is a build mistake that no event can get past.
func registeredHandler() Handler {
	if eventHandler == nil {
		panic("streamfn: no event handler: call streamfn.OnEvent(Handle) in an init function")
	}
	return eventHandler
}
