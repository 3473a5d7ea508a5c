// The conformance function in Go: one command per event, exercising every import and
// every outcome, as tests/conformance/SPEC.md specifies. Its outputs must match the Rust
// build's byte for byte.

package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"streamfn.dev/streamfn"
)

func init() {
	streamfn.OnEvent(Handle)
	streamfn.OnTimer(OnTimer)
}

// levels are the log levels a `log` command may name; anything else logs at info.
var levels = map[string]streamfn.Level{
	"debug": streamfn.LevelDebug,
	"warn":  streamfn.LevelWarn,
	"error": streamfn.LevelError,
}

// Handle runs the event's command.
func Handle(event *streamfn.Event, ctx *streamfn.Context) error {
	command := event.ValueText()
	op, rest, _ := strings.Cut(command, " ")
	out := func(text string) { ctx.Emit("out", event.Key, []byte(text)) }
	switch op {
	case "set":
		k, v, _ := strings.Cut(rest, " ")
		ctx.Set(k, []byte(v))
		out("set " + k)
	case "get":
		value := "-"
		if v, ok := ctx.Get(rest); ok {
			value = string(v)
		}
		out("get " + rest + "=" + value)
	case "del":
		ctx.Delete(rest)
		out("del " + rest)
	case "scan":
		var text strings.Builder
		text.WriteString("scan " + rest + ":")
		for _, entry := range ctx.Scan(rest, math.MaxInt) {
			text.WriteString(" " + entry.Key + "=" + string(entry.Value))
		}
		out(text.String())
	case "emit":
		topic, value, _ := strings.Cut(rest, " ")
		ctx.Send(streamfn.Output{
			Topic:   topic,
			Key:     event.Key,
			Value:   []byte(value),
			Headers: []streamfn.Header{{Key: "h", Value: []byte("v")}},
		})
	case "config":
		value, ok := ctx.Config(rest)
		if !ok {
			value = "-"
		}
		out("config " + rest + "=" + value)
	case "log":
		name, message, _ := strings.Cut(rest, " ")
		level, ok := levels[name]
		if !ok {
			level = streamfn.LevelInfo
		}
		ctx.Log(level, message)
		out("log " + name)
	case "timer":
		k, at, _ := strings.Cut(rest, " ")
		atMs, err := strconv.ParseInt(at, 10, 64)
		if err != nil {
			return streamfn.Rejectf("bad time: %s", at)
		}
		ctx.ScheduleTimer(k, atMs)
		out(fmt.Sprintf("timer %s %d", k, atMs))
	case "cancel":
		ctx.CancelTimer(rest)
		out("cancel " + rest)
	case "time":
		out(fmt.Sprintf("time %d %d", event.TimestampMs, event.StreamTimeMs))
	case "meta":
		key := "-"
		if event.Key != nil {
			key = event.KeyText()
		}
		out(fmt.Sprintf("meta %s %d %d %s", event.Topic, event.Partition, event.Offset, key))
	case "headers":
		var text strings.Builder
		text.WriteString("headers")
		for _, h := range event.Headers {
			text.WriteString(" " + h.Key + "=" + string(h.Value))
		}
		out(text.String())
	case "reject":
		return streamfn.Reject(rest)
	case "retry":
		return streamfn.Retry(rest)
	case "trap":
		panic("trap requested")
	default:
		return streamfn.Reject("unknown command: " + command)
	}
	return nil
}

// OnTimer reports a fired timer.
func OnTimer(timer streamfn.Timer, ctx *streamfn.Context) error {
	ctx.Emit("out", []byte(timer.Key), []byte(fmt.Sprintf("fired %s %d", timer.Key, timer.AtMs)))
	return nil
}

// main is never called: the host calls Handle and OnTimer through the component's exports.
func main() {}
