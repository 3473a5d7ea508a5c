//! Synthetic, seeded demo traffic for the example functions: payments with planted fraud,
//! service logs with planted error bursts, and shoppers' activity. It knows what it planted,
//! so the demo can score the functions; it is not a load generator and never talks to a host.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

/// Event time of the first record: 2026-01-01T00:00:00Z.
pub const START_MS: i64 = 1_767_225_600_000;
/// How much event time the data spans.
pub const SPAN_MS: i64 = 2 * HOUR_MS;
/// The error window the planted bursts are aligned to (log-correlator's default `window_ms`).
pub const ERROR_WINDOW_MS: i64 = 5 * MINUTE_MS;
/// Errors per service and window that make an alert (log-correlator's default
/// `error_threshold`). Background errors stay well below it; bursts reach three times it.
pub const ERROR_THRESHOLD: usize = 10;

const SECOND_MS: i64 = 1_000;
pub(crate) const MINUTE_MS: i64 = 60 * SECOND_MS;
pub(crate) const HOUR_MS: i64 = 60 * MINUTE_MS;

/// Everything the demo feeds the functions, plus what was planted in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// `transactions` records (key: `customer_id`), sorted by `timestamp_ms`.
    pub transactions: Vec<Value>,
    /// `customer-profiles` records (key: `customer_id`), all stamped at [`START_MS`].
    pub customer_profiles: Vec<Value>,
    /// `service-logs` records (key: `service`), sorted by `timestamp_ms`.
    pub service_logs: Vec<Value>,
    /// `user-activity` records (key: `user_id`), sorted by `timestamp_ms`.
    pub user_activity: Vec<Value>,
    /// Ids of the transactions that are planted fraud.
    pub planted_frauds: BTreeSet<String>,
    /// `(service, window_start_ms)` of each planted error burst, windows of [`ERROR_WINDOW_MS`].
    pub planted_error_bursts: Vec<(String, i64)>,
    /// The user service's commands, with those planted not to apply.
    pub user_commands: crate::users::Commands,
    /// Sensor readings, with planted spikes and late ones.
    pub sensor_readings: crate::sensors::Readings,
}

impl Dataset {
    /// Log lines an hour after the data, on every service and with correlation ids for
    /// every partition, so that every error window and trace window closes, as later
    /// traffic would close them in a live system.
    pub fn closing_logs(&self) -> Vec<Value> {
        let last = self
            .service_logs
            .iter()
            .filter_map(|l| l["timestamp_ms"].as_i64())
            .max()
            .unwrap_or(START_MS);
        let services: BTreeSet<&str> = self
            .service_logs
            .iter()
            .filter_map(|l| l["service"].as_str())
            .collect();
        let mut lines = Vec::new();
        for (i, service) in services.iter().enumerate() {
            for n in 0..16 {
                lines.push(json!({
                    "timestamp_ms": last + 61 * MINUTE_MS + i as i64,
                    "service": service,
                    "level": "INFO",
                    "message": "health check ok",
                    "correlation_id": format!("closing-{service}-{n}"),
                }));
            }
        }
        lines
    }
}

/// Generates the demo data for `seed`, with about `scale` customers and as many users.
/// The same seed and scale always give the same data.
pub fn generate(seed: u64, scale: usize) -> Dataset {
    let scale = scale.max(1);
    let payments = payments_of(&mut Rng::stream(seed, 1), scale);
    let logs = service_logs(&mut Rng::stream(seed, 2), scale);
    Dataset {
        transactions: payments.transactions,
        customer_profiles: payments.profiles,
        service_logs: logs.lines,
        user_activity: user_activity(&mut Rng::stream(seed, 3), scale),
        planted_frauds: payments.planted,
        planted_error_bursts: logs.bursts,
        user_commands: crate::users::commands(seed, scale),
        sensor_readings: crate::sensors::readings(seed, scale),
    }
}

/// splitmix64: tiny, fast and good enough to shape synthetic data.
pub(crate) struct Rng(u64);

impl Rng {
    /// An independent stream per dataset, so that changing one generator leaves the
    /// others' data as it was.
    pub(crate) fn stream(seed: u64, stream: u64) -> Self {
        let mut rng = Rng(seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F));
        rng.next_u64();
        rng
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Uniform in [lo, hi).
    pub(crate) fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform integer in [lo, hi]; `lo` when the range is empty.
    pub(crate) fn between(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        lo + (self.next_u64() % (hi - lo + 1) as u64) as i64
    }

    pub(crate) fn index(&mut self, len: usize) -> usize {
        (self.next_u64() % len.max(1) as u64) as usize
    }

    /// Standard normal, by Box–Muller.
    pub(crate) fn normal(&mut self) -> f64 {
        let u = 1.0 - self.unit();
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// An index drawn with probability proportional to `weights`.
    fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.unit() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len().saturating_sub(1)
    }

    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.index(i + 1));
        }
    }
}

/// Relative activity by local hour of day: people shop and click by day, little at night.
const HOURLY_ACTIVITY: [f64; 24] = [
    0.45, 0.4, 0.35, 0.35, 0.35, 0.4, 0.5, 0.65, 0.8, 0.9, 1.0, 1.0, 1.0, 1.0, 0.95, 0.9, 0.9,
    0.95, 1.0, 1.0, 0.9, 0.75, 0.6, 0.5,
];

fn activity_at(ts: i64, utc_offset_h: i64) -> f64 {
    let hour = ((ts / HOUR_MS) + utc_offset_h).rem_euclid(24) as usize;
    HOURLY_ACTIVITY[hour]
}

/// An event time in the span, drawn by rejection so that it follows the local daily curve.
fn daytime_ts(rng: &mut Rng, utc_offset_h: i64) -> i64 {
    loop {
        let ts = START_MS + SECOND_MS + rng.between(0, SPAN_MS - 2 * SECOND_MS);
        if rng.chance(activity_at(ts, utc_offset_h)) {
            return ts;
        }
    }
}

fn cents(amount: f64) -> f64 {
    (amount * 100.0).round() / 100.0
}

// ---------------------------------------------------------------------------------------
// Payments
// ---------------------------------------------------------------------------------------

struct Country {
    code: &'static str,
    currency: &'static str,
    utc_offset_h: i64,
    /// How many customers live there, relatively.
    weight: f64,
}

const COUNTRIES: [Country; 11] = [
    country("DE", "EUR", 1, 24.0),
    country("FR", "EUR", 1, 16.0),
    country("NL", "EUR", 1, 8.0),
    country("ES", "EUR", 1, 8.0),
    country("IT", "EUR", 1, 8.0),
    country("IE", "EUR", 0, 3.0),
    country("GB", "GBP", 0, 10.0),
    country("CH", "CHF", 1, 3.0),
    country("US", "USD", -5, 12.0),
    country("CA", "CAD", -5, 4.0),
    country("AU", "AUD", 11, 4.0),
];

const fn country(
    code: &'static str,
    currency: &'static str,
    utc_offset_h: i64,
    weight: f64,
) -> Country {
    Country {
        code,
        currency,
        utc_offset_h,
        weight,
    }
}

const MERCHANT_CATEGORIES: [(&str, f64); 9] = [
    ("grocery", 20.0),
    ("restaurant", 18.0),
    ("fuel", 8.0),
    ("pharmacy", 6.0),
    ("fashion", 10.0),
    ("electronics", 6.0),
    ("travel", 4.0),
    ("jewelry", 2.0),
    ("online", 12.0),
];

/// Where account takeovers cash out: goods that resell.
const CASH_OUT_CATEGORIES: [&str; 3] = ["electronics", "jewelry", "travel"];

const RISK_TIERS: [&str; 3] = ["low", "medium", "high"];
const RISK_TIER_WEIGHTS: [f64; 3] = [0.7, 0.22, 0.08];

const MERCHANTS: usize = 400;
const TRANSACTIONS_PER_CUSTOMER: f64 = 50.0;
/// Share of normal purchases at a merchant outside the customer's usual ones.
const NEW_MERCHANT_RATE: f64 = 0.06;
/// Share of normal purchases made abroad.
const ABROAD_RATE: f64 = 0.01;
/// History a victim has before a planted fraud, so the fraud stands out against it.
const VICTIM_MIN_HISTORY: usize = 12;

struct Customer {
    id: String,
    home: usize,
    median_amount: f64,
    amount_sigma: f64,
    usual_merchants: Vec<usize>,
    usual_weights: Vec<f64>,
}

struct Tx {
    ts: i64,
    customer: usize,
    amount: f64,
    merchant: usize,
    country: usize,
    planted: bool,
}

/// The payments part of a [`Dataset`] alone, for those who need only that at a size where
/// the rest would not fit.
pub struct Payments {
    /// As [`Dataset::customer_profiles`].
    pub profiles: Vec<Value>,
    /// As [`Dataset::transactions`].
    pub transactions: Vec<Value>,
    /// As [`Dataset::planted_frauds`].
    pub planted: BTreeSet<String>,
}

/// The payments [`generate`] makes for `seed` and `scale`, without the other datasets.
pub fn payments(seed: u64, scale: usize) -> Payments {
    payments_of(&mut Rng::stream(seed, 1), scale.max(1))
}

fn payments_of(rng: &mut Rng, scale: usize) -> Payments {
    let category_weights: Vec<f64> = MERCHANT_CATEGORIES.iter().map(|c| c.1).collect();
    let merchant_category: Vec<usize> = (0..MERCHANTS)
        .map(|_| rng.weighted(&category_weights))
        .collect();
    let country_weights: Vec<f64> = COUNTRIES.iter().map(|c| c.weight).collect();

    let mut customers = Vec::with_capacity(scale);
    let mut profiles = Vec::with_capacity(scale);
    for i in 0..scale {
        let customer = new_customer(rng, i, &country_weights);
        let risk_tier = RISK_TIERS[rng.weighted(&RISK_TIER_WEIGHTS)];
        let account_age_days = if rng.chance(0.05) {
            rng.between(3, 60)
        } else {
            rng.between(61, 4000)
        };
        profiles.push(json!({
            "customer_id": customer.id,
            "home_country": COUNTRIES[customer.home].code,
            "risk_tier": risk_tier,
            "account_age_days": account_age_days,
            "timestamp_ms": START_MS,
        }));
        customers.push(customer);
    }

    let mut txs = normal_transactions(rng, &customers);
    plant_frauds(rng, &customers, &merchant_category, &mut txs, scale);
    // Stable, so equal timestamps keep generation order and the ids stay deterministic.
    txs.sort_by_key(|tx| tx.ts);

    let mut transactions = Vec::with_capacity(txs.len());
    let mut planted_ids = BTreeSet::new();
    for (i, tx) in txs.iter().enumerate() {
        let id = format!("tx-{i:06}");
        let customer = &customers[tx.customer];
        let country = &COUNTRIES[tx.country];
        transactions.push(json!({
            "id": id,
            "customer_id": customer.id,
            "amount": tx.amount,
            "currency": country.currency,
            "merchant": merchant_id(tx.merchant),
            "merchant_category": MERCHANT_CATEGORIES[merchant_category[tx.merchant]].0,
            "country": country.code,
            "timestamp_ms": tx.ts,
        }));
        if tx.planted {
            planted_ids.insert(id);
        }
    }
    Payments {
        profiles,
        transactions,
        planted: planted_ids,
    }
}

fn merchant_id(index: usize) -> String {
    format!("m-{index:04}")
}

fn new_customer(rng: &mut Rng, index: usize, country_weights: &[f64]) -> Customer {
    let usual = rng.between(4, 8) as usize;
    let mut usual_merchants = Vec::with_capacity(usual);
    while usual_merchants.len() < usual {
        let m = rng.index(MERCHANTS);
        if !usual_merchants.contains(&m) {
            usual_merchants.push(m);
        }
    }
    // A favourite shop or two, then a long tail, as loyalty data usually looks.
    let usual_weights = (0..usual).map(|rank| 1.0 / (rank as f64 + 1.0)).collect();
    Customer {
        id: format!("c-{index:04}"),
        home: rng.weighted(country_weights),
        median_amount: (rng.uniform(12f64.ln(), 150f64.ln())).exp(),
        amount_sigma: rng.uniform(0.35, 0.65),
        usual_merchants,
        usual_weights,
    }
}

fn normal_transactions(rng: &mut Rng, customers: &[Customer]) -> Vec<Tx> {
    // Customers whose daytime the span falls in buy more within it.
    let weights: Vec<f64> = customers
        .iter()
        .map(|c| {
            let offset = COUNTRIES[c.home].utc_offset_h;
            let daytime: f64 = (0..SPAN_MS / HOUR_MS)
                .map(|h| activity_at(START_MS + h * HOUR_MS, offset))
                .sum();
            rng.uniform(0.6, 1.4) * daytime
        })
        .collect();
    let total_weight: f64 = weights.iter().sum();
    let total = TRANSACTIONS_PER_CUSTOMER * customers.len() as f64;

    let mut txs = Vec::new();
    for (ci, customer) in customers.iter().enumerate() {
        let count = (total * weights[ci] / total_weight).round().max(1.0) as usize;
        let offset = COUNTRIES[customer.home].utc_offset_h;
        for _ in 0..count {
            let abroad = rng.chance(ABROAD_RATE);
            let merchant = if abroad || rng.chance(NEW_MERCHANT_RATE) {
                rng.index(MERCHANTS)
            } else {
                customer.usual_merchants[rng.weighted(&customer.usual_weights)]
            };
            let country = if abroad {
                other_country(rng, customer.home)
            } else {
                customer.home
            };
            let amount = customer.median_amount * (customer.amount_sigma * rng.normal()).exp();
            txs.push(Tx {
                ts: daytime_ts(rng, offset),
                customer: ci,
                amount: cents(amount.max(0.5)),
                merchant,
                country,
                planted: false,
            });
        }
    }
    txs
}

fn other_country(rng: &mut Rng, home: usize) -> usize {
    let pick = rng.index(COUNTRIES.len() - 1);
    if pick >= home { pick + 1 } else { pick }
}

/// Plants account takeovers and card-testing bursts into `txs`, marked `planted`.
fn plant_frauds(
    rng: &mut Rng,
    customers: &[Customer],
    merchant_category: &[usize],
    txs: &mut Vec<Tx>,
    scale: usize,
) {
    let takeovers = (scale / 20).max(2);
    let bursts = (scale / 50).max(1);
    let mut victims: Vec<usize> = (0..customers.len()).collect();
    rng.shuffle(&mut victims);
    // Each customer's normal transactions, found once: scanning them all per victim
    // would make the data's generation quadratic in its size.
    let mut own: Vec<Vec<usize>> = vec![Vec::new(); customers.len()];
    for (i, tx) in txs.iter().enumerate() {
        own[tx.customer].push(i);
    }

    let mut planned = 0;
    for victim in victims {
        if planned == takeovers + bursts {
            break;
        }
        let at = START_MS + rng.between(45 * MINUTE_MS, 110 * MINUTE_MS);
        // Victims differ, so a victim's transactions are all normal ones.
        let mine: Vec<&Tx> = own[victim].iter().map(|&i| &txs[i]).collect();
        let history: Vec<&Tx> = mine.iter().copied().filter(|t| t.ts < at).collect();
        if history.len() < VICTIM_MIN_HISTORY {
            continue;
        }
        // The customer's whole normal history, not only what precedes the fraud, so a
        // planted merchant or country is new by any measure.
        let known_merchants: BTreeSet<usize> = mine.iter().map(|t| t.merchant).collect();
        let known_countries: BTreeSet<usize> = mine.iter().map(|t| t.country).collect();
        let mean = history.iter().map(|t| t.amount).sum::<f64>() / history.len() as f64;
        let fresh = |category: &str, rng: &mut Rng| {
            let unknown = (0..MERCHANTS).filter(|m| !known_merchants.contains(m));
            let mut fitting: Vec<usize> = unknown
                .clone()
                .filter(|m| MERCHANT_CATEGORIES[merchant_category[*m]].0 == category)
                .collect();
            if fitting.is_empty() {
                fitting = unknown.collect();
            }
            fitting[rng.index(fitting.len())]
        };

        if planned < takeovers {
            let category = CASH_OUT_CATEGORIES[rng.index(CASH_OUT_CATEGORIES.len())];
            let unvisited: Vec<usize> = (0..COUNTRIES.len())
                .filter(|c| !known_countries.contains(c))
                .collect();
            let country = match unvisited.len() {
                0 => other_country(rng, customers[victim].home),
                n => unvisited[rng.index(n)],
            };
            txs.push(Tx {
                ts: at,
                customer: victim,
                amount: cents(mean * rng.uniform(8.0, 15.0)),
                merchant: fresh(category, rng),
                country,
                planted: true,
            });
        } else {
            let probes = rng.between(6, 10) as usize;
            let mut ts = at;
            let mut used = BTreeSet::new();
            while used.len() < probes {
                let merchant = fresh("online", rng);
                if !used.insert(merchant) {
                    continue;
                }
                txs.push(Tx {
                    ts,
                    customer: victim,
                    amount: cents(rng.uniform(0.5, 3.0)),
                    merchant,
                    country: customers[victim].home,
                    planted: true,
                });
                ts += rng.between(4 * SECOND_MS, 15 * SECOND_MS);
            }
        }
        planned += 1;
    }
}

// ---------------------------------------------------------------------------------------
// Service logs
// ---------------------------------------------------------------------------------------

const SERVICES: [&str; 6] = [
    "auth",
    "checkout",
    "inventory",
    "payments",
    "search",
    "shipping",
];

/// The request paths through the services, callers first, and how common each one is.
const FLOWS: [(&[&str], f64); 6] = [
    (&["search", "inventory"], 35.0),
    (&["auth", "search", "inventory"], 20.0),
    (&["auth", "search"], 10.0),
    (&["auth", "checkout", "inventory"], 15.0),
    (&["checkout", "inventory", "payments", "shipping"], 8.0),
    (
        &["auth", "checkout", "inventory", "payments", "shipping"],
        12.0,
    ),
];

const TRACES_PER_SCALE: usize = 20;
/// Background errors expected per service and window: enough to look alive, far from alerting.
const BACKGROUND_ERRORS_PER_WINDOW: f64 = 1.5;
/// Background errors never pass this per service and window, whatever the draw.
const BACKGROUND_ERROR_CAP: usize = ERROR_THRESHOLD - 3;
const WARN_RATE: f64 = 0.04;

struct Logs {
    lines: Vec<Value>,
    bursts: Vec<(String, i64)>,
}

/// How a trace may fail.
enum Failing {
    /// Now and then, as production does, within the background budget.
    Background,
    /// At this service: the trace belongs to a planted burst.
    At(&'static str),
}

/// Background errors drawn so far per (service, window start), to keep them under the cap.
struct BackgroundErrors {
    rate: f64,
    counts: BTreeMap<(&'static str, i64), usize>,
}

impl BackgroundErrors {
    fn fails(&mut self, rng: &mut Rng, service: &'static str, ts: i64) -> bool {
        if !rng.chance(self.rate) {
            return false;
        }
        let count = self.counts.entry((service, window_start(ts))).or_insert(0);
        if *count >= BACKGROUND_ERROR_CAP {
            return false;
        }
        *count += 1;
        true
    }
}

fn window_start(ts: i64) -> i64 {
    ts - ts.rem_euclid(ERROR_WINDOW_MS)
}

fn service_logs(rng: &mut Rng, scale: usize) -> Logs {
    let flow_weights: Vec<f64> = FLOWS.iter().map(|f| f.1).collect();
    let traces = TRACES_PER_SCALE * scale;
    let mut starts: Vec<(i64, usize, Failing)> = (0..traces)
        .map(|_| {
            let start = START_MS + rng.between(SECOND_MS, SPAN_MS - 2 * SECOND_MS);
            (start, rng.weighted(&flow_weights), Failing::Background)
        })
        .collect();

    let windows = SPAN_MS / ERROR_WINDOW_MS;
    // Away from both ends of the span, so every burst window fills and closes in the data.
    let mut candidates: Vec<i64> = (2..windows - 3).collect();
    rng.shuffle(&mut candidates);
    let mut bursts = Vec::new();
    for window in candidates.into_iter().take((scale / 40).max(2)) {
        let service = SERVICES[rng.index(SERVICES.len())];
        let start = START_MS + window * ERROR_WINDOW_MS;
        let through: Vec<f64> = FLOWS
            .iter()
            .map(|(flow, w)| if flow.contains(&service) { *w } else { 0.0 })
            .collect();
        let failures = 3 * ERROR_THRESHOLD + rng.index(16);
        for _ in 0..failures {
            let at = start + rng.between(0, ERROR_WINDOW_MS - 2 * SECOND_MS);
            starts.push((at, rng.weighted(&through), Failing::At(service)));
        }
        bursts.push((service.to_owned(), start));
    }
    bursts.sort();
    starts.sort_by_key(|s| s.0);

    let max_share = SERVICES
        .iter()
        .map(|s| {
            FLOWS
                .iter()
                .filter(|f| f.0.contains(s))
                .map(|f| f.1)
                .sum::<f64>()
        })
        .fold(0.0, f64::max)
        / flow_weights.iter().sum::<f64>();
    let traces_per_window = traces as f64 * ERROR_WINDOW_MS as f64 / SPAN_MS as f64;
    let mut background = BackgroundErrors {
        rate: (BACKGROUND_ERRORS_PER_WINDOW / (traces_per_window * max_share)).min(0.05),
        counts: BTreeMap::new(),
    };

    let mut lines = Vec::new();
    for (i, (start, flow, failing)) in starts.iter().enumerate() {
        let id = format!("trace-{i:06}");
        trace(
            rng,
            FLOWS[*flow].0,
            *start,
            &id,
            failing,
            &mut background,
            &mut lines,
        );
    }
    lines.sort_by_key(timestamp);
    Logs { lines, bursts }
}

/// The lines of one request: each service logs as the call reaches it; a failing service
/// logs the ERROR (the root cause) and its callers only WARN about the failed call, as
/// services that handle a downstream failure do.
fn trace(
    rng: &mut Rng,
    flow: &[&'static str],
    start: i64,
    id: &str,
    failing: &Failing,
    background: &mut BackgroundErrors,
    lines: &mut Vec<Value>,
) {
    let mut ts = start;
    let mut failed = None;
    for (depth, service) in flow.iter().enumerate() {
        ts += rng.between(1, 25);
        let fails = match failing {
            Failing::At(at) => at == service,
            Failing::Background => background.fails(rng, service, ts),
        };
        if fails {
            lines.push(log_line(
                ts,
                service,
                "ERROR",
                error_message(rng, service),
                id,
            ));
            failed = Some((depth, *service));
            break;
        }
        lines.push(log_line(
            ts,
            service,
            "INFO",
            info_message(rng, service),
            id,
        ));
        if rng.chance(WARN_RATE) {
            ts += rng.between(1, 40);
            lines.push(log_line(
                ts,
                service,
                "WARN",
                warn_message(rng, service),
                id,
            ));
        }
    }
    let Some((depth, culprit)) = failed else {
        ts += rng.between(5, 60);
        let message = format!("request completed in {} ms", ts - start);
        lines.push(log_line(ts, flow[0], "INFO", message, id));
        return;
    };
    for caller in flow[..depth].iter().rev() {
        ts += rng.between(1, 10);
        let message = format!("call to {culprit} failed, answering 502");
        lines.push(log_line(ts, caller, "WARN", message, id));
    }
}

fn log_line(ts: i64, service: &str, level: &str, message: String, correlation_id: &str) -> Value {
    json!({
        "timestamp_ms": ts,
        "service": service,
        "level": level,
        "message": message,
        "correlation_id": correlation_id,
    })
}

fn info_message(rng: &mut Rng, service: &str) -> String {
    let ms = rng.between(2, 180);
    match service {
        "auth" => format!(
            "token validated for session s-{:05} in {ms} ms",
            rng.index(100_000)
        ),
        "checkout" => format!("cart updated, {} items, in {ms} ms", rng.between(1, 9)),
        "inventory" => format!("stock checked for {} skus in {ms} ms", rng.between(1, 12)),
        "payments" => format!(
            "payment authorised, ref p-{:06}, in {ms} ms",
            rng.index(1_000_000)
        ),
        "search" => format!("query answered, {} hits, in {ms} ms", rng.between(0, 400)),
        _ => format!("shipping quote computed in {ms} ms"),
    }
}

fn warn_message(rng: &mut Rng, service: &str) -> String {
    match rng.index(3) {
        0 => format!(
            "{service}: slow dependency call, {} ms",
            rng.between(800, 2500)
        ),
        1 => format!("{service}: cache miss storm, falling back to database"),
        _ => format!("{service}: retrying after connection reset"),
    }
}

fn error_message(rng: &mut Rng, service: &str) -> String {
    let messages: &[&str] = match service {
        "auth" => &[
            "token validation failed: identity provider timeout",
            "session store unavailable",
        ],
        "checkout" => &[
            "cart update failed: version conflict",
            "order creation failed: database deadlock",
        ],
        "inventory" => &[
            "stock lookup failed: connection pool exhausted",
            "reservation failed: lock wait timeout",
        ],
        "payments" => &[
            "card authorisation failed: acquirer returned 503",
            "payment gateway timeout after 5000 ms",
        ],
        "search" => &[
            "query failed: index shard unavailable",
            "query timed out after 3000 ms",
        ],
        _ => &[
            "rate quote failed: carrier API timeout",
            "label service returned 500",
        ],
    };
    messages[rng.index(messages.len())].to_owned()
}

fn timestamp(value: &Value) -> i64 {
    value["timestamp_ms"].as_i64().unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// User activity
// ---------------------------------------------------------------------------------------

const ITEM_CATEGORIES: [&str; 8] = [
    "books",
    "electronics",
    "home",
    "fashion",
    "sports",
    "toys",
    "beauty",
    "garden",
];
const ITEMS: usize = 320;
/// Share of a user's views in the categories they prefer; the rest is browsing.
const PREFERRED_SHARE: f64 = 0.85;

fn user_activity(rng: &mut Rng, scale: usize) -> Vec<Value> {
    let mut catalog: Vec<Vec<usize>> = vec![Vec::new(); ITEM_CATEGORIES.len()];
    for item in 0..ITEMS {
        catalog[rng.index(ITEM_CATEGORIES.len())].push(item);
    }
    // Within a category a few items sell most, as in any shop.
    let popularity: Vec<Vec<f64>> = catalog
        .iter()
        .map(|items| {
            (0..items.len())
                .map(|rank| 1.0 / (rank as f64 + 1.0).powf(0.8))
                .collect()
        })
        .collect();
    let country_weights: Vec<f64> = COUNTRIES.iter().map(|c| c.weight).collect();

    let mut events = Vec::new();
    for u in 0..scale {
        let user = format!("u-{u:04}");
        let mut preferred: Vec<usize> = (0..ITEM_CATEGORIES.len()).collect();
        rng.shuffle(&mut preferred);
        preferred.truncate(rng.between(2, 3) as usize);
        let preference = [3.0, 2.0, 1.0];
        let offset = COUNTRIES[rng.weighted(&country_weights)].utc_offset_h;
        for _ in 0..rng.between(1, 4) {
            let mut ts = daytime_ts(rng, offset);
            for _ in 0..rng.between(3, 12) {
                let category = if rng.chance(PREFERRED_SHARE) {
                    preferred[rng.weighted(&preference[..preferred.len()])]
                } else {
                    rng.index(ITEM_CATEGORIES.len())
                };
                if catalog[category].is_empty() {
                    continue;
                }
                let item = catalog[category][rng.weighted(&popularity[category])];
                // The funnel: each step is taken by a fraction of those at the one before.
                for (action, go_on) in [
                    ("view", 0.35),
                    ("click", 0.3),
                    ("add_to_cart", 0.45),
                    ("purchase", 0.0),
                ] {
                    if ts >= START_MS + SPAN_MS {
                        break;
                    }
                    events.push(json!({
                        "user_id": user,
                        "item_id": format!("i-{item:04}"),
                        "category": ITEM_CATEGORIES[category],
                        "action": action,
                        "timestamp_ms": ts,
                    }));
                    ts += rng.between(2 * SECOND_MS, 40 * SECOND_MS);
                    if !rng.chance(go_on) {
                        break;
                    }
                }
                ts += rng.between(5 * SECOND_MS, 90 * SECOND_MS);
            }
        }
    }
    events.sort_by_key(timestamp);
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn str_of<'a>(value: &'a Value, field: &str) -> &'a str {
        value[field].as_str().expect("field is a string")
    }

    fn sorted(values: &[Value]) -> bool {
        values
            .windows(2)
            .all(|w| timestamp(&w[0]) <= timestamp(&w[1]))
    }

    #[test]
    fn the_same_seed_gives_the_same_data() {
        assert_eq!(generate(7, 40), generate(7, 40));
        assert_ne!(generate(7, 40).transactions, generate(8, 40).transactions);
    }

    #[test]
    fn every_list_is_sorted_and_inside_the_span() {
        let data = generate(1, 200);
        for list in [&data.transactions, &data.service_logs, &data.user_activity] {
            assert!(sorted(list));
            assert!(
                list.iter()
                    .all(|v| (START_MS..=START_MS + SPAN_MS).contains(&timestamp(v)))
            );
        }
        assert_eq!(data.customer_profiles.len(), 200);
        assert!(
            data.customer_profiles
                .iter()
                .all(|p| timestamp(p) == START_MS)
        );
        assert!(data.transactions.iter().all(|t| timestamp(t) > START_MS));
    }

    #[test]
    fn volumes_follow_the_scale() {
        let data = generate(3, 200);
        let txs = data.transactions.len();
        assert!((9_500..=10_600).contains(&txs), "{txs} transactions");
        assert!(
            data.planted_frauds.len() >= 10,
            "{} frauds",
            data.planted_frauds.len()
        );
        assert!((3..=8).contains(&data.planted_error_bursts.len()));
        assert!(data.user_activity.len() > 10 * 200);
        let ids: BTreeSet<&str> = data.transactions.iter().map(|t| str_of(t, "id")).collect();
        assert_eq!(ids.len(), txs, "transaction ids are unique");
        assert!(
            data.planted_frauds
                .iter()
                .all(|id| ids.contains(id.as_str()))
        );
    }

    /// Every planted fraud has one of the two shapes the generator promises, measured
    /// against the customer's own earlier transactions.
    #[test]
    fn planted_frauds_have_their_shapes() {
        let data = generate(11, 200);
        let homes: BTreeMap<&str, &str> = data
            .customer_profiles
            .iter()
            .map(|p| (str_of(p, "customer_id"), str_of(p, "home_country")))
            .collect();
        let (mut takeovers, mut probes) = (0, 0);
        for (i, tx) in data.transactions.iter().enumerate() {
            if !data.planted_frauds.contains(str_of(tx, "id")) {
                continue;
            }
            let customer = str_of(tx, "customer_id");
            let earlier: Vec<&Value> = data.transactions[..i]
                .iter()
                .filter(|t| str_of(t, "customer_id") == customer)
                .collect();
            let normal_earlier: Vec<&&Value> = earlier
                .iter()
                .filter(|t| !data.planted_frauds.contains(str_of(t, "id")))
                .collect();
            assert!(normal_earlier.len() >= VICTIM_MIN_HISTORY);
            let mean = normal_earlier
                .iter()
                .map(|t| t["amount"].as_f64().unwrap_or(0.0))
                .sum::<f64>()
                / normal_earlier.len() as f64;
            let amount = tx["amount"].as_f64().expect("amount");
            let merchant = str_of(tx, "merchant");
            assert!(
                earlier.iter().all(|t| str_of(t, "merchant") != merchant),
                "merchant is new"
            );
            if amount > 5.0 * mean {
                let country = str_of(tx, "country");
                assert_ne!(country, homes[customer]);
                assert!(earlier.iter().all(|t| str_of(t, "country") != country));
                takeovers += 1;
            } else {
                assert!(amount <= 3.0);
                let ts = timestamp(tx);
                let burst = data
                    .transactions
                    .iter()
                    .filter(|t| data.planted_frauds.contains(str_of(t, "id")))
                    .filter(|t| str_of(t, "customer_id") == customer)
                    .filter(|t| (timestamp(t) - ts).abs() <= 3 * MINUTE_MS)
                    .count();
                assert!(
                    burst >= 6,
                    "a probe comes in a burst of at least 6, got {burst}"
                );
                probes += 1;
            }
        }
        assert_eq!(takeovers, 10);
        assert!(probes >= 4 * 6);
    }

    fn errors_per_window(data: &Dataset) -> BTreeMap<(String, i64), usize> {
        let mut counts = BTreeMap::new();
        for line in data
            .service_logs
            .iter()
            .filter(|l| str_of(l, "level") == "ERROR")
        {
            let key = (
                str_of(line, "service").to_owned(),
                window_start(timestamp(line)),
            );
            *counts.entry(key).or_insert(0) += 1;
        }
        counts
    }

    #[test]
    fn only_planted_bursts_reach_the_error_threshold() {
        for scale in [20, 200, 1000] {
            let data = generate(5, scale);
            let counts = errors_per_window(&data);
            for burst in &data.planted_error_bursts {
                assert!(
                    counts[burst] >= 3 * ERROR_THRESHOLD,
                    "{burst:?}: {}",
                    counts[burst]
                );
            }
            for (key, count) in &counts {
                if !data.planted_error_bursts.contains(key) {
                    assert!(
                        *count < ERROR_THRESHOLD,
                        "{key:?} has {count} background errors"
                    );
                }
            }
            assert!(
                counts.len() > data.planted_error_bursts.len(),
                "background errors exist"
            );
        }
    }

    #[test]
    fn traces_span_services_and_bursts_are_their_root_cause() {
        let data = generate(9, 200);
        let mut traces: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
        for line in &data.service_logs {
            traces
                .entry(str_of(line, "correlation_id"))
                .or_default()
                .push(line);
        }
        let mut rooted_in_bursts = 0;
        for lines in traces.values() {
            let services: BTreeSet<&str> = lines.iter().map(|l| str_of(l, "service")).collect();
            assert!(services.len() <= 5);
            let errors: Vec<&&Value> = lines
                .iter()
                .filter(|l| str_of(l, "level") == "ERROR")
                .collect();
            assert!(errors.len() <= 1, "one root cause per trace");
            match errors.first() {
                None => assert!(services.len() >= 2, "a healthy trace spans 2-5 services"),
                Some(error) => {
                    let key = (
                        str_of(error, "service").to_owned(),
                        window_start(timestamp(error)),
                    );
                    rooted_in_bursts += usize::from(data.planted_error_bursts.contains(&key));
                }
            }
        }
        assert!(rooted_in_bursts >= 3 * ERROR_THRESHOLD * data.planted_error_bursts.len());
    }

    #[test]
    fn shoppers_act_on_a_consistent_catalog() {
        let data = generate(2, 200);
        let mut categories: BTreeMap<&str, &str> = BTreeMap::new();
        let mut actions: BTreeMap<&str, usize> = BTreeMap::new();
        for event in &data.user_activity {
            let item = str_of(event, "item_id");
            let category = str_of(event, "category");
            assert_eq!(*categories.entry(item).or_insert(category), category);
            *actions.entry(str_of(event, "action")).or_insert(0) += 1;
        }
        let count = |action: &str| actions.get(action).copied().unwrap_or(0);
        assert!(count("view") > count("click"));
        assert!(count("click") > count("add_to_cart"));
        assert!(count("add_to_cart") > count("purchase"));
        assert!(count("purchase") > 0);
    }
}
