//! orders-per-hour: counts each customer's orders and units per hour, and reports every
//! hour once it has closed, to `order-analytics`. It reads the validated orders
//! (`orders-valid`, keyed by customer) and places each in the hour of its record time.
//!
//! Hours close on stream time, the largest record time the partition has seen, plus a
//! grace period (config `grace_ms`, default 5 minutes) for orders that arrive late; so a
//! replay closes the same hours with the same counts. An order that arrives after its
//! hour closed is rejected as late, to the dead-letter topic, rather than lost quietly.

use serde::{Deserialize, Serialize};
use streamfn::{Context, Event, Failure, Timer};

const VALID: &str = "orders-valid";
const ANALYTICS: &str = "order-analytics";

const HOUR_MS: i64 = 3_600_000;
const DEFAULT_GRACE_MS: i64 = 5 * 60_000;

/// State keys of open hours: `hour/CUSTOMER/START`.
const HOUR_PREFIX: &str = "hour/";

/// What this function reads of an `orders-valid` record.
#[derive(Debug, Deserialize)]
struct Order {
    order_id: String,
    customer_id: String,
    units: i32,
}

/// A customer's hour: the state of an open one, and the `order-analytics` record of a
/// closed one.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Hour {
    customer_id: String,
    window_start_ms: i64,
    window_end_ms: i64,
    orders: u64,
    units: i64,
}

/// Counts one order in its customer's hour.
pub fn handle(event: &Event, ctx: &mut Context) -> Result<(), Failure> {
    if event.topic != VALID {
        return Err(Failure::reject(format!(
            "orders-per-hour reads `{VALID}`, not `{}`",
            event.topic
        )));
    }
    let order: Order = event.json()?;
    let grace: i64 = ctx.config_or("grace_ms", DEFAULT_GRACE_MS)?;
    let start = event.timestamp_ms - event.timestamp_ms.rem_euclid(HOUR_MS);
    let end = start + HOUR_MS;
    if event.stream_time_ms >= end + grace {
        return Err(Failure::reject(format!(
            "order {} at {} is late: its hour [{start}, {end}) closed at stream time {}",
            order.order_id,
            event.timestamp_ms,
            end + grace
        )));
    }
    let key = format!("{HOUR_PREFIX}{}/{start}", order.customer_id);
    let mut hour = match ctx.get_json::<Hour>(&key)? {
        Some(hour) => hour,
        None => {
            ctx.schedule_timer(&key, end + grace);
            Hour {
                customer_id: order.customer_id,
                window_start_ms: start,
                window_end_ms: end,
                orders: 0,
                units: 0,
            }
        }
    };
    hour.orders += 1;
    hour.units += i64::from(order.units);
    ctx.set_json(&key, &hour);
    Ok(())
}

/// Reports an hour that closed, and forgets it.
pub fn on_timer(timer: &Timer, ctx: &mut Context) -> Result<(), Failure> {
    let Some(key) = timer.key_str().filter(|k| k.starts_with(HOUR_PREFIX)) else {
        return Err(Failure::reject(format!(
            "orders-per-hour schedules no timer {:?}",
            String::from_utf8_lossy(&timer.key)
        )));
    };
    if let Some(hour) = ctx.get_json::<Hour>(key)? {
        ctx.emit_json(ANALYTICS, Some(&hour.customer_id), &hour);
        ctx.delete(key);
    }
    Ok(())
}

streamfn::export!(handle, timers = on_timer);

#[cfg(test)]
mod tests {
    use serde_json::json;
    use streamfn::testing::TestHost;

    use super::*;

    fn order(id: &str, customer: &str, units: i32) -> String {
        json!({"order_id": id, "customer_id": customer, "units": units, "total": "1.00"})
            .to_string()
    }

    fn deliver(
        host: &mut TestHost,
        id: &str,
        customer: &str,
        units: i32,
        at: i64,
    ) -> Result<(), Failure> {
        host.deliver(
            handle,
            on_timer,
            VALID,
            Some(customer),
            &order(id, customer, units),
            at,
        )
    }

    #[test]
    fn an_hour_is_reported_once_stream_time_passes_it_and_its_grace() {
        let mut host = TestHost::new().with_config("grace_ms", "60000");
        deliver(&mut host, "o-1", "c-1", 2, 10 * 60_000).expect("counted");
        deliver(&mut host, "o-2", "c-1", 1, 50 * 60_000).expect("counted");
        deliver(&mut host, "o-3", "c-2", 5, 59 * 60_000).expect("counted");
        // The next hour opens; the first is still in its grace.
        deliver(&mut host, "o-4", "c-1", 1, HOUR_MS + 30_000).expect("counted");
        assert!(host.outputs().is_empty());
        // Stream time passes the first hour's grace: both customers' first hours close.
        deliver(&mut host, "o-5", "c-2", 1, HOUR_MS + 60_000).expect("counted");
        let hours: Vec<Hour> = host.outputs_json(ANALYTICS);
        assert_eq!(
            hours,
            [
                Hour {
                    customer_id: "c-1".into(),
                    window_start_ms: 0,
                    window_end_ms: HOUR_MS,
                    orders: 2,
                    units: 3
                },
                Hour {
                    customer_id: "c-2".into(),
                    window_start_ms: 0,
                    window_end_ms: HOUR_MS,
                    orders: 1,
                    units: 5
                },
            ]
        );
        assert_eq!(host.state_len(), 2, "only the open hours are kept");
    }

    #[test]
    fn an_order_after_its_hour_closed_is_rejected_as_late() {
        let mut host = TestHost::new().with_config("grace_ms", "0");
        deliver(&mut host, "o-1", "c-1", 1, HOUR_MS + 1).expect("counted");
        let err = deliver(&mut host, "o-2", "c-1", 1, 10).expect_err("late");
        assert!(err.reason().contains("late"), "{}", err.reason());
    }
}
