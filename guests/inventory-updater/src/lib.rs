//! inventory-updater: keeps each product's stock as orders take it, and reports every
//! change. It reads `order-lines`, which the order validator keys by SKU, so a product's
//! stock lives in the state of one partition (the repartition pattern), and sends the
//! product's stock after each line to `inventory-updates`, keyed by SKU.
//!
//! Every product starts with config `initial_stock` units (default 500). A product whose
//! remaining stock falls to config `low_stock_at` (default 20) or below is flagged low,
//! and one sold past zero backordered: the update says so, for the warehouse to restock.

use serde::{Deserialize, Serialize};
use streamfn::{Context, Event, Failure};

const LINES: &str = "order-lines";
const UPDATES: &str = "inventory-updates";

const DEFAULT_INITIAL_STOCK: i64 = 500;
const DEFAULT_LOW_STOCK_AT: i64 = 20;

/// An `order-lines` record (what the order validator writes).
#[derive(Debug, Deserialize)]
struct OrderLine {
    order_id: String,
    sku: String,
    quantity: i32,
}

/// A product's stock: the state under its SKU.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Stock {
    units_sold: i64,
    orders: u64,
}

/// An `inventory-updates` record.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Update {
    sku: String,
    units_sold: i64,
    orders: u64,
    remaining: i64,
    low_stock: bool,
    backordered: bool,
    last_order_id: String,
}

/// Takes one order line out of its product's stock.
pub fn handle(event: &Event, ctx: &mut Context) -> Result<(), Failure> {
    if event.topic != LINES {
        return Err(Failure::reject(format!(
            "inventory-updater reads `{LINES}`, not `{}`",
            event.topic
        )));
    }
    let line: OrderLine = event.json()?;
    if line.quantity < 1 {
        return Err(Failure::reject(format!(
            "order {} takes {} of {}: a line takes at least one unit",
            line.order_id, line.quantity, line.sku
        )));
    }
    let initial: i64 = ctx.config_or("initial_stock", DEFAULT_INITIAL_STOCK)?;
    let low_at: i64 = ctx.config_or("low_stock_at", DEFAULT_LOW_STOCK_AT)?;
    let mut stock: Stock = ctx.get_json(&line.sku)?.unwrap_or_default();
    stock.units_sold += i64::from(line.quantity);
    stock.orders += 1;
    ctx.set_json(&line.sku, &stock);
    let remaining = initial - stock.units_sold;
    let update = Update {
        sku: line.sku.clone(),
        units_sold: stock.units_sold,
        orders: stock.orders,
        remaining,
        low_stock: remaining <= low_at,
        backordered: remaining < 0,
        last_order_id: line.order_id,
    };
    ctx.emit_json(UPDATES, Some(&line.sku), &update);
    Ok(())
}

streamfn::export!(handle);

#[cfg(test)]
mod tests {
    use serde_json::json;
    use streamfn::testing::TestHost;

    use super::*;

    fn line(order: &str, sku: &str, quantity: i32) -> String {
        json!({"order_id": order, "customer_id": "c-1", "sku": sku, "quantity": quantity, "created_at": 1})
            .to_string()
    }

    #[test]
    fn each_line_takes_its_units_and_reports_the_products_stock() {
        let mut host = TestHost::new()
            .with_config("initial_stock", "10")
            .with_config("low_stock_at", "3");
        for (order, sku, quantity) in [
            ("o-1", "mug", 4),
            ("o-2", "tea", 1),
            ("o-3", "mug", 4),
            ("o-4", "mug", 3),
        ] {
            let event = host.event(LINES, Some(sku), &line(order, sku, quantity), 1);
            host.handle(handle, &event).expect("taken");
        }
        let updates: Vec<Update> = host.outputs_json(UPDATES);
        let mugs: Vec<(i64, bool, bool)> = updates
            .iter()
            .filter(|u| u.sku == "mug")
            .map(|u| (u.remaining, u.low_stock, u.backordered))
            .collect();
        assert_eq!(
            mugs,
            [(6, false, false), (2, true, false), (-1, true, true)]
        );
        let tea = updates.iter().find(|u| u.sku == "tea").expect("tea");
        assert_eq!((tea.units_sold, tea.orders, tea.remaining), (1, 1, 9));
        assert_eq!(updates[3].last_order_id, "o-4");
    }

    #[test]
    fn a_line_of_no_units_is_rejected_and_changes_nothing() {
        let mut host = TestHost::new();
        let event = host.event(LINES, Some("mug"), &line("o-1", "mug", 0), 1);
        let err = host.handle(handle, &event).expect_err("no units");
        assert!(
            err.reason().contains("at least one unit"),
            "{}",
            err.reason()
        );
        assert_eq!(host.state_len(), 0);
    }
}
