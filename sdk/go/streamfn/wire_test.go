// Unit tests of contract 0.2.0's buffers and of the host a call sees over them, natively:
// batches encoded here as the host writes them, effects decoded here as the host reads
// them, apart from the SDK's own code.

package streamfn

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

type rawEvent struct {
	topic      uint32
	offset     uint64
	ts, stream int64
	key, value []byte
	headers    []Header
}

func encodeBatch(partition uint32, topics []string, events []rawEvent) []byte {
	le := binary.LittleEndian
	out := le.AppendUint32(nil, partition)
	data := func(b []byte) { out = le.AppendUint32(out, uint32(len(b))); out = append(out, b...) }
	optional := func(b []byte) {
		if b == nil {
			out = le.AppendUint32(out, 0xffffffff)
			return
		}
		data(b)
	}
	out = le.AppendUint32(out, uint32(len(topics)))
	for _, t := range topics {
		data([]byte(t))
	}
	out = le.AppendUint32(out, uint32(len(events)))
	for _, e := range events {
		out = le.AppendUint32(out, e.topic)
		out = le.AppendUint64(out, e.offset)
		out = le.AppendUint64(out, uint64(e.ts))
		out = le.AppendUint64(out, uint64(e.stream))
		optional(e.key)
		optional(e.value)
		out = le.AppendUint32(out, uint32(len(e.headers)))
		for _, h := range e.headers {
			data([]byte(h.Key))
			data(h.Value)
		}
	}
	return out
}

// decodeEffects is the entries of an effects buffer, one line each.
func decodeEffects(t *testing.T, buf []byte) []string {
	t.Helper()
	le := binary.LittleEndian
	at := 0
	u32 := func() uint32 { at += 4; return le.Uint32(buf[at-4:]) }
	i64 := func() int64 { at += 8; return int64(le.Uint64(buf[at-8:])) }
	data := func() string { n := int(u32()); at += n; return string(buf[at-n : at]) }
	optional := func() string {
		if le.Uint32(buf[at:]) == 0xffffffff {
			at += 4
			return "<none>"
		}
		return fmt.Sprintf("%q", data())
	}
	var lines []string
	for at < len(buf) {
		at++
		switch tag := buf[at-1]; tag {
		case 0:
			lines = append(lines, fmt.Sprintf("set %s=%s", data(), data()))
		case 1:
			lines = append(lines, "delete "+data())
		case 2:
			line := fmt.Sprintf("send %s %s %s", data(), optional(), optional())
			for n := u32(); n > 0; n-- {
				line += fmt.Sprintf(" %s:%q", data(), data())
			}
			if buf[at] == 1 {
				at++
				line += fmt.Sprintf(" @%d", i64())
			} else {
				at++
			}
			lines = append(lines, line)
		case 3:
			lines = append(lines, fmt.Sprintf("schedule %s@%d", data(), i64()))
		case 4:
			lines = append(lines, "cancel "+data())
		default:
			t.Fatalf("unknown effect tag %d", tag)
		}
	}
	return lines
}

func TestBatchesDecodeIntoEventsThatKeepAbsentApartFromEmpty(t *testing.T) {
	batch := encodeBatch(7, []string{"orders", "payments"}, []rawEvent{
		{topic: 1, offset: 10, ts: -3, stream: 5, key: []byte("k"), value: []byte("v"),
			headers: []Header{{"h", []byte("1")}, {"e", []byte{}}}},
		{topic: 0, offset: 1 << 40, ts: 9, stream: 9, key: nil, value: []byte{}},
	})
	events, err := decodeBatch(batch)
	if err != nil {
		t.Fatal(err)
	}
	want := []Event{
		{Topic: "payments", Partition: 7, Offset: 10, TimestampMs: -3, StreamTimeMs: 5, Key: []byte("k"),
			Value: []byte("v"), Headers: []Header{{"h", []byte("1")}, {"e", []byte{}}}},
		{Topic: "orders", Partition: 7, Offset: 1 << 40, TimestampMs: 9, StreamTimeMs: 9, Value: []byte{}},
	}
	if !reflect.DeepEqual(events, want) {
		t.Fatalf("decoded %+v, want %+v", events, want)
	}
	if events[1].Key != nil || events[1].Value == nil || events[0].Headers[1].Value == nil {
		t.Fatal("an absent key is nil, an empty value or header value is not")
	}
	// A handler that appends to what it was handed must not write over the next field.
	_ = append(events[0].Key, 'X')
	if string(events[0].Value) != "v" {
		t.Fatalf("an append to the key changed the value: %q", events[0].Value)
	}
}

func TestBatchesThatDoNotDecodeSaySo(t *testing.T) {
	batch := encodeBatch(0, []string{"in"}, []rawEvent{{topic: 0, key: []byte("key"), value: []byte("value")}})
	for cut := range len(batch) {
		if _, err := decodeBatch(batch[:cut]); err == nil || !strings.Contains(err.Error(), "does not decode") {
			t.Fatalf("a batch cut at %d of %d: %v", cut, len(batch), err)
		}
	}
	bad := encodeBatch(0, []string{"in"}, []rawEvent{{topic: 1}})
	if _, err := decodeBatch(bad); err == nil || !strings.Contains(err.Error(), "topic 1 of 1") {
		t.Fatalf("an event naming a missing topic: %v", err)
	}
}

// fakeImports is a host's state and the effects buffers it was handed.
type fakeImports struct {
	state   map[string][]byte
	reads   []string
	applied [][]byte
}

func (f *fakeImports) imports() batchImports {
	return batchImports{
		get: func(key string) ([]byte, bool) {
			f.reads = append(f.reads, key)
			value, ok := f.state[key]
			return bytes.Clone(value), ok
		},
		scan: func(prefix string, after *string, limit int) []Entry {
			return []Entry{{Key: fmt.Sprintf("%s after %v, %d buffers applied", prefix, after, len(f.applied))}}
		},
		apply: func(effects []byte) { f.applied = append(f.applied, bytes.Clone(effects)) },
	}
}

// callHost is a batchHost as a Context's Host, without logs or configuration.
type callHost struct{ *batchHost }

func (callHost) Log(Level, string)            {}
func (callHost) Config(string) (string, bool) { return "", false }

func TestACallReadsItsOwnWritesAndHandsItsEffectsOverOnce(t *testing.T) {
	fake := &fakeImports{state: map[string][]byte{"n": []byte("1"), "gone": []byte("x")}}
	host := newBatchHost(fake.imports())
	host.begin()
	ctx := NewContext(callHost{host}, 42)
	for range 3 {
		value, _ := ctx.Get("n")
		ctx.Set("n", append(value, '+'))
	}
	ctx.Delete("gone")
	if _, ok := ctx.Get("gone"); ok {
		t.Fatal("a deleted key reads as absent within the call")
	}
	ctx.Send(Output{Topic: "out", Key: []byte("k"), Headers: []Header{{"h", []byte("v")}}})
	ctx.ScheduleTimer("t", 99)
	ctx.CancelTimer("u")
	if len(fake.applied) != 0 {
		t.Fatal("effects are held until the call ends")
	}
	host.finish()
	if !reflect.DeepEqual(fake.reads, []string{"n"}) {
		t.Fatalf("each key crosses once per call: %v", fake.reads)
	}
	got := decodeEffects(t, fake.applied[0])
	want := []string{"set n=1+", "set n=1++", "set n=1+++", "delete gone",
		`send out "k" <none> h:"v" @42`, "schedule t@99", "cancel u"}
	if len(fake.applied) != 1 || !reflect.DeepEqual(got, want) {
		t.Fatalf("applied %d buffers: %q, want one: %q", len(fake.applied), got, want)
	}

	host.begin()
	ctx.Get("n")
	if !reflect.DeepEqual(fake.reads, []string{"n", "n"}) {
		t.Fatalf("a new call reads from the host again: %v", fake.reads)
	}
	host.finish()
	if len(fake.applied) != 1 {
		t.Fatal("a call without effects applies nothing")
	}
}

func TestReadValuesAreTheCallersOwn(t *testing.T) {
	host := newBatchHost((&fakeImports{state: map[string][]byte{"k": []byte("abc")}}).imports())
	host.begin()
	value, _ := host.Get("k")
	value[0] = 'X'
	written := []byte("new")
	host.Set("w", written)
	written[0] = 'X'
	if again, _ := host.Get("k"); string(again) != "abc" {
		t.Fatalf("changing a read value changed the cache: %q", again)
	}
	if again, _ := host.Get("w"); string(again) != "new" {
		t.Fatalf("changing a written value changed the cache: %q", again)
	}
}

func TestAScanSeesTheWritesBeforeIt(t *testing.T) {
	fake := &fakeImports{state: map[string][]byte{}}
	host := newBatchHost(fake.imports())
	host.begin()
	host.Set("a", []byte("1"))
	page := host.Scan("p", nil, 5)
	if page[0].Key != "p after <nil>, 1 buffers applied" {
		t.Fatalf("the held write reached the host before the scan: %v", page)
	}
}

func TestLargeCallsApplyAsTheyGo(t *testing.T) {
	fake := &fakeImports{state: map[string][]byte{}}
	host := newBatchHost(fake.imports())
	host.begin()
	value := make([]byte, 64<<10)
	for i := range 40 {
		host.Set(fmt.Sprint(i), value)
	}
	host.finish()
	total := 0
	for _, buf := range fake.applied {
		total += len(decodeEffects(t, buf))
	}
	if len(fake.applied) < 2 || total != 40 {
		t.Fatalf("%d buffers with %d effects, want several with 40", len(fake.applied), total)
	}
}
