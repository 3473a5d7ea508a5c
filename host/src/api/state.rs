//! A function's committed state over HTTP: the entry under a key, or a scan, answered
//! from this replica's state for the partitions it runs and from the replica that runs
//! each of the others (the query forwarded with the caller's token), so a client needs
//! one address. A partition that cannot be read now (it is restoring, or its group is
//! rebalancing) answers 503 with `Retry-After`.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::wire::ErrorBody;
use super::{Api, blocking};
use crate::replica::state::{
    BadQuery, DEFAULT_SCAN, MAX_SCAN, NotNow, PartitionRead, StateAnswer, StateEntry, StateQuery,
};

/// Longest a forwarded query may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// Seconds a client is told to wait before asking again for a partition that cannot be
/// read now.
const RETRY_AFTER_SECS: &str = "1";

fn error(status: StatusCode, message: String) -> Response {
    let mut response = (status, Json(ErrorBody { error: message })).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            header::HeaderValue::from_static(RETRY_AFTER_SECS),
        );
    }
    response
}

/// The answer to a query that failed with `err`.
fn refused(err: anyhow::Error) -> Response {
    if err.is::<NotNow>() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{err:#}; try again in a moment"),
        );
    }
    if err.is::<BadQuery>() {
        return error(StatusCode::BAD_REQUEST, format!("{err:#}"));
    }
    error(StatusCode::INTERNAL_SERVER_ERROR, format!("{err:#}"))
}

pub(super) async fn read(
    State(api): State<Api>,
    Path(name): Path<String>,
    Query(query): Query<StateQuery>,
    headers: HeaderMap,
) -> Response {
    if api.replica.registry.current(&name).is_none() {
        return error(
            StatusCode::NOT_FOUND,
            format!("no function named {name:?} is deployed"),
        );
    }
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let answered = blocking(move || {
        let reads = api.replica.read_state(&name, &query);
        Ok(reads.and_then(|reads| answer(&name, &query, reads, authorization.as_deref())))
    })
    .await;
    match answered {
        Ok(Ok(answer)) => Json(answer).into_response(),
        Ok(Err(err)) => refused(err),
        Err(err) => err.into_response(),
    }
}

/// The entries of `reads`, those of partitions elsewhere asked of their replicas, in
/// key order; a scan's first `limit` of them.
fn answer(
    name: &str,
    query: &StateQuery,
    reads: Vec<PartitionRead>,
    authorization: Option<&str>,
) -> anyhow::Result<StateAnswer> {
    let mut entries = Vec::new();
    for read in reads {
        match read {
            PartitionRead::Read(found) => entries.extend(found),
            PartitionRead::Elsewhere { partition, admin } => {
                entries.extend(forward(&admin, name, query, partition, authorization)?);
            }
        }
    }
    entries.sort_by(|a, b| (&a.key, a.partition).cmp(&(&b.key, b.partition)));
    if query.key.is_none() {
        entries.truncate(query.limit.unwrap_or(DEFAULT_SCAN).clamp(1, MAX_SCAN));
    }
    Ok(StateAnswer {
        function: name.to_owned(),
        entries,
    })
}

/// Asks the replica at `admin`, which runs `partition`, for its part of `query`.
fn forward(
    admin: &str,
    name: &str,
    query: &StateQuery,
    partition: u32,
    authorization: Option<&str>,
) -> anyhow::Result<Vec<StateEntry>> {
    let url = format!(
        "{}/v1/deployments/{name}/state",
        admin.trim_end_matches('/')
    );
    let part = StateQuery {
        partition: Some(partition),
        forwarded: true,
        ..query.clone()
    };
    let mut request = ureq::get(&url)
        .config()
        .http_status_as_error(false)
        .timeout_global(Some(FORWARD_TIMEOUT))
        .build()
        .query_pairs(part.params());
    if let Some(authorization) = authorization {
        request = request.header("Authorization", authorization);
    }
    let mut response = request.call().map_err(|e| {
        NotNow(format!(
            "replica at {admin}, which runs partition {partition}, does not answer: {e}"
        ))
    })?;
    let status = response.status();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    if status.is_success() {
        let answer: StateAnswer = serde_json::from_str(&body)
            .map_err(|e| anyhow::anyhow!("replica at {admin} answered {body:?}: {e}"))?;
        return Ok(answer.entries);
    }
    let said = serde_json::from_str::<ErrorBody>(&body).map_or(body, |e| e.error);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        return Err(NotNow(said).into());
    }
    anyhow::bail!("replica at {admin}, which runs partition {partition}, answered {status}: {said}")
}
