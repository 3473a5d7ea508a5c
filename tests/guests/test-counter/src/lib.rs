//! Test guest: counts events per key in state and emits `key:count` to the topic config
//! `to` names (`out` by default) for every event, so the outputs show whether any state
//! change was lost or applied twice. With config `label`, each output carries it in a
//! `label` header, so outputs show which deployment wrote them.

use streamfn::{Context, Event, Failure, Output};

/// Counts the event's key and reports the new count.
pub fn handle(event: &Event, ctx: &mut Context) -> Result<(), Failure> {
    let key = event.key_str().unwrap_or("-").to_owned();
    let count: u64 = ctx.get_json(&key)?.unwrap_or(0) + 1;
    ctx.set_json(&key, &count);
    let to = ctx.config("to").unwrap_or_else(|| "out".to_owned());
    let mut output = Output::new(to).key(&key).value(format!("{key}:{count}"));
    if let Some(label) = ctx.config("label") {
        output = output.header("label", label);
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
    fn counts_per_key() {
        let mut host = TestHost::new();
        for key in ["a", "b", "a"] {
            let event = host.event("in", Some(key), "x", 1);
            host.handle(handle, &event).expect("counted");
        }
        let values: Vec<&[u8]> = host
            .outputs()
            .iter()
            .filter_map(|o| o.value.as_deref())
            .collect();
        assert_eq!(values, vec![&b"a:1"[..], b"b:1", b"a:2"]);
    }
}
