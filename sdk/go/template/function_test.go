// Unit tests of {{name}}: plain `go test`, no wasm and no host needed.

package main

import (
	"testing"

	"streamfn.dev/streamfn/streamfntest"
)

func TestCountsEventsPerKey(t *testing.T) {
	host := streamfntest.NewHost().WithConfig("to", "counts")
	for _, key := range []string{"a", "b", "a"} {
		if err := host.Handle(Handle, host.Event("in", key, "hello", 1000)); err != nil {
			t.Fatal(err)
		}
	}

	var got []count
	if err := host.OutputsJSON("counts", &got); err != nil {
		t.Fatal(err)
	}
	want := []count{{"a", 1}, {"b", 1}, {"a", 2}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("output %d: got %v, want %v", i, got[i], want[i])
		}
	}
	if ts := host.Outputs()[0].TimestampMs; ts != 1000 {
		t.Errorf("output timestamp %d, want the event's 1000", ts)
	}
}

func TestCorruptStateRejectsTheEvent(t *testing.T) {
	host := streamfntest.NewHost()
	host.Set("count/a", []byte("not a number"))
	if err := host.Handle(Handle, host.Event("in", "a", "hello", 1000)); err == nil {
		t.Fatal("want an error")
	}
	if len(host.Outputs()) != 0 {
		t.Error("a failed event must send nothing")
	}
}
