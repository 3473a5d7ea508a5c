//! Test guest: on events whose value is `grow`, allocates memory until the host says no;
//! forwards the rest to `out` (or the topic in config `to`).

use streamfn::{Context, Event, Failure};

/// Grows without bound on `grow`, forwards anything else.
pub fn handle(event: &Event, ctx: &mut Context) -> Result<(), Failure> {
    let to = ctx.config("to").unwrap_or_else(|| "out".to_owned());
    if event.value_str() == Some("grow") {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![1u8; 1 << 20]);
            std::hint::black_box(&hoard);
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
