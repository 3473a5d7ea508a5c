//! What a run must show, checked the same way wherever it runs: the fields of a consumed
//! record (a missing one is an error, never an empty string), and a per-key counter's
//! outputs holding every count exactly once.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::Value;

/// The value of a record `fnctl consume` printed, as text.
pub fn value(record: &Value) -> Result<&str> {
    record["value"]
        .as_str()
        .with_context(|| format!("the record has no text value: {record}"))
}

/// The header `name` of a record `fnctl consume` printed.
pub fn header<'a>(record: &'a Value, name: &str) -> Result<&'a str> {
    record["headers"][name]
        .as_str()
        .with_context(|| format!("the record has no header {name}: {record}"))
}

/// Checks the outputs of a per-key counter (`key:count` lines) over `total` inputs spread
/// evenly over `keys` keys: every key counted every number from 1 to `total / keys`, each
/// exactly once. A lost record leaves a gap, a repeated one a duplicate.
pub fn counts_exactly_once<'a>(
    lines: impl IntoIterator<Item = &'a str>,
    keys: usize,
    total: usize,
) -> Result<()> {
    let mut per_key: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for line in lines {
        let (key, count) = line
            .split_once(':')
            .with_context(|| format!("{line:?} is not key:count"))?;
        let count = count
            .parse()
            .with_context(|| format!("{line:?} has no count"))?;
        per_key.entry(key).or_default().push(count);
    }
    ensure!(
        per_key.len() == keys,
        "{} keys were counted, not {keys}",
        per_key.len()
    );
    let expected: Vec<u64> = (1..=(total / keys) as u64).collect();
    for (key, mut counts) in per_key {
        counts.sort_unstable();
        if counts != expected {
            let repeated = counts.windows(2).filter(|w| w[0] == w[1]).count();
            let missing = expected
                .iter()
                .filter(|n| counts.binary_search(n).is_err())
                .count();
            bail!(
                "key {key}: {} counts, {repeated} repeated and {missing} missing (of 1..={})",
                counts.len(),
                expected.len()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_or_repeated_count_is_named() {
        let good = ["a:1", "b:1", "a:2", "b:2"];
        counts_exactly_once(good, 2, 4).expect("exactly once");
        let repeated = ["a:1", "b:1", "a:2", "b:2", "b:2"];
        let err = counts_exactly_once(repeated, 2, 4).expect_err("a duplicate");
        assert!(err.to_string().contains("1 repeated"), "{err}");
        let lost = ["a:1", "b:1", "a:2"];
        let err = counts_exactly_once(lost, 2, 4).expect_err("a gap");
        assert!(err.to_string().contains("1 missing"), "{err}");
        assert!(
            counts_exactly_once(["a:1"], 2, 2).is_err(),
            "a key never counted"
        );
    }

    #[test]
    fn missing_fields_are_errors() {
        let record = serde_json::json!({ "value": null, "headers": {} });
        assert!(value(&record).is_err());
        assert!(header(&record, "streamfn.failure.kind").is_err());
        let record = serde_json::json!({ "value": "v", "headers": { "h": "x" } });
        assert_eq!(value(&record).expect("value"), "v");
        assert_eq!(header(&record, "h").expect("header"), "x");
    }
}
