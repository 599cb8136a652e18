//! Removing a tenant's rows from a shard: the source after a flip (the anchor row stays as a
//! tombstone that is not serving, so a stale caller is told the placement changed), or a target
//! whose copy is abandoned (everything goes).
//!
//! The owner lists the tenant in `aries_tenant_purge` for the length of the transaction: the audit
//! trail's append-only trigger lets exactly those rows be deleted.

use super::MoveError;
use super::copy::begin;
use super::schema::{TenantSchema, ident};
use aries_tenants::TenantId;
use sqlx::PgConnection;

/// Whether the anchor row survives the purge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// Keep it, not serving (the source after a move).
    Tombstone,
    /// Delete it too (an abandoned copy).
    Delete,
}

/// Deletes the tenant's rows, children before parents, in one transaction; returns rows deleted.
pub async fn purge(
    conn: &mut PgConnection,
    schema: &TenantSchema,
    tenant: TenantId,
    anchor: Anchor,
) -> Result<u64, MoveError> {
    let mut tx = begin(conn, tenant, "read committed").await?;
    sqlx::query("insert into aries_tenant_purge (tenant_id) values ($1) on conflict do nothing")
        .bind(tenant)
        .execute(&mut *tx)
        .await?;
    let mut deleted = 0;
    for table in schema.tables.iter().rev() {
        if table.name == "tenant" && anchor == Anchor::Tombstone {
            sqlx::query("update tenant set serving = false where tenant_id = $1")
                .bind(tenant)
                .execute(&mut *tx)
                .await?;
            continue;
        }
        let sql = format!("delete from {} where tenant_id = $1", ident(&table.name));
        deleted += sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    }
    sqlx::query("delete from aries_tenant_purge where tenant_id = $1")
        .bind(tenant)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(deleted)
}

/// Waits until every transaction open on the database when this is called has ended (at most
/// `limit`), as `CREATE INDEX CONCURRENTLY` does: after a flip, a read that passed the source's
/// fence before the freeze may still be running, and must not see its rows vanish under it.
pub async fn wait_for_older_transactions(
    conn: &mut PgConnection,
    limit: std::time::Duration,
) -> Result<bool, MoveError> {
    let older: Vec<(String,)> = sqlx::query_as(
        "select l.virtualtransaction from pg_locks l join pg_stat_activity a on a.pid = l.pid \
         where l.locktype = 'virtualxid' and l.granted and a.datname = current_database() \
           and l.pid <> pg_backend_pid()",
    )
    .fetch_all(&mut *conn)
    .await?;
    let older: Vec<String> = older.into_iter().map(|(v,)| v).collect();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let (left,): (i64,) = sqlx::query_as(
            "select count(*) from pg_locks where locktype = 'virtualxid' and granted \
             and virtualtransaction = any($1)",
        )
        .bind(&older)
        .fetch_one(&mut *conn)
        .await?;
        if left == 0 {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
