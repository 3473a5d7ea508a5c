//! Who answers and whether it is ready: `/v1/replica`, `/readyz`, and `/metrics` in
//! Prometheus text.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use super::{Api, ApiResult, blocking};

/// Who answers, and which replicas it knows.
#[derive(serde::Serialize)]
pub(super) struct ReplicaInfo {
    id: String,
    log: &'static str,
    replicas: Vec<String>,
}

pub(super) async fn replica(State(api): State<Api>) -> Json<ReplicaInfo> {
    Json(ReplicaInfo {
        id: api.replica.id.clone(),
        log: api.replica.log().kind(),
        replicas: api.replica.replicas(),
    })
}

pub(super) async fn ready(State(api): State<Api>) -> impl IntoResponse {
    match api.replica.readiness() {
        Ok(()) => (StatusCode::OK, "ready".to_owned()),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason),
    }
}

pub(super) async fn metrics(State(api): State<Api>) -> ApiResult<impl IntoResponse> {
    let text = blocking(move || {
        api.replica.refresh_gauges();
        Ok(api.replica.metrics.encode())
    })
    .await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    ))
}
