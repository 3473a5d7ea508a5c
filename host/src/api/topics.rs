//! Topics and records of the replica's log: list and create topics, produce records and
//! read them back a page at a time.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::wire::{
    ConsumeResponse, ConsumedRecord, CreateTopic, ProduceRequest, ProduceResponse, TopicInfo,
};
use super::{Api, ApiError, ApiResult, blocking};
use crate::log::{Idempotence, LogError, NewTopic};
use crate::model::clock::now_ms;

/// The answer to a failed log operation; `invalid` is the status of an unusable request.
fn answer(err: LogError, invalid: StatusCode) -> ApiError {
    match err {
        LogError::Exists(_) => ApiError(StatusCode::CONFLICT, err.to_string()),
        LogError::NoTopic(_) => ApiError::not_found(err),
        LogError::Invalid(_) => ApiError(invalid, err.to_string()),
        LogError::Elsewhere(_) => ApiError::bad(err),
        LogError::Unavailable(ref trouble) => {
            let status = if trouble.no_space {
                StatusCode::INSUFFICIENT_STORAGE
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            ApiError(status, err.to_string())
        }
        LogError::Failed(err) => ApiError(invalid, format!("{err:#}")),
    }
}

pub(super) async fn list(State(api): State<Api>) -> ApiResult<Json<Vec<TopicInfo>>> {
    blocking(move || {
        let topics = api.replica.log().topics().map_err(|e| match e {
            LogError::Failed(err) => ApiError::internal(err),
            other => answer(other, StatusCode::BAD_REQUEST),
        })?;
        Ok(Json(topics))
    })
    .await
}

pub(super) async fn create(
    State(api): State<Api>,
    Json(request): Json<CreateTopic>,
) -> ApiResult<(StatusCode, Json<TopicInfo>)> {
    blocking(move || {
        let log = api.replica.log();
        let topic = NewTopic {
            name: request.name.clone(),
            partitions: request.partitions,
            retention_ms: request.retention_ms,
            retention_bytes: request.retention_bytes,
        };
        match log.create_topic(&topic) {
            Ok(info) => Ok((StatusCode::CREATED, Json(info))),
            Err(LogError::Exists(name)) if request.if_not_exists => {
                let info = log
                    .topic(&name)
                    .map_err(|e| answer(e, StatusCode::BAD_REQUEST))?;
                Ok((StatusCode::OK, Json(info)))
            }
            Err(err) => Err(answer(err, StatusCode::BAD_REQUEST)),
        }
    })
    .await
}

pub(super) async fn produce(
    State(api): State<Api>,
    Path(topic): Path<String>,
    Json(mut request): Json<ProduceRequest>,
) -> ApiResult<Json<ProduceResponse>> {
    blocking(move || {
        let now = now_ms();
        let records = std::mem::take(&mut request.records)
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                r.into_record(now)
                    .map_err(|e| ApiError::bad(format!("record {i}: {e}")))
            })
            .collect::<ApiResult<Vec<_>>>()?;
        let producer = request.producer.as_ref();
        if let Some(producer) = producer
            && (producer.id.is_empty() || producer.id.len() > 200)
        {
            return Err(ApiError::bad("a producer id has 1 to 200 characters"));
        }
        let idempotence = producer.map(|p| Idempotence {
            producer: &p.id,
            sequence: p.sequence,
        });
        let placed = api
            .replica
            .log()
            .append(&topic, records, idempotence)
            .map_err(|e| answer(e, StatusCode::UNPROCESSABLE_ENTITY))?;
        Ok(Json(ProduceResponse { placed }))
    })
    .await
}

#[derive(Deserialize)]
pub(super) struct ConsumeQuery {
    partition: u32,
    offset: u64,
    #[serde(default = "default_max")]
    max: usize,
}

fn default_max() -> usize {
    500
}

pub(super) async fn consume(
    State(api): State<Api>,
    Path(topic): Path<String>,
    Query(query): Query<ConsumeQuery>,
) -> ApiResult<Json<ConsumeResponse>> {
    blocking(move || {
        let fetched = api
            .replica
            .log()
            .read(
                &topic,
                query.partition,
                query.offset,
                query.max.clamp(1, 10_000),
            )
            .map_err(|e| match e {
                LogError::Failed(err) => ApiError::internal(err),
                other => answer(other, StatusCode::BAD_REQUEST),
            })?;
        Ok(Json(ConsumeResponse {
            next: fetched.next,
            records: fetched
                .records
                .into_iter()
                .map(|(offset, record)| {
                    ConsumedRecord::new(&topic, query.partition, offset, record)
                })
                .collect(),
        }))
    })
    .await
}
