// The WIT unit type for generated bindings.
// Part of go.bytecodealliance.org/pkg v0.4.0, Streamfn's copy: see ../../README.md.

package wit_types

type Unit struct{}
