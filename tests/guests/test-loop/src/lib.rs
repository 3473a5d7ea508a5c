//! Test guest: spins forever on events whose value is `loop`, forwards the rest to `out`
//! (or the topic in config `to`).

use streamfn::{Context, Event, Failure};

/// Loops on `loop`, forwards anything else.
pub fn handle(event: &Event, ctx: &mut Context) -> Result<(), Failure> {
    let to = ctx.config("to").unwrap_or_else(|| "out".to_owned());
    if event.value_str() == Some("loop") {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
    ctx.emit(
        &to,
        event.key.as_deref(),
        event.value.as_deref().unwrap_or_default(),
    );
    Ok(())
}

streamfn::export!(handle);
