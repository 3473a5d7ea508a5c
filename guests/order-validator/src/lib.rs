//! order-validator: checks every order against the shop's rules and passes the valid
//! ones on. An invalid order is rejected with the rule it breaks, so it lands on the
//! dead-letter topic with the reason in its headers, where the shop's support team picks
//! it up; the orders around it go on.
//!
//! Input `orders`, keyed by customer: Avro through the schema registry, which the host
//! hands over as JSON (a decimal as a string with its scale, `"12.30"`). Outputs:
//! `orders-valid`, the order with its total and unit count, keyed by customer (Avro with
//! the schema it is deployed with), and `order-lines`, one record per item keyed by SKU,
//! for the inventory updater (the repartition pattern: stock is kept per product, orders
//! arrive per customer).
//!
//! A customer's order id seen again within `dedup_window_ms` of stream time (a client's
//! retry, a double click) is rejected as a duplicate; the ids are forgotten after it.

use serde::{Deserialize, Serialize};
use streamfn::{Context, Event, Failure, Timer};

const ORDERS: &str = "orders";
const VALID: &str = "orders-valid";
const LINES: &str = "order-lines";

/// Currencies accepted unless config `currencies` (comma-separated) says otherwise.
const DEFAULT_CURRENCIES: &str = "EUR,USD,GBP";
/// Most units of one item, unless config `max_quantity` says.
const DEFAULT_MAX_QUANTITY: u32 = 100;
/// Most items of one order, unless config `max_items` says.
const DEFAULT_MAX_ITEMS: usize = 50;
/// How long an order id is remembered, unless config `dedup_window_ms` says: a day.
const DEFAULT_DEDUP_WINDOW_MS: i64 = 24 * 3_600_000;

/// State keys of order ids seen, and the timers that forget them.
const SEEN_PREFIX: &str = "seen/";

/// An `orders` record.
#[derive(Debug, Deserialize)]
pub struct Order {
    order_id: String,
    customer_id: String,
    created_at: i64,
    currency: String,
    items: Vec<Item>,
    #[serde(default)]
    shipping_country: Option<String>,
}

/// A line of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    sku: String,
    quantity: i32,
    /// A decimal with two places, as the host reads Avro's decimal.
    unit_price: String,
}

/// An `orders-valid` record.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct ValidOrder {
    order_id: String,
    customer_id: String,
    created_at: i64,
    currency: String,
    items: Vec<Item>,
    shipping_country: Option<String>,
    /// The sum of the items' prices, with two places.
    total: String,
    /// The units of all items.
    units: i32,
}

/// An `order-lines` record.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct OrderLine {
    order_id: String,
    customer_id: String,
    sku: String,
    quantity: i32,
    created_at: i64,
}

/// Validates one order.
pub fn handle(event: &Event, ctx: &mut Context) -> Result<(), Failure> {
    if event.topic != ORDERS {
        return Err(Failure::reject(format!(
            "order-validator reads `{ORDERS}`, not `{}`",
            event.topic
        )));
    }
    let order: Order = event.json()?;
    let (total_cents, units) = check(&order, ctx)?;
    remember(&order, event, ctx)?;
    for item in &order.items {
        let line = OrderLine {
            order_id: order.order_id.clone(),
            customer_id: order.customer_id.clone(),
            sku: item.sku.clone(),
            quantity: item.quantity,
            created_at: order.created_at,
        };
        ctx.emit_json(LINES, Some(&item.sku), &line);
    }
    let valid = ValidOrder {
        total: format!("{}.{:02}", total_cents / 100, total_cents % 100),
        units,
        order_id: order.order_id,
        customer_id: order.customer_id,
        created_at: order.created_at,
        currency: order.currency,
        items: order.items,
        shipping_country: order.shipping_country,
    };
    ctx.emit_json(VALID, Some(&valid.customer_id), &valid);
    Ok(())
}

/// Forgets an order id once its dedup window has passed.
pub fn on_timer(timer: &Timer, ctx: &mut Context) -> Result<(), Failure> {
    match timer.key_str() {
        Some(key) if key.starts_with(SEEN_PREFIX) => {
            ctx.delete(key);
            Ok(())
        }
        _ => Err(Failure::reject(format!(
            "order-validator schedules no timer {:?}",
            String::from_utf8_lossy(&timer.key)
        ))),
    }
}

streamfn::export!(handle, timers = on_timer);

/// The rule `order` breaks, or its total in cents and its units.
fn check(order: &Order, ctx: &Context) -> Result<(i64, i32), Failure> {
    if order.order_id.is_empty() || order.customer_id.is_empty() {
        return Err(Failure::reject(
            "an order needs an order_id and a customer_id",
        ));
    }
    let currencies = ctx
        .config("currencies")
        .unwrap_or_else(|| DEFAULT_CURRENCIES.to_owned());
    if !currencies.split(',').any(|c| c.trim() == order.currency) {
        return Err(Failure::reject(format!(
            "order {}: currency {} is not one of {currencies}",
            order.order_id, order.currency
        )));
    }
    let max_items: usize = ctx.config_or("max_items", DEFAULT_MAX_ITEMS)?;
    if order.items.is_empty() || order.items.len() > max_items {
        return Err(Failure::reject(format!(
            "order {}: {} items, an order has 1 to {max_items}",
            order.order_id,
            order.items.len()
        )));
    }
    let max_quantity: u32 = ctx.config_or("max_quantity", DEFAULT_MAX_QUANTITY)?;
    let mut total = 0i64;
    let mut units = 0i32;
    for item in &order.items {
        if item.sku.is_empty() {
            return Err(Failure::reject(format!(
                "order {}: an item has no sku",
                order.order_id
            )));
        }
        if item.quantity < 1 || item.quantity as u32 > max_quantity {
            return Err(Failure::reject(format!(
                "order {}: item {} has quantity {}, which must be 1 to {max_quantity}",
                order.order_id, item.sku, item.quantity
            )));
        }
        let price = cents(&item.unit_price).filter(|p| *p > 0).ok_or_else(|| {
            Failure::reject(format!(
                "order {}: item {} has unit price {:?}, which must be positive",
                order.order_id, item.sku, item.unit_price
            ))
        })?;
        total += price * i64::from(item.quantity);
        units += item.quantity;
    }
    Ok((total, units))
}

/// Rejects an order id the customer sent before, else remembers it for the window.
fn remember(order: &Order, event: &Event, ctx: &mut Context) -> Result<(), Failure> {
    let key = format!("{SEEN_PREFIX}{}/{}", order.customer_id, order.order_id);
    if ctx.get(&key).is_some() {
        return Err(Failure::reject(format!(
            "order {} of {} was submitted before",
            order.order_id, order.customer_id
        )));
    }
    let window: i64 = ctx.config_or("dedup_window_ms", DEFAULT_DEDUP_WINDOW_MS)?;
    ctx.set(&key, b"");
    ctx.schedule_timer(&key, event.timestamp_ms.saturating_add(window));
    Ok(())
}

/// The cents of a decimal with at most two places (`"12.3"`, `"-0.05"`, `"7"`).
fn cents(decimal: &str) -> Option<i64> {
    let (negative, digits) = match decimal.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, decimal),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty()
        || fraction.len() > 2
        || !(whole.chars().chain(fraction.chars())).all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let fraction = format!("{fraction:0<2}");
    let value = whole.parse::<i64>().ok()?.checked_mul(100)? + fraction.parse::<i64>().ok()?;
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use streamfn::testing::TestHost;

    use super::*;

    fn order(id: &str, items: serde_json::Value, currency: &str) -> String {
        json!({
            "order_id": id, "customer_id": "c-1", "created_at": 1_000,
            "currency": currency, "items": items, "shipping_country": "NL",
        })
        .to_string()
    }

    fn deliver(host: &mut TestHost, value: &str, at: i64) -> Result<(), Failure> {
        host.deliver(handle, on_timer, ORDERS, Some("c-1"), value, at)
    }

    #[test]
    fn a_valid_order_goes_on_with_its_total_and_a_line_per_item() {
        let mut host = TestHost::new();
        let items = json!([
            {"sku": "mug", "quantity": 2, "unit_price": "12.30"},
            {"sku": "tea", "quantity": 1, "unit_price": "4.5"},
        ]);
        deliver(&mut host, &order("o-1", items, "EUR"), 1_000).expect("valid");
        let valid: Vec<ValidOrder> = host.outputs_json(VALID);
        assert_eq!(valid.len(), 1);
        assert_eq!(valid[0].total, "29.10");
        assert_eq!(valid[0].units, 3);
        let lines: Vec<OrderLine> = host.outputs_json(LINES);
        let skus: Vec<(&str, i32)> = lines.iter().map(|l| (l.sku.as_str(), l.quantity)).collect();
        assert_eq!(skus, [("mug", 2), ("tea", 1)]);
        let keys: Vec<&[u8]> = host
            .outputs()
            .iter()
            .filter(|o| o.topic == LINES)
            .filter_map(|o| o.key.as_deref())
            .collect();
        assert_eq!(keys, [&b"mug"[..], b"tea"], "lines are keyed by product");
    }

    #[test]
    fn each_broken_rule_rejects_the_order_and_names_the_rule() {
        let cases = [
            (order("o-1", json!([]), "EUR"), "0 items"),
            (
                order(
                    "o-2",
                    json!([{"sku": "mug", "quantity": 0, "unit_price": "1.00"}]),
                    "EUR",
                ),
                "quantity 0",
            ),
            (
                order(
                    "o-3",
                    json!([{"sku": "mug", "quantity": 1, "unit_price": "-2.00"}]),
                    "EUR",
                ),
                "unit price \"-2.00\"",
            ),
            (
                order(
                    "o-4",
                    json!([{"sku": "mug", "quantity": 1, "unit_price": "1.00"}]),
                    "XYZ",
                ),
                "currency XYZ",
            ),
            (
                order(
                    "o-5",
                    json!([{"sku": "", "quantity": 1, "unit_price": "1.00"}]),
                    "EUR",
                ),
                "no sku",
            ),
        ];
        for (value, said) in cases {
            let mut host = TestHost::new();
            let err = deliver(&mut host, &value, 1_000).expect_err(said);
            assert!(err.reason().contains(said), "{said}: {}", err.reason());
            assert!(host.outputs().is_empty(), "{said}: nothing goes on");
            assert_eq!(host.state_len(), 0, "{said}: nothing is remembered");
        }
    }

    #[test]
    fn an_order_sent_again_within_the_window_is_a_duplicate_and_after_it_is_new() {
        let mut host = TestHost::new().with_config("dedup_window_ms", "60000");
        let items = json!([{"sku": "mug", "quantity": 1, "unit_price": "1.00"}]);
        let value = order("o-1", items, "EUR");
        deliver(&mut host, &value, 1_000).expect("first");
        let err = deliver(&mut host, &value, 30_000).expect_err("again");
        assert!(
            err.reason().contains("submitted before"),
            "{}",
            err.reason()
        );
        let later = order(
            "o-2",
            json!([{"sku": "mug", "quantity": 1, "unit_price": "1.00"}]),
            "EUR",
        );
        deliver(&mut host, &later, 61_000).expect("stream time passes the window");
        deliver(&mut host, &value, 62_000).expect("forgotten after the window");
        assert_eq!(host.outputs_json::<ValidOrder>(VALID).len(), 3);
    }

    #[test]
    fn decimals_become_cents() {
        assert_eq!(cents("12.30"), Some(1230));
        assert_eq!(cents("4.5"), Some(450));
        assert_eq!(cents("7"), Some(700));
        assert_eq!(cents("-0.05"), Some(-5));
        for bad in ["", "1.234", "1e3", "abc", ".5", "--1"] {
            assert_eq!(cents(bad), None, "{bad}");
        }
    }
}
