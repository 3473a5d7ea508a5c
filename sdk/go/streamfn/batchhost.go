// The host of contract 0.2.0 as a call sees it: state reads served from a cache of what
// the call read and wrote, and writes, records and timers held in one buffer that goes to
// the host in one effects.apply. Plain Go over the imports it is given (wasm_v0_2.go
// gives the component's), so it is tested natively.

package streamfn

import "bytes"

// heldEffects is the size at which held effects are applied, so a call that writes a lot
// does not keep it all in guest memory.
const heldEffects = 1 << 20

// batchImports is what batchHost needs of the component's imports.
type batchImports struct {
	// get is state.get; its value is the caller's own.
	get func(key string) ([]byte, bool)
	// scan is state.scan; its entries are the caller's own.
	scan func(prefix string, after *string, limit int) []Entry
	// apply is effects.apply.
	apply func(effects []byte)
}

// cached is a state value as the call under way sees it.
type cached struct {
	value []byte
	ok    bool
}

type batchHost struct {
	imports batchImports
	cache   map[string]cached
	held    effectWriter
}

func newBatchHost(imports batchImports) *batchHost {
	return &batchHost{imports: imports, cache: make(map[string]cached)}
}

// begin starts a call: what an earlier call read or held belongs to it alone.
func (h *batchHost) begin() {
	clear(h.cache)
	h.held.buf = h.held.buf[:0]
}

// finish ends a call that returns: hands the host what it holds.
func (h *batchHost) finish() {
	if len(h.held.buf) > 0 {
		h.imports.apply(h.held.buf)
		h.held.buf = h.held.buf[:0]
	}
}

func (h *batchHost) hold() {
	if len(h.held.buf) >= heldEffects {
		h.finish()
	}
}

// Get is the value under key, read from the host at most once per call. The caller gets
// its own copy: a handler may change what it is handed.
func (h *batchHost) Get(key string) ([]byte, bool) {
	entry, seen := h.cache[key]
	if !seen {
		entry.value, entry.ok = h.imports.get(key)
		h.cache[key] = entry
	}
	if !entry.ok {
		return nil, false
	}
	return bytes.Clone(entry.value), true
}

func (h *batchHost) Set(key string, value []byte) {
	h.held.set(key, value)
	h.cache[key] = cached{value: bytes.Clone(value), ok: true}
	h.hold()
}

func (h *batchHost) Delete(key string) {
	h.held.delete(key)
	h.cache[key] = cached{}
	h.hold()
}

// Scan hands the host what the call holds first: the host merges it with what is stored.
func (h *batchHost) Scan(prefix string, after *string, limit int) []Entry {
	h.finish()
	return h.imports.scan(prefix, after, limit)
}

func (h *batchHost) Send(output *Output) {
	h.held.send(output)
	h.hold()
}

func (h *batchHost) Schedule(key string, atMs int64) {
	h.held.schedule(key, atMs)
	h.hold()
}

func (h *batchHost) Cancel(key string) {
	h.held.cancel(key)
	h.hold()
}
