// {{name}}: counts the events of each key and reports every new count.

package main

import "streamfn.dev/streamfn"

// count is what the function sends for every event.
type count struct {
	Key   string `json:"key"`
	Count int64  `json:"count"`
}

func init() {
	streamfn.OnEvent(Handle)
}

// Handle adds the event to its key's count, kept in the partition's state, and sends the
// new count to the topic named by config `to` (default `out`), keyed like the event.
func Handle(event *streamfn.Event, ctx *streamfn.Context) error {
	key := event.KeyText()
	var n int64
	if _, err := ctx.GetJSON("count/"+key, &n); err != nil {
		return err
	}
	n++
	if err := ctx.SetJSON("count/"+key, n); err != nil {
		return err
	}
	return ctx.EmitJSON(ctx.ConfigOr("to", "out"), event.Key, count{Key: key, Count: n})
}

// main is never called: the host calls Handle through the component's exports.
func main() {}
