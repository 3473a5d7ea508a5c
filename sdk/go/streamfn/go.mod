// The Streamfn Go SDK. `fnctl new --lang go` copies it into a project (.streamfn/go), whose
// go.mod points at the copy with a replace directive: it is never fetched.
module streamfn.dev/streamfn

go 1.25

require go.bytecodealliance.org/pkg v0.4.0

replace go.bytecodealliance.org/pkg => ./witpkg
