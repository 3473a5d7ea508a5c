//! Functions: components uploaded, deployed, listed, their status and log lines, and
//! undeployed.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::wire::{CanaryRequest, RollbackRequest, UploadResponse};
use super::{Api, ApiError, ApiResult, blocking};
use crate::logbook::LogEntry;
use crate::model::deployment::{DeploySpec, Deployment, Replay};
use crate::replica::{FunctionStatus, Replica, VersionInfo};

pub(super) async fn upload(
    State(api): State<Api>,
    Path(sha256): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<UploadResponse>)> {
    blocking(move || {
        let sha256 = api
            .replica
            .upload(&body, Some(&sha256))
            .map_err(|err| api.refused(err, StatusCode::UNPROCESSABLE_ENTITY))?;
        Ok((
            StatusCode::CREATED,
            Json(UploadResponse {
                sha256,
                bytes: body.len(),
            }),
        ))
    })
    .await
}

/// Has the replica make a new version with `work`: 201 with it, or 422 with why the
/// replica refused.
async fn new_version(
    api: Api,
    work: impl FnOnce(&Replica) -> anyhow::Result<Deployment> + Send + 'static,
) -> ApiResult<(StatusCode, Json<Deployment>)> {
    blocking(move || {
        let deployment =
            work(&api.replica).map_err(|err| api.refused(err, StatusCode::UNPROCESSABLE_ENTITY))?;
        Ok((StatusCode::CREATED, Json(deployment)))
    })
    .await
}

pub(super) async fn deploy(
    State(api): State<Api>,
    Json(spec): Json<DeploySpec>,
) -> ApiResult<(StatusCode, Json<Deployment>)> {
    new_version(api, move |replica| replica.deploy(spec)).await
}

pub(super) async fn canary(
    State(api): State<Api>,
    Path(name): Path<String>,
    Json(request): Json<CanaryRequest>,
) -> ApiResult<(StatusCode, Json<Deployment>)> {
    if request.spec.name != name {
        return Err(ApiError::bad(format!(
            "the canary is of {name}, and its deployment names {}",
            request.spec.name
        )));
    }
    new_version(api, move |replica| {
        replica.deploy_canary(request.spec, request.percent, request.max_failure_rate)
    })
    .await
}

pub(super) async fn promote(
    State(api): State<Api>,
    Path(name): Path<String>,
) -> ApiResult<Json<Deployment>> {
    blocking(move || {
        api.replica
            .promote(&name)
            .map(Json)
            .map_err(|err| api.refused(err, StatusCode::UNPROCESSABLE_ENTITY))
    })
    .await
}

pub(super) async fn list(State(api): State<Api>) -> Json<Vec<Deployment>> {
    Json(api.replica.registry.active())
}

pub(super) async fn status(
    State(api): State<Api>,
    Path(name): Path<String>,
) -> ApiResult<Json<FunctionStatus>> {
    blocking(move || {
        api.replica
            .status(&name)
            .map(Json)
            .map_err(ApiError::not_found)
    })
    .await
}

pub(super) async fn undeploy(
    State(api): State<Api>,
    Path(name): Path<String>,
) -> ApiResult<Json<Deployment>> {
    blocking(move || {
        api.replica
            .undeploy(&name)
            .map(Json)
            .map_err(|err| api.refused(err, StatusCode::NOT_FOUND))
    })
    .await
}

pub(super) async fn versions(
    State(api): State<Api>,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<VersionInfo>>> {
    blocking(move || {
        api.replica
            .versions_of(&name)
            .map(Json)
            .map_err(ApiError::not_found)
    })
    .await
}

pub(super) async fn replay(
    State(api): State<Api>,
    Path(name): Path<String>,
    Json(replay): Json<Replay>,
) -> ApiResult<(StatusCode, Json<Deployment>)> {
    new_version(api, move |replica| replica.replay(&name, replay)).await
}

pub(super) async fn rollback(
    State(api): State<Api>,
    Path(name): Path<String>,
    Json(request): Json<RollbackRequest>,
) -> ApiResult<(StatusCode, Json<Deployment>)> {
    new_version(api, move |replica| replica.rollback(&name, request.to)).await
}

#[derive(Deserialize)]
pub(super) struct LogsQuery {
    #[serde(default)]
    after: u64,
    #[serde(default = "default_max")]
    max: usize,
}

fn default_max() -> usize {
    500
}

pub(super) async fn logs(
    State(api): State<Api>,
    Path(name): Path<String>,
    Query(query): Query<LogsQuery>,
) -> ApiResult<Json<Vec<LogEntry>>> {
    if api.replica.registry.history(&name).is_none() {
        return Err(ApiError::not_found(format!(
            "no function named {name:?} was ever deployed"
        )));
    }
    Ok(Json(api.replica.logs.after(
        &name,
        query.after,
        query.max.clamp(1, 10_000),
    )))
}
