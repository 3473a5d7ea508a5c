//! Host-side bindings of the `streamfn:function` world, generated from `wit/`.

#![allow(missing_docs)]

wasmtime::component::bindgen!({
    world: "function",
    path: "../wit",
    imports: { default: trappable },
});

pub use self::exports::streamfn::function::handler::Guest as Handler;
pub use self::streamfn::function::types::{Event, FiredTimer, Header, Outcome};
