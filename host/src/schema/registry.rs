//! A client of a Confluent-compatible schema registry's REST API (Confluent Schema
//! Registry, Apicurio's `/apis/ccompat/v7`, Redpanda's): schemas by id, each fetched once
//! and kept, since a registered id never changes its schema, and subjects' latest
//! schemas, asked again every so often, since a subject moves on.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use base64::Engine as _;
use serde::Deserialize;

use super::avro::AvroSchema;
use super::value_subject;

/// Longest one request to the registry may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest answer read from the registry.
const MAX_ANSWER: u64 = 16 << 20;

/// How long a subject's latest schema is taken as still the latest.
const LATEST_FOR: Duration = Duration::from_secs(30);

/// A schema registry and the schemas fetched from it.
pub struct SchemaRegistry {
    base: String,
    agent: ureq::Agent,
    authorization: Option<String>,
    by_id: RwLock<HashMap<u32, Arc<Registered>>>,
    subjects: RwLock<HashMap<(u32, String), String>>,
    latest: RwLock<HashMap<String, (Instant, Arc<Registered>)>>,
    /// Lookups the registry refused, with when and why.
    refused: RwLock<HashMap<String, (Instant, String)>>,
}

/// The Avro schema of a registered `text` of `kind`.
fn avro_of(id: u32, kind: Option<&str>, text: &str) -> Result<AvroSchema, Lookup> {
    let kind = kind.unwrap_or("AVRO");
    if kind != "AVRO" {
        return Err(Lookup::Refused(format!(
            "schema {id} is {kind}, and the topic's format is Avro"
        )));
    }
    AvroSchema::parse(text).map_err(|e| Lookup::Refused(format!("schema {id}: {e}")))
}

impl std::fmt::Debug for SchemaRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaRegistry")
            .field("url", &self.base)
            .finish_non_exhaustive()
    }
}

/// A schema as registered.
#[derive(Debug)]
pub struct Registered {
    /// Its id.
    pub id: u32,
    /// The parsed schema.
    pub avro: AvroSchema,
}

/// Why a schema could not be had.
#[derive(Debug, thiserror::Error)]
pub enum Lookup {
    /// The registry answered that it has no such schema, or one this host cannot read:
    /// a fault of the record that names it.
    #[error("{0}")]
    Refused(String),
    /// The registry could not be asked: nothing is wrong with the record, try again.
    #[error("{0}")]
    Unreachable(anyhow::Error),
}

#[derive(Deserialize)]
struct SchemaAnswer {
    schema: String,
    #[serde(default, rename = "schemaType")]
    schema_type: Option<String>,
}

#[derive(Deserialize)]
struct LatestAnswer {
    id: u32,
    schema: String,
    #[serde(default, rename = "schemaType")]
    schema_type: Option<String>,
}

#[derive(Deserialize)]
struct SubjectVersion {
    subject: String,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    #[serde(default)]
    error_code: u32,
    #[serde(default)]
    message: String,
}

/// The registry's error codes for a subject, version or schema it does not have.
const NOT_FOUND: [u32; 3] = [40401, 40402, 40403];

impl SchemaRegistry {
    /// A client of the registry at `url` (e.g. `http://registry:8081`), with `options` as
    /// Confluent clients take them; `basic.auth.user.info=USER:PASSWORD` is the one known.
    pub fn new(url: &str, options: &[(String, String)]) -> Result<SchemaRegistry> {
        anyhow::ensure!(
            url.starts_with("http://") || url.starts_with("https://"),
            "the schema registry URL {url:?} must start with http:// or https://"
        );
        let mut authorization = None;
        for (key, value) in options {
            match key.as_str() {
                "basic.auth.user.info" => {
                    let token = base64::engine::general_purpose::STANDARD.encode(value);
                    authorization = Some(format!("Basic {token}"));
                }
                other => {
                    bail!("unknown schema registry option {other:?} (known: basic.auth.user.info)")
                }
            }
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .build()
            .into();
        Ok(SchemaRegistry {
            base: url.trim_end_matches('/').to_owned(),
            agent,
            authorization,
            by_id: RwLock::new(HashMap::new()),
            subjects: RwLock::new(HashMap::new()),
            latest: RwLock::new(HashMap::new()),
            refused: RwLock::new(HashMap::new()),
        })
    }

    /// The registry's address.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The schema registered as `id`.
    pub fn schema(&self, id: u32) -> Result<Arc<Registered>, Lookup> {
        if let Some(found) = self.by_id.read().ok().and_then(|m| m.get(&id).cloned()) {
            return Ok(found);
        }
        let key = format!("schema {id}");
        self.unless_refused(&key)?;
        let found = self
            .get::<SchemaAnswer>(&format!("/schemas/ids/{id}"))
            .and_then(|answer| avro_of(id, answer.schema_type.as_deref(), &answer.schema));
        let avro = self.remember_refusal(&key, found)?;
        let registered = Arc::new(Registered { id, avro });
        if let Ok(mut cache) = self.by_id.write() {
            cache.insert(id, registered.clone());
        }
        Ok(registered)
    }

    /// The subject schema `id` is registered under, `topic`'s value subject when it is one
    /// of them, else the first; the value subject when the registry does not say. An
    /// error means the registry could not be asked.
    pub fn subject(&self, id: u32, topic: &str) -> anyhow::Result<String> {
        let key = (id, topic.to_owned());
        if let Some(found) = self.subjects.read().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(found);
        }
        let wanted = value_subject(topic);
        let subject = match self.get::<Vec<SubjectVersion>>(&format!("/schemas/ids/{id}/versions"))
        {
            Ok(subjects) => subjects
                .iter()
                .find(|s| s.subject == wanted)
                .or(subjects.first())
                .map_or(wanted.clone(), |s| s.subject.clone()),
            Err(Lookup::Refused(_)) => wanted,
            Err(Lookup::Unreachable(e)) => return Err(e),
        };
        if let Ok(mut cache) = self.subjects.write() {
            cache.insert(key, subject.clone());
        }
        Ok(subject)
    }

    /// The latest schema of `subject` as last asked, asking only when it never was.
    pub fn known_latest(&self, subject: &str) -> Result<Arc<Registered>, Lookup> {
        let cached = self
            .latest
            .read()
            .ok()
            .and_then(|m| m.get(subject).cloned());
        match cached {
            Some((_, registered)) => Ok(registered),
            None => self.latest(subject),
        }
    }

    /// The latest schema of `subject`, asked again at most every [`LATEST_FOR`].
    pub fn latest(&self, subject: &str) -> Result<Arc<Registered>, Lookup> {
        let cached = self
            .latest
            .read()
            .ok()
            .and_then(|m| m.get(subject).cloned());
        if let Some((at, registered)) = cached
            && at.elapsed() < LATEST_FOR
        {
            return Ok(registered);
        }
        let key = format!("subject {subject}");
        self.unless_refused(&key)?;
        let found = self
            .get::<LatestAnswer>(&format!("/subjects/{subject}/versions/latest"))
            .and_then(|answer| {
                let avro = avro_of(answer.id, answer.schema_type.as_deref(), &answer.schema)?;
                Ok(Arc::new(Registered {
                    id: answer.id,
                    avro,
                }))
            });
        let registered = self.remember_refusal(&key, found)?;
        if let Ok(mut cache) = self.latest.write() {
            cache.insert(subject.to_owned(), (Instant::now(), registered.clone()));
        }
        Ok(registered)
    }

    /// The refusal of `key` when one was answered less than [`LATEST_FOR`] ago: a record
    /// naming an unknown schema must not cost a request each.
    fn unless_refused(&self, key: &str) -> Result<(), Lookup> {
        let refused = self.refused.read().ok().and_then(|m| m.get(key).cloned());
        match refused {
            Some((at, why)) if at.elapsed() < LATEST_FOR => Err(Lookup::Refused(why)),
            _ => Ok(()),
        }
    }

    fn remember_refusal<T>(&self, key: &str, found: Result<T, Lookup>) -> Result<T, Lookup> {
        if let (Err(Lookup::Refused(why)), Ok(mut refused)) = (&found, self.refused.write()) {
            refused.insert(key.to_owned(), (Instant::now(), why.clone()));
        }
        found
    }

    fn get<T: for<'de> Deserialize<'de>>(&self, path: &str) -> Result<T, Lookup> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .agent
            .get(&url)
            .header("Accept", "application/vnd.schemaregistry.v1+json");
        if let Some(authorization) = &self.authorization {
            request = request.header("Authorization", authorization);
        }
        let unreachable = |e: anyhow::Error| Lookup::Unreachable(e.context(format!("GET {url}")));
        let mut response = request
            .call()
            .map_err(|e| unreachable(anyhow!("cannot reach the schema registry: {e}")))?;
        let status = response.status();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_string()
            .context("reading the schema registry's answer")
            .map_err(unreachable)?;
        if status.is_success() {
            return serde_json::from_str(&body)
                .map_err(|e| unreachable(anyhow!("the schema registry's answer {body:?}: {e}")));
        }
        let answer = serde_json::from_str::<ErrorAnswer>(&body).ok();
        let code = answer.as_ref().map_or(0, |e| e.error_code);
        let message = answer.map_or(body, |e| e.message);
        // Only the registry's own "no such schema, subject or version" is the record's
        // fault; a 404 of anything else (a wrong URL, a proxy) is the setup's.
        if status.as_u16() == 404 && NOT_FOUND.contains(&code) {
            return Err(Lookup::Refused(format!(
                "the schema registry says: {message}"
            )));
        }
        Err(unreachable(anyhow!(
            "the schema registry answered {status}: {message}"
        )))
    }
}
