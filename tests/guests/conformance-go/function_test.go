// Runs tests/conformance/fixtures.jsonl through the function on the SDK's in-memory host
// and checks its records to `out` against tests/conformance/expected.txt. The in-memory
// host neither retries nor denies topics, so the dead letters are left to the end-to-end
// check, which runs the component on a replica.

package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"streamfn.dev/streamfn"
	"streamfn.dev/streamfn/streamfntest"
)

type fixture struct {
	Key         *string     `json:"key"`
	Value       string      `json:"value"`
	TimestampMs int64       `json:"timestamp_ms"`
	Headers     [][2]string `json:"headers"`
}

// handleOrTrap is Handle with a panic turned into an error, as the host turns it into a
// trap that fails only the event.
func handleOrTrap(host *streamfntest.Host, event *streamfn.Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("trap: %v", r)
		}
	}()
	return host.Handle(Handle, event)
}

func fireDueTimers(t *testing.T, host *streamfntest.Host) {
	t.Helper()
	if err := host.FireDueTimers(OnTimer); err != nil {
		t.Fatal(err)
	}
}

func TestFixturesGiveTheExpectedOutputs(t *testing.T) {
	fixtures, err := os.Open("../../conformance/fixtures.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer fixtures.Close()
	host := streamfntest.NewHost().WithConfig("greeting", "hello")
	scanner := bufio.NewScanner(fixtures)
	for scanner.Scan() {
		var f fixture
		if err := json.Unmarshal(scanner.Bytes(), &f); err != nil {
			t.Fatal(err)
		}
		event := host.Event("in", "", f.Value, f.TimestampMs)
		event.Key = nil
		if f.Key != nil {
			event.Key = []byte(*f.Key)
		}
		for _, h := range f.Headers {
			event.Headers = append(event.Headers, streamfn.Header{Key: h[0], Value: []byte(h[1])})
		}
		// The replica gets the fixtures in one call, which a retry ends (the event comes
		// again in a later call); due timers fire when a call returns.
		var failure *streamfn.Failure
		if err := handleOrTrap(host, event); errors.As(err, &failure) && failure.Retry {
			fireDueTimers(t, host)
		}
	}
	fireDueTimers(t, host)

	var got []string
	for _, output := range host.Outputs() {
		if output.Topic != "out" {
			continue
		}
		key := "-"
		if output.Key != nil {
			key = string(output.Key)
		}
		got = append(got, fmt.Sprintf("out %s %d %s", key, output.TimestampMs, output.Value))
	}
	expected, err := os.ReadFile("../../conformance/expected.txt")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, line := range strings.Split(string(expected), "\n") {
		if strings.HasPrefix(line, "out ") {
			want = append(want, line)
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
