// {{name}}: a Streamfn function in Go; `fnctl build` makes {{name}}.wasm of it.
module {{name}}

go 1.25

require (
	go.bytecodealliance.org/pkg v0.4.0 // indirect
	streamfn.dev/streamfn v0.1.0
)

// fnctl new copied the SDK (and the component-model runtime its generated bindings use)
// into .streamfn/go: nothing is fetched.
replace (
	go.bytecodealliance.org/pkg => ./.streamfn/go/witpkg
	streamfn.dev/streamfn => ./.streamfn/go
)
