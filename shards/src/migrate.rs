//! The migrators, embedded from `migrations/` at build time. Both run as the owner role. sqlx takes
//! an advisory lock per database, so two instances starting together migrate once.

use crate::connect::{Role, options};
use crate::settings::DatabaseSettings;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::{ConnectOptions, Connection};

/// The control-plane schema.
pub static CATALOG: Migrator = sqlx::migrate!("../migrations/catalog");
/// The tenant-data schema, the same on every shard.
pub static SHARD: Migrator = sqlx::migrate!("../migrations/shard");

/// Errors from running migrations.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("cannot connect to {dsn} as the owner role: {source}")]
    Connect { dsn: String, source: sqlx::Error },
    #[error("migrating {dsn}: {source}")]
    Migrate { dsn: String, source: MigrateError },
}

async fn run(
    migrator: &Migrator,
    dsn: &str,
    settings: &DatabaseSettings,
) -> Result<(), MigrationError> {
    let connect_err = |source| MigrationError::Connect {
        dsn: dsn.to_owned(),
        source,
    };
    let mut conn = options(dsn, Role::Owner, settings)
        .map_err(connect_err)?
        .connect()
        .await
        .map_err(connect_err)?;
    let result = migrator.run(&mut conn).await;
    // Closing politely matters: a database with an open session cannot be dropped or copied.
    let _ = conn.close().await;
    result.map_err(|source| MigrationError::Migrate {
        dsn: dsn.to_owned(),
        source,
    })
}

/// Brings the catalog up to date.
#[tracing::instrument(name = "migrate.catalog", skip(settings))]
pub async fn migrate_catalog(settings: &DatabaseSettings) -> Result<(), MigrationError> {
    run(&CATALOG, &settings.catalog_url, settings).await
}

/// Brings one shard up to date.
#[tracing::instrument(name = "migrate.shard", skip(settings))]
pub async fn migrate_shard(dsn: &str, settings: &DatabaseSettings) -> Result<(), MigrationError> {
    run(&SHARD, dsn, settings).await
}

/// The highest shard migration this build ships: a shard is current when its recorded
/// `schema_version` is at least this.
pub fn latest_shard_version() -> i64 {
    SHARD.iter().map(|m| m.version).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_shard_version_is_the_last_file() {
        assert!(latest_shard_version() >= 20261202000009);
    }
}
