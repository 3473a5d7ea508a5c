//! Forwards every event unchanged to the output topic named by config `to` (default
//! `out`), adding a `tag` header when config `tag` is set. The baseline of the benchmarks
//! and the function the delivery tests count records with.

use streamfn::{Context, Event, Failure, Output};

/// Forwards one event.
pub fn handle(event: &Event, ctx: &mut Context) -> Result<(), Failure> {
    let topic = ctx.config("to").unwrap_or_else(|| "out".to_owned());
    let mut output = Output::new(topic);
    output.key = event.key.clone();
    output.value = event.value.clone();
    output.headers = event.headers.clone();
    if let Some(tag) = ctx.config("tag") {
        output = output.header("tag", tag);
    }
    ctx.send(&output);
    Ok(())
}

streamfn::export!(handle);

#[cfg(test)]
mod tests {
    use streamfn::testing::TestHost;

    use super::*;

    #[test]
    fn forwards_key_value_and_tag() {
        let mut host = TestHost::new().with_config("tag", "v2");
        let event = host.event("in", Some("k"), "hello", 5);
        handle(&event, &mut streamfn::Context::new(&mut host)).expect("forwarded");
        let out = &host.outputs()[0];
        assert_eq!(out.topic, "out");
        assert_eq!(out.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(out.value.as_deref(), Some(&b"hello"[..]));
        assert_eq!(out.headers[0].key, "tag");
    }
}
