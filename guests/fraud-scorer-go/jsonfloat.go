// Numbers in alerts written the way the Rust version's serde_json writes them, so that
// both builds send the same bytes: 520.0 rather than Go's 520.

package main

import (
	"strconv"
	"strings"
)

// jsonFloat is a float64 that marshals to JSON as serde_json (Rust's ryu) does: the
// shortest digits that read back as the same number, in plain notation with at least one
// decimal when its magnitude is in [1e-5, 1e16), and as d.ddde±x outside it.
type jsonFloat float64

// MarshalJSON implements json.Marshaler.
func (f jsonFloat) MarshalJSON() ([]byte, error) {
	return []byte(formatFloat(float64(f))), nil
}

func formatFloat(f float64) string {
	if f == 0 {
		if strconv.FormatFloat(f, 'g', -1, 64)[0] == '-' {
			return "-0.0"
		}
		return "0.0"
	}
	var sign string
	if f < 0 {
		sign, f = "-", -f
	}
	// Shortest round-trip digits and exponent: "d.ddde±xx" holds v = d.ddd × 10^exp.
	scientific := strconv.FormatFloat(f, 'e', -1, 64)
	mantissa, exponent, _ := strings.Cut(scientific, "e")
	digits := strings.Replace(mantissa, ".", "", 1)
	exp, _ := strconv.Atoi(exponent)
	length := len(digits)
	point := exp + 1 // digits before the decimal point: 10^(point-1) <= v < 10^point
	switch {
	case point >= length && point <= 16:
		return sign + digits + strings.Repeat("0", point-length) + ".0"
	case point > 0 && point <= 16:
		return sign + digits[:point] + "." + digits[point:]
	case point > -5 && point <= 0:
		return sign + "0." + strings.Repeat("0", -point) + digits
	case length == 1:
		return sign + digits + "e" + strconv.Itoa(exp)
	default:
		return sign + digits[:1] + "." + digits[1:] + "e" + strconv.Itoa(exp)
	}
}
