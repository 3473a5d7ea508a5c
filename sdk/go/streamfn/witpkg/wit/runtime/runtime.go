// Canonical-ABI runtime support for the Go code wit-bindgen generates: handles, buffers
// shared with the host, and cabi_realloc. Streamfn's copy: see ../../README.md for what
// differs from go.bytecodealliance.org/pkg v0.4.0 and why.

package runtime

import (
	"fmt"
	"unsafe"
)

type Handle struct {
	value int32
}

func (h *Handle) Use() int32 {
	if h.value == 0 {
		panic("nil handle")
	}
	return h.value
}

func (h *Handle) Take() int32 {
	if h.value == 0 {
		panic("nil handle")
	}
	value := h.value
	h.value = 0
	return value
}

func (h *Handle) Set(value int32) {
	if value == 0 {
		panic("nil handle")
	}
	if h.value != 0 {
		panic("handle already set")
	}
	h.value = value
}

func (h *Handle) TakeOrNil() int32 {
	value := h.value
	h.value = 0
	return value
}

func MakeHandle(value int32) *Handle {
	if value == 0 {
		panic("nil handle")
	}
	return &Handle{value}
}

// Pinner stands in for runtime.Pinner in the generated bindings (the build points their
// `runtime` import here). What they need from it is that memory whose address they hand to
// the host as an integer stays allocated until the host is done with it: Go's heap never
// moves objects, and a wasip1 program has one thread, so holding a reference is enough,
// and a few words on the stack cost far less than runtime.Pinner's per-object pin records
// (about 4,000 instructions of fuel per pinned object, which dominated a Go function's
// cost per event).
type Pinner struct {
	inline [6]any
	n      int
	more   []any
}

// Pin keeps v, a pointer, reachable until Unpin.
func (p *Pinner) Pin(v any) {
	if p.n < len(p.inline) {
		p.inline[p.n] = v
		p.n++
		return
	}
	p.more = append(p.more, v)
}

// Unpin drops every reference Pin took.
func (p *Pinner) Unpin() {
	clear(p.inline[:p.n])
	p.n = 0
	clear(p.more)
	p.more = p.more[:0]
}

func Allocate(pinner *Pinner, size, align uintptr) unsafe.Pointer {
	pointer := allocateRaw(size, align)
	pinner.Pin(pointer)
	return pointer
}

func allocateRaw(size, align uintptr) unsafe.Pointer {
	if size == 0 {
		return nil
	}

	if size%align != 0 {
		panic(fmt.Sprintf("size %v is not compatible with alignment %v", size, align))
	}

	switch align {
	case 1:
		return unsafe.Pointer(unsafe.SliceData(make([]uint8, size)))
	case 2:
		return unsafe.Pointer(unsafe.SliceData(make([]uint16, size/align)))
	case 4:
		return unsafe.Pointer(unsafe.SliceData(make([]uint32, size/align)))
	case 8:
		return unsafe.Pointer(unsafe.SliceData(make([]uint64, size/align)))
	default:
		panic(fmt.Sprintf("unsupported alignment: %v", align))
	}
}

// NB: `cabi_realloc` may be called before the Go runtime has been initialized,
// in which case we need to use `runtime.sbrk` to do allocations.  The following
// is an abbreviation of [Till's
// efforts](https://github.com/bytecodealliance/go-modules/pull/367).
//
// Those early blocks are never freed: the WASI adapter allocates its state with
// cabi_realloc on its first call, which Go's runtime makes while it starts.

//go:linkname sbrk runtime.sbrk
func sbrk(n uintptr) unsafe.Pointer

// initialized is set once packages initialize; from then on cabi_realloc serves the
// host from the scratch area.
var initialized = false

func init() {
	initialized = true
}

//nolint:unused
func offset(ptr, align uintptr) uintptr {
	newptr := (ptr + align - 1) &^ (align - 1)
	return newptr - ptr
}

// Unpin does nothing: what cabi_realloc hands out lives in the scratch area until
// ResetScratch. The generated exports call it once their arguments are lifted.
func Unpin() {}

// The scratch area: memory for cabi_realloc outside the Go heap, in chunks taken with sbrk
// and reused after every ResetScratch. The Go allocator must not run inside cabi_realloc:
// an allocation there may start or assist a garbage collection, which can call into the
// host (to yield or sleep), and the component model forbids calls out of a component
// while it is inside cabi_realloc, so the call traps. That failed about one event in four
// under a workload that allocates as much as it reads.
//
// Each chunk begins with a chunkHeader. Addresses are kept as uintptr: the collector has
// nothing to do with this memory.
type chunkHeader struct {
	next uintptr
	size uintptr
}

const (
	headerSize = unsafe.Sizeof(chunkHeader{})
	chunkSize  = 1 << 20
)

var (
	firstChunk uintptr
	chunk      uintptr // the chunk being filled
	chunkUsed  uintptr // bytes of it in use, header included
)

// ResetScratch makes the whole scratch area free again. Call it only when no Go value
// refers to memory cabi_realloc returned: the SDK copies out what it keeps and calls it
// at the end of every export call.
func ResetScratch() {
	chunk = firstChunk
	chunkUsed = headerSize
}

func header(at uintptr) *chunkHeader {
	return (*chunkHeader)(unsafe.Pointer(at))
}

// scratch is size bytes aligned to align, or nil when memory cannot grow.
func scratch(size, align uintptr) unsafe.Pointer {
	for chunk != 0 {
		start := chunk + chunkUsed
		start += offset(start, align)
		if start+size <= chunk+header(chunk).size {
			chunkUsed = start + size - chunk
			return unsafe.Pointer(start)
		}
		if header(chunk).next == 0 {
			break
		}
		chunk = header(chunk).next
		chunkUsed = headerSize
	}
	n := max(chunkSize, headerSize+size+align)
	fresh := uintptr(sbrk(n))
	if fresh == 0 {
		return nil
	}
	*header(fresh) = chunkHeader{size: n}
	if chunk == 0 {
		firstChunk = fresh
	} else {
		header(chunk).next = fresh
	}
	chunk = fresh
	chunkUsed = headerSize
	return scratch(size, align)
}

//nolint:unused
//go:wasmexport cabi_realloc
func cabiRealloc(oldPointer unsafe.Pointer, oldSize, align, newSize uintptr) unsafe.Pointer {
	if oldPointer != nil || oldSize != 0 {
		panic("todo")
	}

	if initialized {
		if newSize == 0 {
			return nil
		}
		return scratch(newSize, align)
	} else {
		alignedSize := newSize + offset(newSize, align)
		unaligned := sbrk(alignedSize)
		off := offset(uintptr(unaligned), align)
		return unsafe.Add(unaligned, off)
	}
}
