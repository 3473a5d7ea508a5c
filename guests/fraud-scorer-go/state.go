// The per-customer state's binary form: read and written on every transaction, so it is
// a few dozen bytes of varints rather than JSON, which would cost a reflection pass each
// way. No other tool reads it.

package main

import (
	"encoding/binary"
	"errors"
	"math"

	"streamfn.dev/streamfn"
)

// stateVersion is the first byte of every customer value, so that a later layout can
// tell an old one apart.
const stateVersion = 1

func loadCustomer(ctx *streamfn.Context, key string) (customer, error) {
	raw, ok := ctx.Get(key)
	if !ok {
		return customer{}, nil
	}
	c, err := decodeCustomer(raw)
	if err != nil {
		return customer{}, streamfn.Rejectf("state key %q does not hold the expected value: %v", key, err)
	}
	return c, nil
}

func (c *customer) appendBinary(b []byte) []byte {
	b = append(b, stateVersion)
	if c.profile == nil {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = appendString(b, c.profile.homeCountry)
		b = append(b, byte(c.profile.riskTier))
		b = binary.AppendUvarint(b, uint64(c.profile.accountAgeDays))
	}
	h := &c.history
	b = binary.AppendUvarint(b, h.count)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(h.mean))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(h.m2))
	b = binary.AppendVarint(b, h.firstMs)
	b = binary.AppendVarint(b, h.lastMs)
	b = binary.AppendUvarint(b, uint64(len(h.recent)))
	for _, r := range h.recent {
		b = binary.AppendVarint(b, r.timestampMs)
		b = append(b, boolByte(r.probe))
	}
	b = binary.AppendUvarint(b, uint64(len(h.countries)))
	for _, country := range h.countries {
		b = appendString(b, country)
	}
	b = binary.AppendUvarint(b, uint64(len(h.merchants)))
	for _, tag := range h.merchants {
		b = binary.LittleEndian.AppendUint32(b, tag)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

var errTruncated = errors.New("truncated")

// reader decodes what appendBinary wrote; the first failure sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) byte() byte {
	if r.err != nil || len(r.b) < 1 {
		r.err = errTruncated
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if r.err != nil || n <= 0 {
		r.err = errTruncated
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if r.err != nil || n <= 0 {
		r.err = errTruncated
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) fixed(size int) []byte {
	if r.err != nil || len(r.b) < size {
		r.err = errTruncated
		return make([]byte, size)
	}
	v := r.b[:size]
	r.b = r.b[size:]
	return v
}

func (r *reader) float() float64 {
	return math.Float64frombits(binary.LittleEndian.Uint64(r.fixed(8)))
}

func (r *reader) string() string {
	return string(r.fixed(int(r.length())))
}

// length is a count of what follows, which can be no more than the bytes left.
func (r *reader) length() uint64 {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.err = errTruncated
		return 0
	}
	return n
}

func decodeCustomer(raw []byte) (customer, error) {
	r := &reader{b: raw}
	if version := r.byte(); r.err == nil && version != stateVersion {
		return customer{}, errors.New("unknown version")
	}
	var c customer
	if r.byte() == 1 {
		c.profile = &profile{homeCountry: r.string(), riskTier: riskTier(r.byte()), accountAgeDays: uint32(r.uvarint())}
	}
	h := &c.history
	h.count = r.uvarint()
	h.mean = r.float()
	h.m2 = r.float()
	h.firstMs = r.varint()
	h.lastMs = r.varint()
	h.recent = make([]recentTx, r.length())
	for i := range h.recent {
		h.recent[i] = recentTx{timestampMs: r.varint(), probe: r.byte() == 1}
	}
	h.countries = make([]string, r.length())
	for i := range h.countries {
		h.countries[i] = r.string()
	}
	h.merchants = make([]uint32, r.length())
	for i := range h.merchants {
		h.merchants[i] = binary.LittleEndian.Uint32(r.fixed(4))
	}
	if r.err == nil && len(r.b) > 0 {
		r.err = errors.New("trailing bytes")
	}
	return c, r.err
}
