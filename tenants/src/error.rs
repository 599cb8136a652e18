//! Errors of the tenant domain. `aries-http` maps each variant to a problem+json code; database
//! failures that are not a rule of the domain stay `Database` and become a 500 or 503 there.

use crate::validation::ValidationErrors;

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// The input broke a field rule.
    #[error("validation failed: {0}")]
    Validation(ValidationErrors),
    /// No such row for this tenant (it may exist for another tenant; we never say).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request conflicts with stored state (a uniqueness rule, a reused idempotency key):
    /// `code` names the rule (e.g. `location_code_taken`) and becomes the problem's code.
    #[error("conflict: {detail}")]
    Conflict { code: &'static str, detail: String },
    /// The credential is missing, wrong, expired or revoked (the text says which, for logs only).
    #[error("unauthenticated: {0}")]
    Unauthenticated(&'static str),
    /// The principal is known but lacks a permission; the text names it.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The order lacks information it needs for approval or billing; each entry says what.
    #[error("missing information: {} problem(s)", .0.len())]
    MissingInformation(Vec<crate::dme::orders::MissingInfo>),
    /// `If-Match` named a version that is no longer current.
    #[error("version mismatch: the current version is {current}")]
    VersionMismatch { current: i64 },
    /// The database failed in a way the domain does not explain.
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

impl From<ValidationErrors> for DomainError {
    fn from(e: ValidationErrors) -> Self {
        DomainError::Validation(e)
    }
}

/// The name of the unique constraint a database error violated, if that is what it is.
pub fn unique_violation(err: &sqlx::Error) -> Option<&str> {
    match err {
        sqlx::Error::Database(db) if db.is_unique_violation() => db.constraint(),
        _ => None,
    }
}

/// `If-Match` against the row's current version: `VersionMismatch` when it names another one.
pub fn check_version(if_match: Option<i64>, current: i64) -> Result<(), DomainError> {
    match if_match {
        Some(expected) if expected != current => Err(DomainError::VersionMismatch { current }),
        _ => Ok(()),
    }
}

/// A resource's writable fields after a JSON merge patch (RFC 7396), re-read through `T` so an
/// unknown field or a wrong type is a validation error naming the field.
pub fn patched<T: serde::Serialize + serde::de::DeserializeOwned>(
    current: &T,
    patch: &serde_json::Value,
) -> Result<T, DomainError> {
    let mut doc = serde_json::to_value(current).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    crate::validation::merge_patch(&mut doc, patch);
    Ok(crate::validation::from_json_value(doc)?)
}
