//! recommendation-updater: keeps each user's interest in categories, decayed by event time,
//! and the popular items of every category, and sends a user a fresh top-N list of items
//! whenever their list changes.
//!
//! Popularity is counted per partition: activity is keyed by user, so each partition sees
//! its own share of users, which is a fair sample of what is popular. It is a live
//! re-ranker over a small state, not a model trainer: it knows no item it has not seen.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use streamfn::{Context, Event, Failure};

const ACTIVITY: &str = "user-activity";
const RECOMMENDATIONS: &str = "user-recommendations";

/// Half-life of interest and popularity, unless config `half_life_ms` says.
pub const DEFAULT_HALF_LIFE_MS: i64 = 60 * 60_000;
/// Items per recommendation list, unless config `top_n` says.
pub const DEFAULT_TOP_N: usize = 5;
/// The longest list config `top_n` may ask for.
const MAX_TOP_N: usize = 50;

/// Categories a list draws from, and that the record names.
const TOP_CATEGORIES: usize = 3;
/// Bounds of the state, so that it stays small whatever the traffic.
const MAX_USER_CATEGORIES: usize = 16;
const MAX_RECENT_ITEMS: usize = 10;
const MAX_PURCHASED_ITEMS: usize = 50;
const MAX_POPULAR_ITEMS: usize = 50;
/// An item the user looked at lately and did not buy is the likeliest next purchase, so it
/// ranks above equally popular ones.
const RECENT_BOOST: f64 = 1.5;

/// What a user did with an item; a stronger signal weighs more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Action {
    View,
    Click,
    AddToCart,
    Purchase,
}

impl Action {
    fn weight(self) -> f64 {
        match self {
            Action::View => 1.0,
            Action::Click => 2.0,
            Action::AddToCart => 4.0,
            Action::Purchase => 8.0,
        }
    }
}

/// A `user-activity` record.
#[derive(Debug, Deserialize)]
struct Activity {
    user_id: String,
    item_id: String,
    category: String,
    action: Action,
}

/// Scores that halve every half-life, all kept as of one time.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Decayed {
    as_of_ms: i64,
    scores: BTreeMap<String, f64>,
}

impl Decayed {
    /// Adds `weight` to `key` at `ts`, then drops the weakest keys beyond `cap`. A newcomer
    /// to a full set may be the weakest and go at once; as the others decay, the next
    /// activity on it gets in.
    fn add(&mut self, key: &str, weight: f64, ts: i64, half_life_ms: i64, cap: usize) {
        let weight = if ts >= self.as_of_ms {
            let factor = decay(ts - self.as_of_ms, half_life_ms);
            self.scores.values_mut().for_each(|s| *s *= factor);
            self.as_of_ms = ts;
            weight
        } else {
            // An event older than the scores counts as already decayed to their time.
            weight * decay(self.as_of_ms - ts, half_life_ms)
        };
        *self.scores.entry(key.to_owned()).or_insert(0.0) += weight;
        while self.scores.len() > cap {
            let Some(weakest) = self.ranked().last().map(|(k, _)| (*k).to_owned()) else {
                break;
            };
            self.scores.remove(&weakest);
        }
    }

    /// Keys by score, highest first; equal scores by key, so the order is deterministic.
    fn ranked(&self) -> Vec<(&str, f64)> {
        let mut ranked: Vec<(&str, f64)> =
            self.scores.iter().map(|(k, s)| (k.as_str(), *s)).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        ranked
    }

    fn total(&self) -> f64 {
        self.scores.values().sum()
    }
}

fn decay(elapsed_ms: i64, half_life_ms: i64) -> f64 {
    (-(elapsed_ms as f64) / half_life_ms as f64).exp2()
}

/// One user's profile.
#[derive(Debug, Default, Serialize, Deserialize)]
struct User {
    categories: Decayed,
    /// Most recent last.
    recent: Vec<String>,
    purchased: Vec<String>,
    /// The items of the last list sent, to send only changes.
    emitted: Vec<String>,
}

/// What the function sends to `user-recommendations`.
#[derive(Debug, Serialize)]
struct Recommendations<'a> {
    user_id: &'a str,
    top_categories: Vec<CategoryScore<'a>>,
    items: &'a [String],
    timestamp_ms: i64,
}

#[derive(Debug, Serialize)]
struct CategoryScore<'a> {
    category: &'a str,
    score: f64,
}

/// Updates the user's profile and the category's popularity with one activity, and sends
/// the user's recommendations if they changed.
pub fn handle(event: &Event, ctx: &mut Context) -> Result<(), Failure> {
    if event.topic != ACTIVITY {
        return Err(Failure::reject(format!(
            "recommendation-updater reads `{ACTIVITY}`, not `{}`",
            event.topic
        )));
    }
    let activity: Activity = event.json()?;
    let half_life_ms: i64 = ctx.config_or("half_life_ms", DEFAULT_HALF_LIFE_MS)?;
    let top_n: usize = ctx.config_or("top_n", DEFAULT_TOP_N)?;
    if half_life_ms <= 0 || !(1..=MAX_TOP_N).contains(&top_n) {
        return Err(Failure::reject(format!(
            "config half_life_ms={half_life_ms} must be positive and top_n={top_n} within 1..={MAX_TOP_N}"
        )));
    }
    let ts = event.timestamp_ms;
    let weight = activity.action.weight();

    let pop_key = popularity_key(&activity.category);
    let mut popularity: Decayed = ctx.get_json(&pop_key)?.unwrap_or_default();
    popularity.add(
        &activity.item_id,
        weight,
        ts,
        half_life_ms,
        MAX_POPULAR_ITEMS,
    );
    ctx.set_json(&pop_key, &popularity);

    let user_key = format!("u/{}", activity.user_id);
    let mut user: User = ctx.get_json(&user_key)?.unwrap_or_default();
    user.categories.add(
        &activity.category,
        weight,
        ts,
        half_life_ms,
        MAX_USER_CATEGORIES,
    );
    remember(&mut user.recent, &activity.item_id, MAX_RECENT_ITEMS);
    if activity.action == Action::Purchase {
        remember(&mut user.purchased, &activity.item_id, MAX_PURCHASED_ITEMS);
    }

    let top: Vec<(&str, f64)> = user
        .categories
        .ranked()
        .into_iter()
        .take(TOP_CATEGORIES)
        .collect();
    let mut others: BTreeMap<&str, Decayed> = BTreeMap::new();
    for (category, _) in top.iter().filter(|(c, _)| *c != activity.category) {
        others.insert(
            category,
            ctx.get_json(popularity_key(category))?.unwrap_or_default(),
        );
    }
    let popular: Vec<(f64, &Decayed)> = top
        .iter()
        .filter_map(|(category, score)| {
            let doc = if *category == activity.category {
                Some(&popularity)
            } else {
                others.get(category)
            };
            doc.map(|doc| (*score, doc))
        })
        .collect();
    let items = recommend(&user, &popular, top_n);

    if items != user.emitted {
        let recommendations = Recommendations {
            user_id: &activity.user_id,
            top_categories: top
                .iter()
                .map(|(category, score)| CategoryScore {
                    category,
                    score: (score * 1000.0).round() / 1000.0,
                })
                .collect(),
            items: &items,
            timestamp_ms: ts,
        };
        ctx.emit_json(RECOMMENDATIONS, Some(&activity.user_id), &recommendations);
        user.emitted = items;
    }
    ctx.set_json(&user_key, &user);
    Ok(())
}

streamfn::export!(handle);

/// The `top_n` most popular items of the user's top categories that they have not bought.
/// An item's rank is its share of its category's popularity times the category's share of
/// the user's interest, so a list mixes categories as the user's attention does.
fn recommend(user: &User, popular: &[(f64, &Decayed)], top_n: usize) -> Vec<String> {
    let interest: f64 = popular.iter().map(|(score, _)| score).sum();
    let mut candidates: BTreeMap<&str, f64> = BTreeMap::new();
    for (score, doc) in popular {
        let total = doc.total();
        if interest <= 0.0 || total <= 0.0 {
            continue;
        }
        for (item, pop) in &doc.scores {
            if user.purchased.contains(item) {
                continue;
            }
            let boost = if user.recent.contains(item) {
                RECENT_BOOST
            } else {
                1.0
            };
            let rank = score / interest * pop / total * boost;
            let best = candidates.entry(item).or_insert(0.0);
            *best = best.max(rank);
        }
    }
    let mut ranked: Vec<(&str, f64)> = candidates.into_iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    ranked
        .into_iter()
        .take(top_n)
        .map(|(item, _)| item.to_owned())
        .collect()
}

fn popularity_key(category: &str) -> String {
    format!("pop/{category}")
}

/// Marks `item` as the most recent of `list`, dropping the oldest beyond `cap`.
fn remember(list: &mut Vec<String>, item: &str, cap: usize) {
    list.retain(|i| i != item);
    if list.len() >= cap {
        list.remove(0);
    }
    list.push(item.to_owned());
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use streamfn::testing::TestHost;

    use super::*;

    const T0: i64 = 1_767_225_600_000;
    const HOUR: i64 = 3_600_000;

    fn act(host: &mut TestHost, user: &str, item: &str, category: &str, action: &str, ts: i64) {
        let value = json!({
            "user_id": user, "item_id": item, "category": category, "action": action,
            "timestamp_ms": ts,
        });
        let event = host.event(ACTIVITY, Some(user), &value.to_string(), ts);
        host.handle(handle, &event).expect("activity handled");
    }

    fn lists(host: &TestHost, user: &str) -> Vec<Value> {
        host.outputs_json::<Value>(RECOMMENDATIONS)
            .into_iter()
            .filter(|r| r["user_id"] == user)
            .collect()
    }

    fn last_items(host: &TestHost, user: &str) -> Value {
        lists(host, user)
            .last()
            .map(|r| r["items"].clone())
            .unwrap_or(Value::Null)
    }

    #[test]
    fn a_first_activity_recommends_and_an_unchanged_list_is_not_sent_again() {
        let mut host = TestHost::new();
        act(&mut host, "u-1", "i-1", "books", "view", T0);
        assert_eq!(
            lists(&host, "u-1"),
            vec![json!({
                "user_id": "u-1", "top_categories": [{"category": "books", "score": 1.0}],
                "items": ["i-1"], "timestamp_ms": T0,
            })]
        );
        assert_eq!(host.outputs()[0].key.as_deref(), Some(&b"u-1"[..]));
        act(&mut host, "u-1", "i-1", "books", "click", T0 + 1000);
        assert_eq!(lists(&host, "u-1").len(), 1);
    }

    #[test]
    fn lists_hold_popular_items_of_the_users_categories_not_yet_bought() {
        let mut host = TestHost::new();
        act(&mut host, "u-2", "i-7", "books", "purchase", T0);
        act(&mut host, "u-3", "i-8", "books", "add_to_cart", T0);
        act(&mut host, "u-4", "i-9", "books", "view", T0);
        act(&mut host, "u-5", "i-50", "toys", "purchase", T0);
        act(&mut host, "u-1", "i-9", "books", "click", T0);
        // i-7 8/15 of books; i-9 3/15, boosted as u-1 just looked at it; i-8 4/15.
        assert_eq!(last_items(&host, "u-1"), json!(["i-7", "i-9", "i-8"]));
        act(&mut host, "u-1", "i-7", "books", "purchase", T0);
        assert_eq!(last_items(&host, "u-1"), json!(["i-9", "i-8"]));
        assert_eq!(lists(&host, "u-1").len(), 2);
    }

    #[test]
    fn lists_mix_the_top_categories_by_interest() {
        let mut host = TestHost::new().with_config("top_n", "3");
        act(&mut host, "u-2", "i-1", "books", "purchase", T0);
        act(&mut host, "u-2", "i-2", "books", "view", T0);
        act(&mut host, "u-3", "i-50", "toys", "purchase", T0);
        act(&mut host, "u-3", "i-51", "toys", "view", T0);
        act(&mut host, "u-1", "i-3", "garden", "view", T0);
        act(&mut host, "u-1", "i-2", "books", "add_to_cart", T0);
        assert_eq!(last_items(&host, "u-1"), json!(["i-1", "i-2", "i-3"]));
        act(&mut host, "u-1", "i-51", "toys", "add_to_cart", T0);
        let last = lists(&host, "u-1").pop().expect("a list");
        assert_eq!(
            last["top_categories"],
            json!([{"category": "books", "score": 4.0}, {"category": "toys", "score": 4.0}, {"category": "garden", "score": 1.0}])
        );
        // Books and toys weigh alike: their best sellers lead, then the boosted i-2 (which
        // ties with i-51 and wins on its id); garden's only item, with a ninth of the
        // interest, falls off.
        assert_eq!(last["items"], json!(["i-1", "i-50", "i-2"]));
    }

    #[test]
    fn interest_decays_with_event_time() {
        let mut host = TestHost::new();
        act(&mut host, "u-1", "i-1", "books", "purchase", T0);
        act(&mut host, "u-1", "i-50", "toys", "view", T0 + 4 * HOUR);
        let last = lists(&host, "u-1").pop().expect("a list");
        assert_eq!(
            last["top_categories"],
            json!([{"category": "toys", "score": 1.0}, {"category": "books", "score": 0.5}])
        );

        // An activity older than the profile counts as decayed to the profile's time.
        let mut host = TestHost::new().with_config("half_life_ms", "1800000");
        act(&mut host, "u-1", "i-1", "books", "view", T0 + HOUR);
        act(&mut host, "u-1", "i-50", "toys", "purchase", T0);
        let user: User = host.state_json("u/u-1").expect("user state");
        assert_eq!(user.categories.as_of_ms, T0 + HOUR);
        assert_eq!(user.categories.scores["toys"], 2.0);
        assert_eq!(user.categories.scores["books"], 1.0);
    }

    #[test]
    fn state_stays_bounded() {
        let mut host = TestHost::new().with_config("top_n", "2");
        for i in 0..200 {
            act(
                &mut host,
                "u-1",
                &format!("i-{i}"),
                &format!("cat-{}", i % 40),
                "purchase",
                T0 + i,
            );
            act(&mut host, "u-2", &format!("i-{i}"), "books", "view", T0 + i);
        }
        let user: User = host.state_json("u/u-1").expect("user state");
        assert_eq!(user.purchased.len(), MAX_PURCHASED_ITEMS);
        assert_eq!(user.recent.len(), MAX_RECENT_ITEMS);
        assert_eq!(user.categories.scores.len(), MAX_USER_CATEGORIES);
        let books: Decayed = host.state_json("pop/books").expect("popularity");
        assert_eq!(books.scores.len(), MAX_POPULAR_ITEMS);
        assert!(
            lists(&host, "u-2")
                .iter()
                .all(|r| r["items"].as_array().is_some_and(|i| i.len() <= 2))
        );
    }

    #[test]
    fn bad_records_and_config_are_rejected_without_effects() {
        let mut host = TestHost::new();
        let bad_action =
            json!({"user_id": "u-1", "item_id": "i-1", "category": "books", "action": "like"});
        for (topic, value) in [
            (ACTIVITY, "nope".to_owned()),
            (ACTIVITY, bad_action.to_string()),
            ("clicks", "{}".to_owned()),
        ] {
            let event = host.event(topic, Some("u-1"), &value, T0);
            assert!(
                matches!(host.handle(handle, &event), Err(Failure::Reject(_))),
                "{value}"
            );
        }
        assert_eq!(host.state_len(), 0);

        for (key, value) in [("top_n", "0"), ("top_n", "many"), ("half_life_ms", "-5")] {
            let mut host = TestHost::new().with_config(key, value);
            let good =
                json!({"user_id": "u-1", "item_id": "i-1", "category": "books", "action": "view"});
            let event = host.event(ACTIVITY, Some("u-1"), &good.to_string(), T0);
            assert!(
                matches!(host.handle(handle, &event), Err(Failure::Reject(_))),
                "{key}={value}"
            );
        }
    }
}
