//! Connection options and pools. A DSN names a place (host, port, database); the role comes from
//! [`DatabaseSettings`], so the same DSN opens an app connection or an owner connection.

use crate::settings::DatabaseSettings;
use secrecy::ExposeSecret;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

/// Which role a connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everyday traffic; row-level security applies.
    App,
    /// Migrations and provisioning.
    Owner,
}

/// Options for `dsn` as `role`. Fails only when the DSN is not a Postgres URL.
pub fn options(
    dsn: &str,
    role: Role,
    settings: &DatabaseSettings,
) -> Result<PgConnectOptions, sqlx::Error> {
    let (user, password) = match role {
        Role::App => (&settings.app_user, &settings.app_password),
        Role::Owner => (&settings.owner_user, &settings.owner_password),
    };
    let statement_timeout = format!("{}ms", settings.statement_timeout_ms);
    Ok(PgConnectOptions::from_str(dsn)?
        .username(user)
        .password(password.expose_secret())
        .application_name("aries")
        .options([("statement_timeout", statement_timeout.as_str())]))
}

/// A pool that connects on demand: creating it never fails because a server is down, so a shard
/// that is unreachable at start-up does not stop the instance from serving the others.
pub fn lazy_pool(
    dsn: &str,
    role: Role,
    settings: &DatabaseSettings,
) -> Result<PgPool, sqlx::Error> {
    Ok(PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .min_connections(0)
        .acquire_timeout(Duration::from_millis(settings.acquire_timeout_ms))
        .idle_timeout(Duration::from_secs(300))
        // No ping at checkout (it would cost a round trip per transaction): a broken connection is
        // found by the request that uses it (on a shard pool, that failure counts against the breaker).
        .test_before_acquire(false)
        .connect_lazy_with(options(dsn, role, settings)?))
}

/// Checks a DSN is a Postgres URL naming a host and a database, without credentials.
pub fn validate_dsn(dsn: &str) -> Result<(), String> {
    let url = url::Url::parse(dsn).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err("the scheme must be postgres://".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the URL must name a host".into());
    }
    if url.path().trim_start_matches('/').is_empty() {
        return Err("the URL must name a database".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("leave credentials out of the DSN: roles come from the configuration".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsn_rules() {
        assert!(validate_dsn("postgres://127.0.0.1:5432/aries_shard_0").is_ok());
        assert!(validate_dsn("mysql://127.0.0.1/x").is_err());
        assert!(validate_dsn("postgres://127.0.0.1:5432/").is_err());
        assert!(validate_dsn("postgres://u:p@127.0.0.1/x").is_err());
        assert!(validate_dsn("nonsense").is_err());
    }

    #[test]
    fn role_credentials_replace_dsn_ones() -> Result<(), sqlx::Error> {
        let s = DatabaseSettings::default();
        let o = options("postgres://127.0.0.1:5432/db", Role::App, &s)?;
        assert_eq!(o.get_username(), "aries_app");
        let o = options("postgres://127.0.0.1:5432/db", Role::Owner, &s)?;
        assert_eq!(o.get_username(), "aries_owner");
        Ok(())
    }
}
