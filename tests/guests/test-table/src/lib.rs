//! Test guest: a table. Keeps each key's latest value in state (as a KTable
//! materializes a topic) and emits `key:N` to the topic config `to` names (`out` by
//! default) for every event, N being how many values the key has had, so the state
//! grows with the values given and the outputs show whether a value was lost or applied
//! twice.

use streamfn::{Context, Event, Failure};

/// The state key of how many values `key` has had.
fn count_key(key: &str) -> String {
    format!("#{key}")
}

/// Keeps the event's value under its key and reports how many the key has had.
pub fn handle(event: &Event, ctx: &mut Context) -> Result<(), Failure> {
    let key = event.key_str().unwrap_or("-").to_owned();
    let count: u64 = ctx.get_json(&count_key(&key))?.unwrap_or(0) + 1;
    ctx.set_json(&count_key(&key), &count);
    ctx.set(&key, event.value.as_deref().unwrap_or_default());
    let to = ctx.config("to").unwrap_or_else(|| "out".to_owned());
    ctx.emit(&to, Some(key.as_bytes()), format!("{key}:{count}"));
    Ok(())
}

streamfn::export!(handle);

#[cfg(test)]
mod tests {
    use streamfn::testing::TestHost;

    use super::*;

    #[test]
    fn keeps_the_latest_value_and_counts_them() {
        let mut host = TestHost::new();
        for (key, value) in [("a", "1"), ("b", "2"), ("a", "3")] {
            let event = host.event("in", Some(key), value, 1);
            host.handle(handle, &event).expect("kept");
        }
        assert_eq!(host.state_json::<u64>("a"), Some(3));
        assert_eq!(host.state_json::<u64>("b"), Some(2));
        let values: Vec<&[u8]> = host
            .outputs()
            .iter()
            .filter_map(|o| o.value.as_deref())
            .collect();
        assert_eq!(values, vec![&b"a:1"[..], b"b:1", b"a:2"]);
    }
}
