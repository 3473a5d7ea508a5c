//! Host-side bindings of the `streamfn:function` worlds, generated from `wit/`: 0.1.0,
//! whose types the host also uses for events and outcomes, and 0.2.0 beside it.

#![allow(missing_docs)]

wasmtime::component::bindgen!({
    world: "function",
    path: "../wit/0.1.0",
    imports: { default: trappable },
    additional_derives: [PartialEq],
});

pub use self::exports::streamfn::function::handler::Guest as Handler;
pub use self::streamfn::function::types::{Event, FiredTimer, Header, Outcome};

/// The 0.2.0 world: a batch crosses in one buffer and its effects in few.
pub mod v0_2 {
    wasmtime::component::bindgen!({
        world: "function",
        path: "../wit/0.2.0",
        imports: { default: trappable },
    });
}
