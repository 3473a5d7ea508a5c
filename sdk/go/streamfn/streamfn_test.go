// Unit tests of the SDK's own logic, natively: outcomes, JSON helpers, context defaults.

package streamfn_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"streamfn.dev/streamfn"
	"streamfn.dev/streamfn/streamfntest"
)

func TestFailuresSayWhatTheHostDoes(t *testing.T) {
	var failure *streamfn.Failure
	wrapped := fmt.Errorf("scoring tx-1: %w", streamfn.Retry("profile store busy"))
	if !errors.As(wrapped, &failure) || !failure.Retry {
		t.Fatalf("a wrapped Retry is still a retry: %v", wrapped)
	}
	if got := wrapped.Error(); got != "scoring tx-1: profile store busy" {
		t.Errorf("reason %q", got)
	}
	if err := streamfn.Rejectf("bad amount %d", -3); err.Error() != "bad amount -3" {
		t.Errorf("reason %q", err)
	}
}

func TestADecodedEventNamesTheSchemaThatWroteIt(t *testing.T) {
	decoded := &streamfn.Event{Headers: []streamfn.Header{
		{Key: "streamfn.schema.id", Value: []byte("42")},
		{Key: "streamfn.schema.subject", Value: []byte("orders-value")},
	}}
	if id, ok := decoded.SchemaID(); !ok || id != 42 {
		t.Errorf("schema id %d %v", id, ok)
	}
	if subject, ok := decoded.SchemaSubject(); !ok || subject != "orders-value" {
		t.Errorf("subject %q %v", subject, ok)
	}
	plain := &streamfn.Event{}
	if _, ok := plain.SchemaID(); ok {
		t.Error("a plain event has no schema id")
	}
	if _, ok := plain.SchemaSubject(); ok {
		t.Error("a plain event has no subject")
	}
}

func TestEventJSONRejectsWhatDoesNotParse(t *testing.T) {
	var v struct{ N int }
	for _, event := range []*streamfn.Event{{Value: nil}, {Value: []byte("{")}, {Value: []byte(`{"N":"x"}`)}} {
		var failure *streamfn.Failure
		if err := event.JSON(&v); !errors.As(err, &failure) || failure.Retry {
			t.Errorf("value %q: want a reject, got %v", event.Value, err)
		}
	}
	event := &streamfn.Event{Value: []byte(`{"N":7}`), Headers: []streamfn.Header{{Key: "a", Value: []byte("1")}, {Key: "a", Value: []byte("2")}}}
	if err := event.JSON(&v); err != nil || v.N != 7 {
		t.Errorf("got %v, %v", v, err)
	}
	if value, ok := event.Header("a"); !ok || string(value) != "1" {
		t.Errorf("first header a: %q %v", value, ok)
	}
	if _, ok := event.Header("b"); ok {
		t.Error("no header b")
	}
}

func TestOutputsCarryTheHandledTimestampUnlessTheySetOne(t *testing.T) {
	host := streamfntest.NewHost()
	ctx := streamfn.NewContext(host, 1234)
	ctx.Emit("out", nil, []byte("a"))
	ctx.Send(streamfn.Output{Topic: "out", Value: []byte("b")})
	ctx.Send(streamfn.Output{Topic: "out", Value: []byte("c"), TimestampMs: 99})
	var got []int64
	for _, output := range host.Outputs() {
		got = append(got, output.TimestampMs)
	}
	if fmt.Sprint(got) != "[1234 1234 99]" {
		t.Errorf("timestamps %v", got)
	}
}

func TestJSONIsWrittenWithoutHTMLEscapes(t *testing.T) {
	host := streamfntest.NewHost()
	ctx := streamfn.NewContext(host, 0)
	if err := ctx.EmitJSON("out", []byte("k"), map[string]string{"q": "a<b & c>d"}); err != nil {
		t.Fatal(err)
	}
	if got := string(host.Outputs()[0].Value); got != `{"q":"a<b & c>d"}` {
		t.Errorf("value %s", got)
	}
	if err := ctx.SetJSON("k", func() {}); err == nil {
		t.Error("a func is not JSON")
	}
}

func TestStateJSONThatDoesNotParseRejectsNamingTheKey(t *testing.T) {
	host := streamfntest.NewHost()
	host.Set("total", []byte("x"))
	ctx := streamfn.NewContext(host, 0)
	var n int
	if found, err := ctx.GetJSON("missing", &n); found || err != nil {
		t.Errorf("missing key: %v %v", found, err)
	}
	found, err := ctx.GetJSON("total", &n)
	if !found || err == nil || !strings.Contains(err.Error(), `"total"`) {
		t.Errorf("got %v %v", found, err)
	}
}

func TestConfigHelpers(t *testing.T) {
	host := streamfntest.NewHost().WithConfig("threshold", "0.5").WithConfig("limit", "high")
	ctx := streamfn.NewContext(host, 0)
	if v, err := ctx.ConfigFloat("threshold", 1); v != 0.5 || err != nil {
		t.Errorf("threshold %v %v", v, err)
	}
	if v, err := ctx.ConfigFloat("absent", 0.7); v != 0.7 || err != nil {
		t.Errorf("default %v %v", v, err)
	}
	if _, err := ctx.ConfigInt("limit", 3); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("bad value: %v", err)
	}
	if v := ctx.ConfigOr("to", "out"); v != "out" {
		t.Errorf("ConfigOr %q", v)
	}
}

// pagingHost counts the pages a scan asks for.
type pagingHost struct {
	*streamfntest.Host
	pages int
}

func (h *pagingHost) Scan(prefix string, after *string, limit int) []streamfn.Entry {
	h.pages++
	return h.Host.Scan(prefix, after, limit)
}

func TestScanPagesThroughAPrefix(t *testing.T) {
	host := &pagingHost{Host: streamfntest.NewHost()}
	for i := range 600 {
		host.Set(fmt.Sprintf("k/%04d", i), []byte("v"))
	}
	host.Set("other", []byte("v"))
	ctx := streamfn.NewContext(host, 0)
	all := ctx.Scan("k/", 1<<30)
	if len(all) != 600 || all[599].Key != "k/0599" || host.pages != 3 {
		t.Errorf("%d entries, last %q, %d pages", len(all), all[len(all)-1].Key, host.pages)
	}
	if n := len(ctx.Scan("k/", 10)); n != 10 {
		t.Errorf("max 10: got %d", n)
	}
}
