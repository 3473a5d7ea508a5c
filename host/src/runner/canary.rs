//! A canary that ends by itself: once it has handled enough events on this replica, a
//! failure rate above the bound given at deploy gives every partition back to the
//! version it was deployed beside.

use super::Runner;
use crate::metrics::VersionFigures;
use crate::model::clock::now_ms;
use crate::model::deployment::Canary;

impl Runner {
    /// Ends the running canary when its failure rate here passed its bound.
    pub(super) fn judge_canary(&self) {
        let Some(deployment) = self.active.as_ref().map(|a| a.deployment()) else {
            return;
        };
        // Only a canary with a bound is judged: the figures are not read otherwise.
        let Some(canary) = deployment
            .canary
            .as_ref()
            .filter(|c| c.max_failure_rate.is_some())
        else {
            return;
        };
        let figures = self.context.metrics.figures(&self.name, deployment.version);
        let Some(cause) = verdict(canary, &figures) else {
            return;
        };
        match self.context.registry.end_canary(
            &self.name,
            deployment.version,
            Some(cause.clone()),
            now_ms(),
        ) {
            Ok(Some(ended)) => {
                tracing::warn!(function = %self.name, version = ended.version, "{cause}: version {} runs every partition again", canary.base);
            }
            Ok(None) => {}
            Err(err) => {
                tracing::error!(function = %self.name, "{cause}, and the canary cannot be ended: {err:#}");
            }
        }
    }
}

/// Why `canary`, having done what `figures` say, must end, if it must.
fn verdict(canary: &Canary, figures: &VersionFigures) -> Option<String> {
    let bound = canary.max_failure_rate?;
    if figures.records_in < Canary::JUDGED_AFTER || figures.failure_rate() <= bound {
        return None;
    }
    Some(format!(
        "canary version {} failed {} of {} events ({:.1}%), above its bound of {:.1}%",
        figures.version,
        figures.failed,
        figures.records_in,
        figures.failure_rate() * 100.0,
        bound * 100.0
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(bound: Option<f64>) -> Canary {
        Canary {
            base: 1,
            percent: 50,
            partitions: vec![0],
            max_failure_rate: bound,
        }
    }

    fn figures(records_in: u64, failed: u64) -> VersionFigures {
        VersionFigures {
            version: 2,
            records_in,
            failed,
            ..VersionFigures::default()
        }
    }

    #[test]
    fn a_canary_ends_only_past_its_bound_and_after_enough_events() {
        let bounded = canary(Some(0.05));
        assert_eq!(verdict(&bounded, &figures(99, 99)), None, "too few events");
        assert_eq!(verdict(&bounded, &figures(200, 10)), None, "at the bound");
        let said = verdict(&bounded, &figures(200, 11)).expect("past the bound");
        assert_eq!(
            said,
            "canary version 2 failed 11 of 200 events (5.5%), above its bound of 5.0%"
        );
        assert_eq!(verdict(&canary(None), &figures(200, 200)), None, "no bound");
    }
}
