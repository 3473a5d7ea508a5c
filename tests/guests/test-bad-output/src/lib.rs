//! Test guest: on `undeclared` emits to a topic its deployment does not declare, on
//! `flood` emits far more records than allowed per event; forwards the rest to `out` (or the topic in config `to`).

use streamfn::{Context, Event, Failure};

/// Misbehaves on `undeclared` and `flood`, forwards anything else.
pub fn handle(event: &Event, ctx: &mut Context) -> Result<(), Failure> {
    let to = ctx.config("to").unwrap_or_else(|| "out".to_owned());
    match event.value_str() {
        Some("undeclared") => ctx.emit("not-declared", None, b"escaped"),
        Some("flood") => {
            for i in 0..100_000u32 {
                ctx.emit(&to, None, i.to_string());
            }
        }
        _ => ctx.emit(
            &to,
            event.key.as_deref(),
            event.value.as_deref().unwrap_or_default(),
        ),
    }
    Ok(())
}

streamfn::export!(handle);
