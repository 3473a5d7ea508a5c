//! Test guest: rejects events whose value is `reject`, asks for a retry on `retry`, and
//! forwards the rest to `out` (or the topic in config `to`) as `value#count`, count being
//! the number of events counted in state. A rejected or retried event also counts and
//! emits before failing, so the count shows whether the host discarded those effects.

use streamfn::{Context, Event, Failure};

/// Rejects `reject`, retries `retry`, forwards and counts anything else.
pub fn handle(event: &Event, ctx: &mut Context) -> Result<(), Failure> {
    let to = ctx.config("to").unwrap_or_else(|| "out".to_owned());
    let count: u64 = ctx.get_json("count")?.unwrap_or(0);
    ctx.set_json("count", &(count + 1));
    let value = event.value_str().unwrap_or_default();
    ctx.emit(&to, event.key.as_deref(), format!("{value}#{}", count + 1));
    match event.value_str() {
        Some("reject") => {
            ctx.warn(format!("rejecting offset {}", event.offset));
            Err(Failure::reject(format!(
                "offset {} is not acceptable",
                event.offset
            )))
        }
        Some("retry") => Err(Failure::retry("downstream not ready")),
        _ => Ok(()),
    }
}

streamfn::export!(handle);

#[cfg(test)]
mod tests {
    use streamfn::testing::TestHost;

    use super::*;

    #[test]
    fn rejected_events_leave_no_effects() {
        let mut host = TestHost::new();
        for value in ["a", "reject", "b", "retry"] {
            let event = host.event("in", None, value, 1);
            let _ = host.handle(handle, &event);
        }
        assert_eq!(host.state_json::<u64>("count"), Some(2));
        let values: Vec<&[u8]> = host
            .outputs()
            .iter()
            .filter_map(|o| o.value.as_deref())
            .collect();
        assert_eq!(values, vec![&b"a#1"[..], b"b#2"]);
    }
}
