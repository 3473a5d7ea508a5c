//! fraud-scorer: scores every card transaction against its customer's own history and
//! profile, and sends the suspicious ones to `fraud-alerts`.
//!
//! Inputs are `transactions` and `customer-profiles`, both keyed by customer id and
//! co-partitioned, so a customer's profile (the table side of the join) and history live in
//! the partition state next to their transactions: one state read and one write per
//! transaction. It is a scorer, not a case manager: it never blocks a payment or remembers
//! alerts it sent.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use streamfn::{Context, Event, Failure};

const TRANSACTIONS: &str = "transactions";
const PROFILES: &str = "customer-profiles";
const ALERTS: &str = "fraud-alerts";

/// Score at or above which a transaction is alerted, unless config `alert_threshold` says.
pub const DEFAULT_ALERT_THRESHOLD: f64 = 0.7;

/// How far back the velocity and card-testing factors look.
const VELOCITY_WINDOW_MS: i64 = 5 * 60_000;
/// Transactions in the window that count as a burst, however slow the customer's pace...
const VELOCITY_MIN_COUNT: usize = 6;
/// ...and how many times their usual pace it takes for a busier customer.
const VELOCITY_PACE_FACTOR: f64 = 3.0;
/// Transactions a customer needs before their merchants and pace say anything...
const MIN_HISTORY: u64 = 5;
/// ...and before the spread of their amounts does.
const MIN_AMOUNT_HISTORY: u64 = 10;
/// Probes (tiny amounts at new merchants) within the window that look like card testing.
const CARD_TESTING_PROBES: usize = 2;
/// A probe is below this many currency units and below this share of the customer's mean.
const PROBE_MAX_AMOUNT: f64 = 5.0;
const PROBE_MAX_SHARE: f64 = 0.5;
/// The least deviation assumed, as a share of the mean.
const MIN_DEVIATION_SHARE: f64 = 0.1;
/// An amount spike is this many times the mean and this many deviations above it.
const SPIKE_RATIO: f64 = 3.0;
const EXTREME_RATIO: f64 = 8.0;
const SPIKE_Z: f64 = 3.0;
/// Accounts younger than this are riskier.
const NEW_ACCOUNT_DAYS: u32 = 30;

/// Bounds of the per-customer state, so that it stays small whatever the traffic.
const MAX_RECENT: usize = 32;
const MAX_MERCHANTS: usize = 24;
const MAX_COUNTRIES: usize = 8;

/// Factor weights. A score is the sum of the factors present, capped at 1. The card-testing
/// and account-takeover patterns cross the default threshold on their own; every factor
/// that normal traffic shows now and then (a new merchant, a trip abroad, a busy hour, a
/// big purchase) stays below it alone and in the pairs that normal traffic makes.
const W_VELOCITY: f64 = 0.15;
const W_CARD_TESTING: f64 = 0.65;
const W_AMOUNT_SPIKE: f64 = 0.2;
const W_AMOUNT_EXTREME: f64 = 0.45;
const W_NEW_COUNTRY: f64 = 0.25;
const W_NEW_MERCHANT: f64 = 0.1;
const W_HIGH_RISK_TIER: f64 = 0.1;
const W_NEW_ACCOUNT: f64 = 0.1;

/// A `transactions` record, its strings borrowed from the event where they need no
/// unescaping.
#[derive(Debug, Deserialize)]
struct Transaction<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    customer_id: Cow<'a, str>,
    amount: f64,
    #[serde(borrow)]
    merchant: Cow<'a, str>,
    #[serde(borrow)]
    country: Cow<'a, str>,
    timestamp_ms: i64,
}

/// A `customer-profiles` record.
#[derive(Debug, Deserialize)]
struct ProfileRecord {
    customer_id: String,
    #[serde(flatten)]
    profile: Profile,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RiskTier {
    Low,
    Medium,
    High,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Profile {
    home_country: String,
    risk_tier: RiskTier,
    account_age_days: u32,
}

/// Everything known about one customer: their profile and their transaction history.
/// Kept with the SDK's compact binary state helpers: it is read and written on every
/// transaction, and no other tool reads it.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Customer {
    profile: Option<Profile>,
    history: History,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct History {
    count: u64,
    /// Welford's running mean and sum of squared deviations of the amount.
    mean: f64,
    m2: f64,
    first_ms: i64,
    last_ms: i64,
    /// Transactions of the last velocity window, by time: (timestamp, was it a probe).
    recent: Vec<(i64, bool)>,
    /// Most recently used last, so the least recent one is dropped first.
    countries: Vec<String>,
    /// Merchants by [`merchant_tag`], most recently used last. Numbers rather than ids
    /// spare an allocation per merchant on every read of the state, which is the bulk of
    /// the scorer's cost per transaction.
    merchants: Vec<u32>,
}

/// What the scorer sends to `fraud-alerts`.
#[derive(Debug, Serialize)]
struct Alert<'a> {
    transaction_id: &'a str,
    customer_id: &'a str,
    amount: f64,
    score: f64,
    factors: Vec<&'static str>,
    timestamp_ms: i64,
}

/// Scores a transaction, or stores a customer profile, depending on the input topic.
pub fn handle(event: &Event, ctx: &mut Context) -> Result<(), Failure> {
    match event.topic.as_str() {
        TRANSACTIONS => score_transaction(event, ctx),
        PROFILES => store_profile(event, ctx),
        other => Err(Failure::reject(format!(
            "fraud-scorer reads `{TRANSACTIONS}` and `{PROFILES}`, not `{other}`"
        ))),
    }
}

streamfn::export!(handle);

fn customer_key(customer_id: &str) -> String {
    format!("c/{customer_id}")
}

fn store_profile(event: &Event, ctx: &mut Context) -> Result<(), Failure> {
    let record: ProfileRecord = event.json()?;
    let key = customer_key(&record.customer_id);
    let mut customer: Customer = ctx.load(&key)?.unwrap_or_default();
    customer.profile = Some(record.profile);
    ctx.store(&key, &customer);
    Ok(())
}

fn score_transaction(event: &Event, ctx: &mut Context) -> Result<(), Failure> {
    let tx: Transaction = event.json()?;
    if !tx.amount.is_finite() || tx.amount < 0.0 {
        return Err(Failure::reject(format!(
            "transaction {} has amount {}",
            tx.id, tx.amount
        )));
    }
    let threshold: f64 = ctx.config_or("alert_threshold", DEFAULT_ALERT_THRESHOLD)?;
    let key = customer_key(&tx.customer_id);
    let mut customer: Customer = ctx.load(&key)?.unwrap_or_default();

    let assessment = assess(&tx, &customer);
    if assessment.score >= threshold {
        let alert = Alert {
            transaction_id: &tx.id,
            customer_id: &tx.customer_id,
            amount: tx.amount,
            score: assessment.score,
            factors: assessment.factors,
            timestamp_ms: tx.timestamp_ms,
        };
        ctx.info(format!(
            "alert for {} on {}: score {} ({})",
            tx.customer_id,
            tx.id,
            alert.score,
            alert.factors.join(", ")
        ));
        ctx.emit_json(ALERTS, Some(&tx.customer_id), &alert);
    }
    customer.history.record(&tx, assessment.probe);
    ctx.store(&key, &customer);
    Ok(())
}

/// The score of one transaction and why.
#[derive(Debug)]
struct Assessment {
    score: f64,
    factors: Vec<&'static str>,
    /// A tiny amount at a new merchant: what a card tester does to see if a card works.
    probe: bool,
}

fn assess(tx: &Transaction, customer: &Customer) -> Assessment {
    let history = &customer.history;
    let experienced = history.count >= MIN_HISTORY;
    let new_merchant = experienced && !history.merchants.contains(&merchant_tag(&tx.merchant));
    let probe = new_merchant && tx.amount < PROBE_MAX_AMOUNT.min(PROBE_MAX_SHARE * history.mean);
    let since = tx.timestamp_ms - VELOCITY_WINDOW_MS;
    let in_window = history.recent.iter().filter(|(ts, _)| *ts > since);
    let probes = in_window.clone().filter(|(_, p)| *p).count() + 1;

    let mut factors = Vec::new();
    let mut score = 0.0;
    let mut add = |present: bool, name: &'static str, weight: f64| {
        if present {
            factors.push(name);
            score += weight;
        }
    };
    add(
        in_window.count() + 1 >= history.velocity_limit(),
        "velocity",
        W_VELOCITY,
    );
    add(
        probe && probes >= CARD_TESTING_PROBES,
        "card_testing",
        W_CARD_TESTING,
    );
    match history.amount_ratio(tx.amount) {
        Some(ratio) if ratio >= EXTREME_RATIO => add(true, "amount_spike", W_AMOUNT_EXTREME),
        Some(ratio) if ratio >= SPIKE_RATIO => add(true, "amount_spike", W_AMOUNT_SPIKE),
        _ => {}
    }
    let new_country = !history.countries.iter().any(|c| *c == tx.country)
        && match &customer.profile {
            Some(profile) => profile.home_country != tx.country,
            None => experienced,
        };
    add(new_country, "new_country", W_NEW_COUNTRY);
    add(new_merchant, "new_merchant", W_NEW_MERCHANT);
    if let Some(profile) = &customer.profile {
        add(
            profile.risk_tier == RiskTier::High,
            "high_risk_tier",
            W_HIGH_RISK_TIER,
        );
        add(
            profile.account_age_days < NEW_ACCOUNT_DAYS,
            "new_account",
            W_NEW_ACCOUNT,
        );
    }
    // Rounded, so that sums of weights compare with a threshold as written.
    let score = (score.min(1.0) * 1000.0).round() / 1000.0;
    Assessment {
        score,
        factors,
        probe,
    }
}

impl History {
    /// Transactions within the velocity window that make a burst for this customer.
    fn velocity_limit(&self) -> usize {
        let span = self.last_ms - self.first_ms;
        if self.count < MIN_HISTORY || span < VELOCITY_WINDOW_MS {
            return VELOCITY_MIN_COUNT;
        }
        let usual = self.count as f64 * VELOCITY_WINDOW_MS as f64 / span as f64;
        VELOCITY_MIN_COUNT.max((VELOCITY_PACE_FACTOR * usual).ceil() as usize)
    }

    /// How many times the customer's mean `amount` is, when it is also far outside their
    /// usual spread (a customer whose amounts vary wildly does not spike by a ratio alone).
    fn amount_ratio(&self, amount: f64) -> Option<f64> {
        if self.count < MIN_AMOUNT_HISTORY || self.mean <= 0.0 {
            return None;
        }
        let deviation = (self.m2 / (self.count - 1) as f64).sqrt();
        // A customer who always pays the same would make any change look infinite.
        let z = (amount - self.mean) / deviation.max(MIN_DEVIATION_SHARE * self.mean);
        (z >= SPIKE_Z).then_some(amount / self.mean)
    }

    fn record(&mut self, tx: &Transaction, probe: bool) {
        if self.count == 0 {
            self.first_ms = tx.timestamp_ms;
            self.last_ms = tx.timestamp_ms;
        }
        self.first_ms = self.first_ms.min(tx.timestamp_ms);
        self.last_ms = self.last_ms.max(tx.timestamp_ms);
        self.count += 1;
        let delta = tx.amount - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (tx.amount - self.mean);

        let since = self.last_ms - VELOCITY_WINDOW_MS;
        self.recent.retain(|(ts, _)| *ts > since);
        if tx.timestamp_ms > since {
            let at = self
                .recent
                .partition_point(|(ts, _)| *ts <= tx.timestamp_ms);
            self.recent.insert(at, (tx.timestamp_ms, probe));
        }
        if self.recent.len() > MAX_RECENT {
            self.recent.drain(..self.recent.len() - MAX_RECENT);
        }
        remember(&mut self.countries, tx.country.as_ref(), MAX_COUNTRIES);
        remember(
            &mut self.merchants,
            &merchant_tag(&tx.merchant),
            MAX_MERCHANTS,
        );
    }
}

/// A merchant id as a 32-bit FNV-1a hash. A new merchant's tag matches one of the few
/// dozen a customer's state remembers about once in a hundred million new merchants, and
/// the match only hides that the merchant is new.
fn merchant_tag(merchant: &str) -> u32 {
    merchant.bytes().fold(0x811c_9dc5, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

/// Marks `value` as the most recently used of `list`, dropping the least recent one when
/// `list` would grow beyond `cap`; a copy of `value` is made only when it is new.
fn remember<T>(list: &mut Vec<T::Owned>, value: &T, cap: usize)
where
    T: ToOwned + ?Sized,
    T::Owned: PartialEq<T>,
{
    if let Some(at) = list.iter().position(|v| *v == *value) {
        let known = list.remove(at);
        list.push(known);
        return;
    }
    if list.len() >= cap {
        list.remove(0);
    }
    list.push(value.to_owned());
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use streamfn::testing::TestHost;

    use super::*;

    const T0: i64 = 1_767_225_600_000;
    const MINUTE: i64 = 60_000;

    fn profile(host: &mut TestHost, customer: &str, home: &str, tier: &str, age_days: u32) {
        let value = json!({
            "customer_id": customer, "home_country": home, "risk_tier": tier,
            "account_age_days": age_days,
        });
        let event = host.event(PROFILES, Some(customer), &value.to_string(), T0);
        host.handle(handle, &event).expect("profile stored");
    }

    fn pay(
        host: &mut TestHost,
        id: &str,
        customer: &str,
        amount: f64,
        merchant: &str,
        country: &str,
        ts: i64,
    ) {
        let value = json!({
            "id": id, "customer_id": customer, "amount": amount, "currency": "EUR",
            "merchant": merchant, "merchant_category": "grocery", "country": country,
            "timestamp_ms": ts,
        });
        let event = host.event(TRANSACTIONS, Some(customer), &value.to_string(), ts);
        host.handle(handle, &event).expect("transaction scored");
    }

    /// A steady customer: 20 purchases of 30–50 EUR at home, at three shops, every 4 minutes.
    fn regular(host: &mut TestHost, customer: &str) -> i64 {
        profile(host, customer, "DE", "low", 1200);
        let mut ts = T0;
        for i in 0..20 {
            ts += 4 * MINUTE;
            let amount = 30.0 + (i * 7 % 20) as f64;
            pay(
                host,
                &format!("tx-{customer}-{i}"),
                customer,
                amount,
                &format!("m-{}", i % 3),
                "DE",
                ts,
            );
        }
        ts
    }

    fn alerts(host: &TestHost) -> Vec<Value> {
        host.outputs_json(ALERTS)
    }

    fn factors(alert: &Value) -> Vec<&str> {
        alert["factors"]
            .as_array()
            .expect("factors")
            .iter()
            .filter_map(Value::as_str)
            .collect()
    }

    #[test]
    fn normal_traffic_raises_no_alert() {
        let mut host = TestHost::new();
        regular(&mut host, "c-1");
        assert!(alerts(&host).is_empty());
        let customer: Customer = host.state("c/c-1").expect("customer state");
        assert_eq!(customer.history.count, 20);
        assert!((customer.history.mean - 39.5).abs() < 1e-9);
    }

    #[test]
    fn account_takeover_is_alerted_with_its_factors() {
        let mut host = TestHost::new();
        let ts = regular(&mut host, "c-1");
        pay(
            &mut host,
            "tx-ato",
            "c-1",
            520.0,
            "m-999",
            "BR",
            ts + MINUTE,
        );
        let alerts = alerts(&host);
        assert_eq!(alerts.len(), 1);
        let alert = &alerts[0];
        assert_eq!(alert["transaction_id"], "tx-ato");
        assert_eq!(alert["customer_id"], "c-1");
        assert_eq!(alert["amount"], 520.0);
        assert_eq!(alert["timestamp_ms"], ts + MINUTE);
        assert_eq!(
            factors(alert),
            ["amount_spike", "new_country", "new_merchant"]
        );
        assert_eq!(alert["score"], 0.8);
        assert_eq!(host.outputs()[0].key.as_deref(), Some(&b"c-1"[..]));
    }

    #[test]
    fn card_testing_is_alerted_from_the_second_probe() {
        let mut host = TestHost::new();
        let ts = regular(&mut host, "c-1");
        for i in 0..6 {
            pay(
                &mut host,
                &format!("probe-{i}"),
                "c-1",
                1.0,
                &format!("m-web-{i}"),
                "DE",
                ts + i * 10_000,
            );
        }
        let alerted: Vec<Value> = alerts(&host)
            .iter()
            .map(|a| a["transaction_id"].clone())
            .collect();
        assert_eq!(
            alerted,
            ["probe-1", "probe-2", "probe-3", "probe-4", "probe-5"]
        );
        assert!(factors(&alerts(&host)[0]).contains(&"card_testing"));
    }

    #[test]
    fn a_burst_beyond_the_customers_pace_adds_velocity() {
        let mut host = TestHost::new().with_config("alert_threshold", "0.1");
        let ts = regular(&mut host, "c-1");
        for i in 0..6 {
            pay(
                &mut host,
                &format!("fast-{i}"),
                "c-1",
                40.0,
                "m-1",
                "DE",
                ts + i * 10_000,
            );
        }
        let alerts = alerts(&host);
        let alerted: Vec<&Value> = alerts.iter().map(|a| &a["transaction_id"]).collect();
        // Two of the regular purchases are still in the window: the fourth fast one is the
        // sixth transaction in five minutes.
        assert_eq!(alerted, ["fast-3", "fast-4", "fast-5"]);
        assert!(
            alerts
                .iter()
                .all(|a| factors(a) == ["velocity"] && a["score"] == W_VELOCITY)
        );
    }

    #[test]
    fn the_profile_join_adds_risk_factors() {
        let mut host = TestHost::new();
        profile(&mut host, "c-2", "FR", "high", 12);
        pay(&mut host, "tx-1", "c-2", 20.0, "m-1", "FR", T0 + MINUTE);
        pay(&mut host, "tx-2", "c-2", 20.0, "m-2", "ES", T0 + 2 * MINUTE);
        assert!(alerts(&host).is_empty(), "0.45 stays under 0.7");

        let mut host = TestHost::new().with_config("alert_threshold", "0.45");
        profile(&mut host, "c-2", "FR", "high", 12);
        pay(&mut host, "tx-2", "c-2", 20.0, "m-2", "ES", T0 + 2 * MINUTE);
        let alerts = alerts(&host);
        assert_eq!(
            factors(&alerts[0]),
            ["new_country", "high_risk_tier", "new_account"]
        );
        assert_eq!(alerts[0]["score"], 0.45);
    }

    #[test]
    fn a_profile_after_transactions_keeps_the_history() {
        let mut host = TestHost::new();
        pay(&mut host, "tx-1", "c-3", 20.0, "m-1", "IT", T0 + MINUTE);
        profile(&mut host, "c-3", "IT", "medium", 400);
        let customer: Customer = host.state("c/c-3").expect("customer state");
        assert_eq!(customer.history.count, 1);
        assert_eq!(
            customer.profile.map(|p| p.risk_tier),
            Some(RiskTier::Medium)
        );
    }

    #[test]
    fn bad_records_and_config_are_rejected_without_effects() {
        let mut host = TestHost::new();
        for value in ["not json", r#"{"id":"tx-1"}"#] {
            let event = host.event(TRANSACTIONS, Some("c-1"), value, T0);
            assert!(matches!(
                host.handle(handle, &event),
                Err(Failure::Reject(_))
            ));
        }
        let event = host.event(PROFILES, Some("c-1"), r#"{"customer_id":"c-1","home_country":"DE","risk_tier":"extreme","account_age_days":1}"#, T0);
        assert!(matches!(
            host.handle(handle, &event),
            Err(Failure::Reject(_))
        ));
        let event = host.event("payments", Some("c-1"), "{}", T0);
        assert!(matches!(
            host.handle(handle, &event),
            Err(Failure::Reject(_))
        ));
        assert_eq!(host.state_len(), 0);

        let mut host = TestHost::new().with_config("alert_threshold", "high");
        let value = json!({"id":"tx-1","customer_id":"c-1","amount":1.0,"merchant":"m","country":"DE","timestamp_ms":T0});
        let event = host.event(TRANSACTIONS, Some("c-1"), &value.to_string(), T0);
        let failure = host.handle(handle, &event).expect_err("bad threshold");
        assert!(failure.reason().contains("alert_threshold"));
    }

    #[test]
    fn state_per_customer_stays_bounded() {
        let mut host = TestHost::new();
        for i in 0..500 {
            let country = ["DE", "FR", "NL", "ES", "IT", "AT", "BE", "PL", "CZ", "DK"][i % 10];
            pay(
                &mut host,
                &format!("tx-{i}"),
                "c-1",
                10.0,
                &format!("m-{i}"),
                country,
                T0 + i as i64 * 1000,
            );
        }
        let customer: Customer = host.state("c/c-1").expect("customer state");
        assert_eq!(customer.history.count, 500);
        assert_eq!(customer.history.merchants.len(), MAX_MERCHANTS);
        assert_eq!(customer.history.countries.len(), MAX_COUNTRIES);
        assert_eq!(customer.history.recent.len(), MAX_RECENT);
        assert_eq!(host.state_len(), 1);
    }

    /// A small version of the demo's traffic, generated inline: customers with usual shops
    /// and log-normal amounts, occasional new shops and trips, and planted takeovers and
    /// card-testing bursts. The scorer must find the planted ones and leave the rest alone.
    mod scenario {
        use std::collections::BTreeSet;

        use super::*;

        struct Rng(u64);

        impl Rng {
            fn next(&mut self) -> u64 {
                self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = self.0;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^ (z >> 31)
            }
            fn unit(&mut self) -> f64 {
                (self.next() >> 11) as f64 / (1u64 << 53) as f64
            }
            fn below(&mut self, n: u64) -> u64 {
                self.next() % n
            }
            fn normal(&mut self) -> f64 {
                let u = 1.0 - self.unit();
                (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * self.unit()).cos()
            }
        }

        struct Tx {
            customer: u64,
            amount: f64,
            merchant: String,
            country: &'static str,
            ts: i64,
            planted: bool,
        }

        fn traffic(seed: u64) -> Vec<Tx> {
            let mut rng = Rng(seed);
            let mut txs = Vec::new();
            for customer in 0..60 {
                let median = 15.0 + rng.unit() * 100.0;
                let sigma = 0.35 + rng.unit() * 0.3;
                for _ in 0..50 {
                    let ts = T0 + rng.below(120) as i64 * MINUTE + rng.below(60_000) as i64;
                    let merchant = if rng.unit() < 0.06 {
                        format!("m-{}", 100 + rng.below(300))
                    } else {
                        format!("m-{}", (customer + rng.below(6)) % 100)
                    };
                    let country = if rng.unit() < 0.01 { "FR" } else { "DE" };
                    let amount = ((median * (sigma * rng.normal()).exp()) * 100.0).round() / 100.0;
                    txs.push(Tx {
                        customer,
                        amount,
                        merchant,
                        country,
                        ts,
                        planted: false,
                    });
                }
            }
            for victim in [3, 17, 29, 41] {
                let ts = T0 + 90 * MINUTE + victim as i64 * 1000;
                let amount = 10.0 * mean_before(&txs, victim, ts);
                let merchant = format!("m-lux-{victim}");
                txs.push(Tx {
                    customer: victim,
                    amount,
                    merchant,
                    country: "NG",
                    ts,
                    planted: true,
                });
            }
            for victim in [8, 33] {
                let start = T0 + 100 * MINUTE;
                for probe in 0..8 {
                    let merchant = format!("m-web-{victim}-{probe}");
                    let amount = 0.5 + rng.unit() * 2.5;
                    let ts = start + probe * 12_000;
                    txs.push(Tx {
                        customer: victim,
                        amount,
                        merchant,
                        country: "DE",
                        ts,
                        planted: true,
                    });
                }
            }
            txs.sort_by_key(|tx| tx.ts);
            txs
        }

        fn mean_before(txs: &[Tx], customer: u64, ts: i64) -> f64 {
            let before: Vec<f64> = txs
                .iter()
                .filter(|t| t.customer == customer && t.ts < ts)
                .map(|t| t.amount)
                .collect();
            before.iter().sum::<f64>() / before.len() as f64
        }

        #[test]
        fn planted_fraud_is_found_and_normal_traffic_left_alone() {
            for seed in [1, 2, 3] {
                let mut host = TestHost::new();
                for customer in 0..60 {
                    profile(&mut host, &format!("c-{customer}"), "DE", "low", 900);
                }
                let txs = traffic(seed);
                let mut planted = BTreeSet::new();
                for (i, tx) in txs.iter().enumerate() {
                    let id = format!("tx-{i}");
                    if tx.planted {
                        planted.insert(id.clone());
                    }
                    let customer = format!("c-{}", tx.customer);
                    pay(
                        &mut host,
                        &id,
                        &customer,
                        tx.amount,
                        &tx.merchant,
                        tx.country,
                        tx.ts,
                    );
                }
                let alerted: BTreeSet<String> = alerts(&host)
                    .iter()
                    .filter_map(|a| a["transaction_id"].as_str().map(str::to_owned))
                    .collect();
                let caught = alerted.intersection(&planted).count();
                let false_alerts = alerted.difference(&planted).count();
                // Each burst's first probe looks like any new shop; the rest must be caught.
                assert!(
                    caught >= planted.len() - 2,
                    "seed {seed}: caught {caught} of {}",
                    planted.len()
                );
                assert!(
                    false_alerts <= 2,
                    "seed {seed}: {false_alerts} false alerts in {}",
                    txs.len()
                );
            }
        }
    }
}
