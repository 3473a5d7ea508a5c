//! Test guest: on `undeclared` emits to a topic its deployment does not declare, on
//! `flood` emits far more records than allowed per event, on `state N` writes a state
//! value of N bytes under the event's key; forwards the rest to `out` (or the topic in
//! config `to`).

use streamfn::{Context, Event, Failure};

/// Misbehaves on `undeclared`, `flood` and `state N`, forwards anything else.
pub fn handle(event: &Event, ctx: &mut Context) -> Result<(), Failure> {
    let to = ctx.config("to").unwrap_or_else(|| "out".to_owned());
    match event.value_str() {
        Some("undeclared") => ctx.emit("not-declared", None, b"escaped"),
        Some(command) if command.starts_with("state ") => {
            let size: usize = command["state ".len()..]
                .parse()
                .map_err(|_| Failure::reject("state takes a size"))?;
            let key = event.key.clone().unwrap_or_default();
            ctx.set(&key, vec![b'x'; size]);
            ctx.emit(&to, event.key.as_deref(), b"stored");
        }
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
