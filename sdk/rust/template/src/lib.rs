//! {{name}}: a Streamfn function. It counts the events of each key in state and emits
//! `{"key": ..., "count": ...}` to the topic named by config `to` (default `out`).
//! Build with `fnctl build`; test with `cargo test`.

use serde::Serialize;
use streamfn::{Context, Event, Failure};

#[derive(Serialize)]
struct Count<'a> {
    key: &'a str,
    count: u64,
}

/// Handles one event.
pub fn handle(event: &Event, ctx: &mut Context) -> Result<(), Failure> {
    let key = event.key_str().unwrap_or("-");
    let count: u64 = ctx.get_json(key)?.unwrap_or(0) + 1;
    ctx.set_json(key, &count);
    let to = ctx.config("to").unwrap_or_else(|| "out".to_owned());
    ctx.emit_json(&to, Some(key), &Count { key, count });
    Ok(())
}

streamfn::export!(handle);

#[cfg(test)]
mod tests {
    use streamfn::testing::TestHost;

    use super::*;

    #[test]
    fn counts_each_key() {
        let mut host = TestHost::new();
        for key in ["a", "b", "a"] {
            let event = host.event("in", Some(key), "{}", 1);
            host.handle(handle, &event).expect("handled");
        }
        let counts: Vec<serde_json::Value> = host.outputs_json("out");
        assert_eq!(counts[2], serde_json::json!({"key": "a", "count": 2}));
    }
}
