//! The example functions as the demo deploys them: their topics, which component reads
//! which topics and writes which, the generated traffic fed to each input, and what they
//! wrote. The demo, the end-to-end tests and the Kafka tests all run this topology.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde_json::Value;

use crate::generate::Dataset;
use crate::replica::Replica;

/// The input topics of the examples.
pub const TOPICS: [&str; 8] = [
    "transactions",
    "customer-profiles",
    "service-logs",
    "logs-by-trace",
    "user-activity",
    "commands-user",
    "sensors-temperature",
    "sensors-humidity",
];

/// A deployment of an example component.
#[derive(Debug, Clone, Copy)]
pub struct Function {
    /// Function name.
    pub name: &'static str,
    /// The guest it runs (as in `guests/<guest>`).
    pub guest: &'static str,
    /// Input topics.
    pub inputs: &'static [&'static str],
    /// A pattern of further input topics.
    pub pattern: Option<&'static str>,
    /// Output topics.
    pub outputs: &'static [&'static str],
    /// Deployed once its inputs are loaded, as a backfill over data already there: the
    /// demo produces one topic after another, which live traffic would interleave, and
    /// a function whose inputs share stream time would find the topic produced second
    /// late against the first.
    pub after_load: bool,
}

/// The example deployments: the log correlator runs twice, the second time on the topic
/// the first re-keys by trace (the repartition pattern), and so does the user service,
/// once on its commands and once on the events they become (CQRS); the sensor watcher
/// reads a topic per sensor type through a pattern.
pub const FUNCTIONS: [Function; 7] = [
    Function {
        name: "fraud-scorer",
        guest: "fraud-scorer",
        inputs: &["transactions", "customer-profiles"],
        pattern: None,
        outputs: &["fraud-alerts"],
        after_load: false,
    },
    Function {
        name: "log-correlator",
        guest: "log-correlator",
        inputs: &["service-logs"],
        pattern: None,
        outputs: &["logs-by-trace", "error-alerts"],
        after_load: false,
    },
    Function {
        name: "trace-correlator",
        guest: "log-correlator",
        inputs: &["logs-by-trace"],
        pattern: None,
        outputs: &["correlated-traces"],
        after_load: false,
    },
    Function {
        name: "recommendation-updater",
        guest: "recommendation-updater",
        inputs: &["user-activity"],
        pattern: None,
        outputs: &["user-recommendations"],
        after_load: false,
    },
    Function {
        name: "user-commands",
        guest: "user-views",
        inputs: &["commands-user"],
        pattern: None,
        outputs: &["events-user"],
        after_load: false,
    },
    Function {
        name: "user-views",
        guest: "user-views",
        inputs: &["events-user"],
        pattern: None,
        outputs: &[],
        after_load: false,
    },
    Function {
        name: "sensor-anomaly",
        guest: "sensor-anomaly",
        inputs: &[],
        pattern: Some("sensors-.*"),
        outputs: &["sensor-windows", "sensor-alerts"],
        after_load: true,
    },
];

/// The example deployment named `name`.
pub fn function(name: &str) -> Result<Function> {
    FUNCTIONS
        .iter()
        .find(|f| f.name == name)
        .copied()
        .with_context(|| format!("no example function is named {name}"))
}

impl Function {
    /// `--input` and `--output` arguments of `fnctl deploy` for this function.
    pub fn topic_args(&self) -> Vec<&'static str> {
        let mut args = Vec::new();
        for input in self.inputs {
            args.extend(["--input", input]);
        }
        if let Some(pattern) = self.pattern {
            args.extend(["--input-pattern", pattern]);
        }
        for output in self.outputs {
            args.extend(["--output", output]);
        }
        args
    }
}

/// The component of guest `name` in `dir`, where builds put it (Rust crates with `_`).
pub fn guest(dir: &Path, name: &str) -> Result<PathBuf> {
    [name.replace('-', "_"), name.to_owned()]
        .into_iter()
        .map(|file| dir.join(format!("{file}.wasm")))
        .find(|p| p.exists())
        .with_context(|| {
            format!(
                "guest {name} is not built in {}: run scripts/build and scripts/build-guests first",
                dir.display()
            )
        })
}

/// Creates the examples' topics with `partitions` each and deploys the examples that run
/// as their inputs arrive with the components in `guests` and further `deploy`
/// arguments; returns the functions deployed.
pub fn set_up(
    replica: &Replica,
    guests: &Path,
    partitions: u32,
    extra: &[&str],
) -> Result<Vec<Function>> {
    let partitions = partitions.to_string();
    for topic in TOPICS {
        replica.run(&["topics", "create", topic, "--partitions", &partitions])?;
    }
    deploy_all(replica, guests, extra, false)
}

/// Deploys the examples that run once their inputs are loaded (see
/// [`Function::after_load`]); returns them.
pub fn set_up_after_load(
    replica: &Replica,
    guests: &Path,
    extra: &[&str],
) -> Result<Vec<Function>> {
    deploy_all(replica, guests, extra, true)
}

fn deploy_all(
    replica: &Replica,
    guests: &Path,
    extra: &[&str],
    after_load: bool,
) -> Result<Vec<Function>> {
    let functions: Vec<Function> = FUNCTIONS
        .into_iter()
        .filter(|f| f.after_load == after_load)
        .collect();
    for function in &functions {
        let mut args = function.topic_args();
        args.extend_from_slice(extra);
        replica.deploy(&guest(guests, function.guest)?, function.name, &args)?;
    }
    Ok(functions)
}

/// One input topic's traffic: its records as JSON, keyed by a field, stamped by
/// `timestamp_ms`.
pub struct Feed<'a> {
    /// The topic.
    pub topic: &'static str,
    /// The field that keys each record.
    pub key_field: &'static str,
    /// The records.
    pub records: std::borrow::Cow<'a, [Value]>,
}

impl Feed<'_> {
    /// The `fnctl produce` arguments that key and stamp the records.
    pub fn produce_args(&self) -> [&'static str; 4] {
        [
            "--key-field",
            self.key_field,
            "--timestamp-field",
            "timestamp_ms",
        ]
    }

    /// The records as lines of JSON.
    pub fn lines(&self) -> Vec<String> {
        self.records.iter().map(Value::to_string).collect()
    }

    /// Produces the records through `replica`.
    pub fn produce(&self, replica: &Replica) -> Result<()> {
        replica.produce(self.topic, &self.lines(), &self.produce_args())
    }
}

/// The payments traffic: customer profiles, then transactions.
pub fn payments(data: &Dataset) -> [Feed<'_>; 2] {
    [
        Feed {
            topic: "customer-profiles",
            key_field: "customer_id",
            records: (&data.customer_profiles[..]).into(),
        },
        Feed {
            topic: "transactions",
            key_field: "customer_id",
            records: (&data.transactions[..]).into(),
        },
    ]
}

/// The service logs, with the closing lines that end their last windows.
pub fn logs(data: &Dataset) -> Feed<'_> {
    let mut logs = data.service_logs.clone();
    logs.extend(data.closing_logs());
    Feed {
        topic: "service-logs",
        key_field: "service",
        records: logs.into(),
    }
}

/// The shoppers' activity.
pub fn activity(data: &Dataset) -> Feed<'_> {
    Feed {
        topic: "user-activity",
        key_field: "user_id",
        records: (&data.user_activity[..]).into(),
    }
}

/// The rest of the traffic: service logs, user activity, user commands, and sensor
/// readings, a topic per sensor type.
pub fn others(data: &Dataset) -> Vec<Feed<'_>> {
    let mut feeds = vec![
        logs(data),
        activity(data),
        Feed {
            topic: "commands-user",
            key_field: "user_id",
            records: (&data.user_commands.commands[..]).into(),
        },
    ];
    for (topic, records) in &data.sensor_readings.topics {
        let topic = TOPICS
            .iter()
            .find(|t| *t == topic)
            .copied()
            .unwrap_or("sensors-other");
        feeds.push(Feed {
            topic,
            key_field: "device_id",
            records: (&records[..]).into(),
        });
    }
    feeds
}

/// What the examples wrote, values sorted.
#[derive(Debug, PartialEq, Eq)]
pub struct Outputs {
    /// Fraud alerts.
    pub alerts: Vec<String>,
    /// Error-burst alerts.
    pub error_alerts: Vec<String>,
    /// Recommendation lists.
    pub recommendations: Vec<String>,
    /// Correlated traces: their interleaving is the timing of several partitions, so only
    /// their number is kept.
    pub traces: usize,
    /// The user service's events.
    pub user_events: Vec<String>,
}

/// Waits for every example to catch up, then reads what they wrote.
pub fn collect(replica: &Replica, timeout: Duration) -> Result<Outputs> {
    replica.wait_all_drained(timeout)?;
    let sorted = |topic: &str| -> Result<Vec<String>> {
        let mut values = replica
            .consume(topic)?
            .iter()
            .map(|r| crate::check::value(r).map(str::to_owned))
            .collect::<Result<Vec<_>>>()?;
        values.sort();
        Ok(values)
    };
    Ok(Outputs {
        alerts: sorted("fraud-alerts")?,
        error_alerts: sorted("error-alerts")?,
        recommendations: sorted("user-recommendations")?,
        traces: replica.consume("correlated-traces")?.len(),
        user_events: sorted("events-user")?,
    })
}

/// The shop's order pipeline: the validator reads Avro orders and writes the valid ones
/// (Avro, with the schema it is deployed with) and their lines re-keyed by product; the
/// inventory updater keeps stock per product from the lines; orders-per-hour counts each
/// customer's valid orders per hour.
pub const ORDER_FUNCTIONS: [Function; 3] = [
    Function {
        name: "order-validator",
        guest: "order-validator",
        inputs: &["orders"],
        pattern: None,
        outputs: &["orders-valid", "order-lines"],
        after_load: false,
    },
    Function {
        name: "inventory-updater",
        guest: "inventory-updater",
        inputs: &["order-lines"],
        pattern: None,
        outputs: &["inventory-updates"],
        after_load: false,
    },
    Function {
        name: "orders-per-hour",
        guest: "orders-per-hour",
        inputs: &["orders-valid"],
        pattern: None,
        outputs: &["order-analytics"],
        after_load: false,
    },
];

/// The Avro schemas of the order pipeline, in `dir` (`guests/order-validator/schemas`):
/// the orders the checkout writes, and the valid orders the validator writes.
pub fn order_schemas(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("order.avsc"), dir.join("valid-order.avsc"))
}

/// Creates the `orders` topic with `partitions` and deploys the order pipeline with the
/// components in `guests` and the schemas in `schemas`, on a replica started with a
/// schema registry.
pub fn set_up_orders(
    replica: &Replica,
    guests: &Path,
    schemas: &Path,
    partitions: u32,
) -> Result<()> {
    let partitions = partitions.to_string();
    replica.run(&["topics", "create", "orders", "--partitions", &partitions])?;
    let (_, valid) = order_schemas(schemas);
    let valid_schema = format!("orders-valid={}", valid.display());
    for function in ORDER_FUNCTIONS {
        let mut args = function.topic_args();
        match function.name {
            "order-validator" => args.extend([
                "--input-format",
                "orders=avro",
                "--output-schema",
                valid_schema.as_str(),
            ]),
            "orders-per-hour" => args.extend(["--input-format", "orders-valid=avro"]),
            // A small warehouse, so that the best sellers run low.
            "inventory-updater" => args.extend([
                "--config",
                "initial_stock=400",
                "--config",
                "low_stock_at=100",
            ]),
            _ => {}
        }
        replica.deploy(&guest(guests, function.guest)?, function.name, &args)?;
    }
    Ok(())
}

/// Produces `orders` to `orders` in Avro with the checkout's schema, registered in the
/// schema registry at `registry`, as the shop's checkout would.
pub fn feed_orders(
    replica: &Replica,
    orders: &crate::orders::Orders,
    schemas: &Path,
    registry: &str,
) -> Result<()> {
    let (order, _) = order_schemas(schemas);
    let lines: Vec<String> = orders.orders.iter().map(Value::to_string).collect();
    let schema = order.to_string_lossy();
    replica.produce(
        "orders",
        &lines,
        &[
            "--schema",
            &schema,
            "--schema-registry",
            registry,
            "--key-field",
            "customer_id",
            "--timestamp-field",
            "created_at",
        ],
    )
}

/// What the order pipeline wrote.
#[derive(Debug, PartialEq, Eq)]
pub struct OrderOutputs {
    /// Valid orders, as JSON, sorted.
    pub valid: Vec<String>,
    /// Each product's stock after the last order line: `(sku, units sold, orders)`. The
    /// updates in between depend on how lines of several partitions interleave.
    pub stock: Vec<(String, i64, i64)>,
    /// Products flagged low on stock at the end.
    pub low_stock: usize,
    /// Hours reported per customer, as JSON, sorted.
    pub hours: Vec<String>,
    /// The dead letters of the validator: order id and reason, sorted.
    pub rejected: Vec<(String, String)>,
}

/// Waits for the order pipeline to catch up, then reads what it wrote, Avro read through
/// the schema registry at `registry`.
pub fn collect_orders(
    replica: &Replica,
    registry: &str,
    timeout: Duration,
) -> Result<OrderOutputs> {
    replica.wait_all_drained(timeout)?;
    let read = |topic: &str| -> Result<Vec<Value>> {
        replica.consume_with(topic, &["--schema-registry", registry])
    };
    let text = |records: &[Value]| -> Result<Vec<String>> {
        let mut values = records
            .iter()
            .map(|r| crate::check::value(r).map(str::to_owned))
            .collect::<Result<Vec<_>>>()?;
        values.sort();
        Ok(values)
    };
    let mut stock: std::collections::BTreeMap<String, (i64, i64, bool)> = Default::default();
    for update in read("inventory-updates")? {
        let update: Value = serde_json::from_str(crate::check::value(&update)?)?;
        let sku = update["sku"].as_str().context("an update without a sku")?;
        let sold = update["units_sold"].as_i64().unwrap_or_default();
        let entry = stock.entry(sku.to_owned()).or_default();
        if sold >= entry.0 {
            *entry = (
                sold,
                update["orders"].as_i64().unwrap_or_default(),
                update["low_stock"].as_bool().unwrap_or_default(),
            );
        }
    }
    let mut rejected = read("order-validator-dlq")?
        .iter()
        .map(|letter| {
            let order: Value = serde_json::from_str(crate::check::value(letter)?)?;
            let reason = crate::check::header(letter, "streamfn.failure.reason")?;
            Ok((
                order["order_id"].as_str().unwrap_or_default().to_owned(),
                reason.to_owned(),
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    rejected.sort();
    Ok(OrderOutputs {
        valid: text(&read("orders-valid")?)?,
        low_stock: stock.values().filter(|s| s.2).count(),
        stock: stock
            .into_iter()
            .map(|(sku, (sold, orders, _))| (sku, sold, orders))
            .collect(),
        hours: text(&read("order-analytics")?)?,
        rejected,
    })
}
