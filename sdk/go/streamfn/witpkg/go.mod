// go.bytecodealliance.org/pkg v0.4.0 as shipped in the wit-bindgen-go 0.63.0 crate, copied
// into the Streamfn Go SDK (see README.md for what differs): the runtime support that the
// Go code wit-bindgen generates imports.
module go.bytecodealliance.org/pkg

go 1.25
