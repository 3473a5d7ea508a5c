//! `fnctl versions` and `fnctl rollback`: a function's versions, and deploying one of
//! them again without its file.

use anyhow::Result;
use clap::Args;

use super::Globals;
use crate::output::{self, Format};

/// List every version of a function: when it was deployed, its component, limits and
/// config, and which one runs where.
#[derive(Debug, Args)]
pub struct Versions {
    /// Function name.
    name: String,
}

/// Deploy an earlier version of a function again, as its next version, from the
/// component the replica kept: nothing to upload. The runner swaps it in between two
/// batches, as a deploy does: nothing is lost or handled twice.
#[derive(Debug, Args)]
pub struct Rollback {
    /// Function name.
    name: String,
    /// The version to go back to [default: the one before the running one].
    #[arg(long)]
    to: Option<u32>,
}

/// A time in milliseconds since the Unix epoch, as UTC for people.
fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

impl Versions {
    /// Runs the command.
    pub fn run(self, globals: &Globals) -> Result<()> {
        let versions = globals.client()?.versions(&self.name)?;
        if globals.format == Format::Json {
            return output::json(&versions);
        }
        let rows: Vec<Vec<String>> = versions
            .iter()
            .map(|v| {
                let spec = &v.deployment.spec;
                let config: Vec<String> = spec
                    .config
                    .iter()
                    .map(|(k, val)| format!("{k}={val}"))
                    .collect();
                vec![
                    v.deployment.version.to_string(),
                    utc(v.deployment.deployed_at_ms),
                    spec.component.chars().take(12).collect(),
                    format!(
                        "fuel {} memory {} MiB batch {}",
                        spec.limits.fuel_per_event, spec.limits.memory_mib, spec.limits.max_batch
                    ),
                    if config.is_empty() {
                        "-".to_owned()
                    } else {
                        config.join(",")
                    },
                    if v.running {
                        format!("running on {}", v.replicas.join(", "))
                    } else {
                        String::new()
                    },
                ]
            })
            .collect();
        output::table(
            &["VERSION", "DEPLOYED", "SHA256", "LIMITS", "CONFIG", ""],
            &rows,
        );
        Ok(())
    }
}

impl Rollback {
    /// Runs the command.
    pub fn run(self, globals: &Globals) -> Result<()> {
        let deployment = globals.client()?.rollback(&self.name, self.to)?;
        match globals.format {
            Format::Json => output::json(&deployment),
            Format::Text => {
                println!(
                    "deployed {} version {} again as version {} (sha256 {})",
                    deployment.spec.name,
                    self.to
                        .map_or_else(|| "before the running one".to_owned(), |v| v.to_string()),
                    deployment.version,
                    &deployment.spec.component[..12]
                );
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn times_print_as_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00Z");
        assert_eq!(utc(1_767_225_600_000), "2026-01-01 00:00:00Z");
        assert_eq!(utc(951_782_400_000 + 3_723_000), "2000-02-29 01:02:03Z");
    }
}
