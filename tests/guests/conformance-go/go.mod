// The conformance function in Go (tests/conformance/SPEC.md), built against the SDK in
// this repository.
module conformance-go

go 1.25

require (
	go.bytecodealliance.org/pkg v0.4.0 // indirect
	streamfn.dev/streamfn v0.1.0
)

replace (
	go.bytecodealliance.org/pkg => ../../../sdk/go/streamfn/witpkg
	streamfn.dev/streamfn => ../../../sdk/go/streamfn
)
