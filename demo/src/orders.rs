//! Synthetic, seeded orders for the shop's order pipeline (order-validator,
//! inventory-updater, orders-per-hour): customers ordering from a catalogue over two
//! hours, with planted invalid orders, each breaking one of the validator's rules, and
//! checkout retries that send an order again. It knows what it planted, so the demo can
//! check that every one reached the dead-letter topic.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::generate::{HOUR_MS, MINUTE_MS, Rng, START_MS};

/// The catalogue: SKUs and their unit prices.
const CATALOGUE: [(&str, &str); 12] = [
    ("mug-blue", "12.50"),
    ("mug-red", "12.50"),
    ("tea-green", "6.20"),
    ("tea-black", "5.90"),
    ("kettle", "39.00"),
    ("teapot", "24.95"),
    ("spoon-set", "8.40"),
    ("coaster", "3.10"),
    ("grinder", "54.00"),
    ("beans-1kg", "18.75"),
    ("filter-100", "4.30"),
    ("scale", "29.99"),
];

const COUNTRIES: [&str; 5] = ["NL", "DE", "FR", "GB", "US"];

/// The rules a planted order breaks, as the validator's reason words them.
pub const RULES: [(&str, &str); 5] = [
    ("no items", "0 items"),
    ("zero quantity", "quantity 0"),
    ("negative price", "must be positive"),
    ("unknown currency", "currency BTC"),
    ("duplicate", "submitted before"),
];

/// The order traffic, and what was planted in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Orders {
    /// `orders` records (key: `customer_id`, time: `created_at`), in time order.
    pub orders: Vec<Value>,
    /// Order id of each planted invalid order, with the rule it breaks (of [`RULES`]).
    pub planted: BTreeMap<String, &'static str>,
}

/// Orders of about `scale` customers for `seed`: the same seed and scale always give the
/// same orders. About one order in twenty-five is planted invalid.
pub fn orders(seed: u64, scale: usize) -> Orders {
    let mut rng = Rng::stream(seed, 4);
    let mut orders = Vec::new();
    let mut planted = BTreeMap::new();
    for c in 0..scale.max(1) {
        let customer = format!("cust-{c:04}");
        let count = rng.between(1, 5);
        for n in 0..count {
            let at = START_MS + rng.between(0, 2 * HOUR_MS - 1);
            let id = format!("ord-{c:04}-{n}");
            let mut order = order(&mut rng, &id, &customer, at);
            if rng.chance(0.04) {
                let (rule, _) = RULES[rng.index(RULES.len())];
                if rule == "duplicate" {
                    // The checkout sends a valid order again a few minutes later.
                    let mut again = order.clone();
                    again["created_at"] = json!(at + rng.between(MINUTE_MS, 10 * MINUTE_MS));
                    orders.push(again);
                } else {
                    break_rule(&mut order, rule);
                }
                planted.insert(id, rule);
            }
            orders.push(order);
        }
    }
    orders.sort_by_key(|o| o["created_at"].as_i64().unwrap_or_default());
    // Orders an hour after the rest from customers of every partition, so that every
    // customer's hours close, as later traffic would close them in a live shop.
    let last = orders
        .last()
        .and_then(|o| o["created_at"].as_i64())
        .unwrap_or(START_MS);
    for n in 0..64 {
        let customer = format!("closing-{n:02}");
        orders.push(order(
            &mut rng,
            &format!("ord-{customer}"),
            &customer,
            last + HOUR_MS + 10 * MINUTE_MS,
        ));
    }
    Orders { orders, planted }
}

/// A valid order.
fn order(rng: &mut Rng, id: &str, customer: &str, at: i64) -> Value {
    let lines = rng.between(1, 4);
    let mut skus: Vec<usize> = (0..CATALOGUE.len()).collect();
    rng.shuffle(&mut skus);
    let items: Vec<Value> = skus[..lines as usize]
        .iter()
        .map(|&i| {
            let (sku, price) = CATALOGUE[i];
            json!({"sku": sku, "quantity": rng.between(1, 3), "unit_price": price})
        })
        .collect();
    let currency = ["EUR", "EUR", "EUR", "USD", "GBP"][rng.index(5)];
    let country = rng
        .chance(0.9)
        .then(|| COUNTRIES[rng.index(COUNTRIES.len())]);
    json!({
        "order_id": id,
        "customer_id": customer,
        "created_at": at,
        "currency": currency,
        "items": items,
        "shipping_country": country,
    })
}

/// Makes `order` break `rule`.
fn break_rule(order: &mut Value, rule: &str) {
    match rule {
        "no items" => order["items"] = json!([]),
        "zero quantity" => order["items"][0]["quantity"] = json!(0),
        "negative price" => order["items"][0]["unit_price"] = json!("-1.00"),
        _ => order["currency"] = json!("BTC"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_orders_with_every_rule_planted() {
        let first = orders(3, 400);
        assert_eq!(first, orders(3, 400));
        let rules: std::collections::BTreeSet<&str> = first.planted.values().copied().collect();
        assert_eq!(rules.len(), RULES.len(), "every rule is planted: {rules:?}");
        let times: Vec<i64> = first
            .orders
            .iter()
            .map(|o| o["created_at"].as_i64().expect("a time"))
            .collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "in time order");
    }

    #[test]
    fn a_duplicate_is_the_same_order_sent_twice() {
        let data = orders(5, 400);
        for (id, rule) in &data.planted {
            let sent = data
                .orders
                .iter()
                .filter(|o| o["order_id"] == *id.as_str())
                .count();
            let expected = if *rule == "duplicate" { 2 } else { 1 };
            assert_eq!(sent, expected, "{id} ({rule})");
        }
    }
}
