//! The bulk copy: one consistent snapshot of the tenant's rows on the source, streamed table by
//! table (parents first) with `COPY … TO STDOUT` into the target.
//!
//! Row-level security is forced on tenant tables and `COPY … FROM` refuses such tables, so each
//! table lands in a temporary staging table first and goes in with one `INSERT … SELECT` under the
//! target transaction's tenant setting (the policy's check applies to every row). Text format:
//! portable between Postgres versions; both sessions use UTC, so timestamps read back the same.

use super::MoveError;
use super::schema::{TenantSchema, TenantTable, column_list, ident};
use aries_tenants::TenantId;
use futures::StreamExt as _;
use sqlx::{Connection as _, PgConnection};

/// Begins a tenant-bound transaction on a move's connection (owner role; row-level security still
/// applies, so it sees one tenant), in `isolation`.
pub(crate) async fn begin<'c>(
    conn: &'c mut PgConnection,
    tenant: TenantId,
    isolation: &str,
) -> Result<sqlx::Transaction<'c, sqlx::Postgres>, sqlx::Error> {
    let sql = format!(
        "begin isolation level {isolation}; select set_config('aries.tenant_id', '{}', true); \
         set local timezone to 'UTC'",
        tenant.as_uuid().hyphenated()
    );
    conn.begin_with(sqlx::AssertSqlSafe(sql)).await
}

/// Copies every tenant table from `source` to `target`. The target must hold none of the tenant's
/// rows (the engine empties it first). The copied anchor row is marked not serving: the target
/// serves the tenant only once the move flips. `total` gets the snapshot's row count first, then
/// `progress` the running count of rows sent.
pub async fn copy_tenant(
    source: &mut PgConnection,
    target: &mut PgConnection,
    schema: &TenantSchema,
    tenant: TenantId,
    total: &mut (dyn FnMut(u64) + Send),
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<u64, MoveError> {
    let mut snapshot = begin(source, tenant, "repeatable read read only").await?;
    total(count_rows_in(&mut snapshot, schema, tenant).await?);
    let mut copied = 0u64;
    for table in &schema.tables {
        let mut tx = begin(target, tenant, "read committed").await?;
        copied += copy_table(&mut snapshot, &mut tx, table, tenant, copied, progress).await?;
        if table.name == "tenant" {
            sqlx::query("update tenant set serving = false where tenant_id = $1")
                .bind(tenant)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    }
    snapshot.commit().await?;
    Ok(copied)
}

/// Rows of the tenant in every table, as the caller's transaction sees them.
async fn count_rows_in(
    tx: &mut PgConnection,
    schema: &TenantSchema,
    tenant: TenantId,
) -> Result<u64, MoveError> {
    let mut total = 0i64;
    for table in &schema.tables {
        let sql = format!(
            "select count(*) from {} where tenant_id = $1",
            ident(&table.name)
        );
        let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .fetch_one(&mut *tx)
            .await?;
        total += n;
    }
    Ok(u64::try_from(total).unwrap_or(0))
}

async fn copy_table(
    source: &mut PgConnection,
    target: &mut PgConnection,
    table: &TenantTable,
    tenant: TenantId,
    before: u64,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<u64, MoveError> {
    let columns = column_list(&table.columns, "");
    let stage = ident(&format!("aries_stage_{}", table.name));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "create temp table {stage} (like {} including defaults) on commit drop",
        ident(&table.name)
    )))
    .execute(&mut *target)
    .await?;
    let mut sink = target
        .copy_in_raw(&format!("copy {stage} ({columns}) from stdin"))
        .await?;
    let mut rows = 0u64;
    let mut since_report = 0u64;
    {
        let mut stream = source
            .copy_out_raw(&format!(
                "copy (select {columns} from {} where tenant_id = '{}') to stdout",
                ident(&table.name),
                tenant.as_uuid().hyphenated()
            ))
            .await?;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    let _ = sink.abort("source failed").await;
                    return Err(e.into());
                }
            };
            // Text format: one line per row (newlines inside values are escaped as \n).
            let lines = chunk.iter().filter(|b| **b == b'\n').count() as u64;
            rows += lines;
            since_report += lines;
            sink.send(chunk).await?;
            if since_report >= 5_000 {
                since_report = 0;
                progress(before + rows);
            }
        }
    }
    sink.finish().await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "insert into {} ({columns}) select {columns} from {stage}; drop table {stage}",
        ident(&table.name)
    )))
    .execute(&mut *target)
    .await?;
    progress(before + rows);
    Ok(rows)
}
