// The WIT option type for generated bindings.
// Part of go.bytecodealliance.org/pkg v0.4.0, Streamfn's copy: see ../../README.md.

package wit_types

const (
	OptionNone = 0
	OptionSome = 1
)

type Option[T any] struct {
	tag   uint8
	value T
}

func (self Option[T]) Tag() uint8 {
	return self.tag
}

func (self Option[T]) Some() T {
	if self.tag != OptionSome {
		panic("tag mismatch")
	}
	return self.value
}

func (self Option[T]) SomeOr(value T) T {
	if self.tag != OptionSome {
		return value
	} else {
		return self.value
	}
}

func (self Option[T]) IsSome() bool {
	return self.tag == OptionSome
}

func (self Option[T]) IsNone() bool {
	return self.tag == OptionNone
}

func None[T any]() Option[T] {
	// Streamfn's copy: the zero value without make([]T, 1), which allocated on every call.
	var zero T
	return Option[T]{OptionNone, zero}
}

func Some[T any](value T) Option[T] {
	return Option[T]{OptionSome, value}
}
