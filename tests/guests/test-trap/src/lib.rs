//! Test guest: panics (a trap) on events whose value is `trap`, forwards the rest to `out`
//! (or the topic in config `to`).

use streamfn::{Context, Event, Failure};

/// Traps on `trap`, forwards anything else.
pub fn handle(event: &Event, ctx: &mut Context) -> Result<(), Failure> {
    let to = ctx.config("to").unwrap_or_else(|| "out".to_owned());
    ctx.set("seen", event.offset.to_string());
    if event.value_str() == Some("trap") {
        panic!("poison record at offset {}", event.offset);
    }
    ctx.emit(
        &to,
        event.key.as_deref(),
        event.value.as_deref().unwrap_or_default(),
    );
    Ok(())
}

streamfn::export!(handle);
