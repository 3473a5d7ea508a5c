// Tests of the in-memory host's rules.

package streamfntest_test

import (
	"fmt"
	"testing"

	"streamfn.dev/streamfn"
	"streamfn.dev/streamfn/streamfntest"
)

func count(event *streamfn.Event, ctx *streamfn.Context) error {
	key := event.KeyText()
	var n int
	if _, err := ctx.GetJSON(key, &n); err != nil {
		return err
	}
	if err := ctx.SetJSON(key, n+1); err != nil {
		return err
	}
	if event.ValueText() == "bad" {
		return streamfn.Reject("bad value")
	}
	ctx.Emit("out", nil, []byte("counted"))
	ctx.ScheduleTimer(key, event.TimestampMs+10)
	return nil
}

func flush(timer streamfn.Timer, ctx *streamfn.Context) error {
	ctx.Emit("flushed", []byte(timer.Key), []byte(fmt.Sprint(timer.AtMs)))
	return nil
}

func TestAFailedEventLeavesNoEffects(t *testing.T) {
	host := streamfntest.NewHost()
	ok := host.Event("in", "a", "good", 1)
	bad := host.Event("in", "a", "bad", 2)
	if err := host.Handle(count, ok); err != nil {
		t.Fatal(err)
	}
	if err := host.Handle(count, bad); err == nil || err.Error() != "bad value" {
		t.Fatalf("got %v", err)
	}
	var n int
	if _, err := host.StateJSON("a", &n); err != nil || n != 1 {
		t.Errorf("state a = %d (%v), want 1", n, err)
	}
	if len(host.Outputs()) != 1 || len(host.Timers()) != 1 {
		t.Errorf("%d outputs, %d timers", len(host.Outputs()), len(host.Timers()))
	}
}

func TestTimersFireOnceStreamTimePassesThem(t *testing.T) {
	host := streamfntest.NewHost()
	if err := host.Deliver(count, flush, "in", "a", "x", 100); err != nil {
		t.Fatal(err)
	}
	var flushed []int64
	if err := host.OutputsJSON("flushed", &flushed); err != nil || len(flushed) != 0 {
		t.Fatalf("flushed %v %v", flushed, err)
	}
	if err := host.Deliver(count, flush, "in", "b", "x", 111); err != nil {
		t.Fatal(err)
	}
	if err := host.OutputsJSON("flushed", &flushed); err != nil || fmt.Sprint(flushed) != "[110]" {
		t.Errorf("flushed %v %v", flushed, err)
	}
	if got := fmt.Sprint(host.Timers()); got != "[{b 121}]" {
		t.Errorf("pending %s", got)
	}
	if got := host.Outputs()[len(host.Outputs())-1].TimestampMs; got != 110 {
		t.Errorf("a timer's output carries the timer's time, got %d", got)
	}
}

func TestATimerWithoutAHandlerFails(t *testing.T) {
	host := streamfntest.NewHost()
	if err := host.Deliver(count, nil, "in", "a", "x", 100); err != nil {
		t.Fatal(err)
	}
	host.AdvanceStreamTime(200)
	if err := host.FireDueTimers(nil); err == nil {
		t.Error("want an error for a timer nobody handles")
	}
}

func TestStreamTimeNeverGoesBack(t *testing.T) {
	host := streamfntest.NewHost()
	host.Event("in", "", "x", 50)
	late := host.Event("in", "", "x", 20)
	if late.TimestampMs != 20 || late.StreamTimeMs != 50 || late.Offset != 1 {
		t.Errorf("late event %+v", late)
	}
}
