//! Kafka's authorization failures said the way an operator fixes them: which operation on
//! which resource the replica's principal lacks an ACL for. librdkafka only gives an error
//! code, and some of its clients retry a denial quietly; the replica's clients turn one
//! into an error that names the ACL to grant.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// What a denied request wanted to reach.
#[derive(Debug, Clone, Copy)]
pub enum Resource<'a> {
    /// A topic.
    Topic(&'a str),
    /// Some of these topics (the consumer does not say which).
    Topics(&'a [String]),
    /// A consumer group.
    Group(&'a str),
    /// A transactional producer's id.
    TransactionalId(&'a str),
}

impl std::fmt::Display for Resource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Resource::Topic(name) => write!(f, "topic {name}"),
            Resource::Topics(names) => write!(f, "topics {}", names.join(", ")),
            Resource::Group(name) => write!(f, "group {name}"),
            Resource::TransactionalId(id) => write!(f, "transactional id {id}"),
        }
    }
}

/// Whether `code` says the broker's authorizer refused the request.
pub fn is_denial(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::GroupAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed
            | RDKafkaErrorCode::TransactionalIdAuthorizationFailed
            | RDKafkaErrorCode::DelegationTokenAuthorizationFailed
            | RDKafkaErrorCode::SaslAuthenticationFailed
    )
}

/// The code of `err`, when it has one.
pub fn code_of(err: &KafkaError) -> Option<RDKafkaErrorCode> {
    err.rdkafka_error_code()
}

/// A refusal of Kafka's authorizer, said as the ACL to grant.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

/// Whether `err` is, or was caused by, a refusal of Kafka's authorizer.
pub fn is_denied(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause.is::<Denied>()
            || cause
                .downcast_ref::<KafkaError>()
                .and_then(code_of)
                .is_some_and(is_denial)
    })
}

/// What to tell the operator when Kafka refused `operation` (`READ`, `WRITE`, `CREATE`,
/// `DESCRIBE`) on `resource` with `code`; `None` when `code` is no refusal.
pub fn explain(code: RDKafkaErrorCode, operation: &str, resource: Resource<'_>) -> Option<String> {
    if code == RDKafkaErrorCode::SaslAuthenticationFailed {
        return Some(format!(
            "Kafka refused the replica's login ({code}): check sasl.username and sasl.password"
        ));
    }
    is_denial(code).then(|| {
        format!(
            "Kafka denies the replica's principal {operation} on {resource} ({code}): \
             grant it with an ACL (README, \"Secured clusters\", lists what a replica needs)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_denial_names_the_operation_and_the_resource() {
        let said = explain(
            RDKafkaErrorCode::GroupAuthorizationFailed,
            "READ",
            Resource::Group("orders"),
        )
        .expect("a denial");
        assert!(said.contains("READ on group orders"), "{said}");
        let inputs = ["a".to_owned(), "b".to_owned()];
        let said = explain(
            RDKafkaErrorCode::TopicAuthorizationFailed,
            "READ",
            Resource::Topics(&inputs),
        )
        .expect("a denial");
        assert!(said.contains("READ on topics a, b"), "{said}");
    }

    #[test]
    fn other_errors_are_no_denial() {
        for code in [
            RDKafkaErrorCode::UnknownTopicOrPartition,
            RDKafkaErrorCode::RequestTimedOut,
            RDKafkaErrorCode::NotCoordinator,
        ] {
            assert!(explain(code, "READ", Resource::Topic("t")).is_none());
        }
    }
}
