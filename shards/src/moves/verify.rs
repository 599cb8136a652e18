//! Verification before the flip: per tenant table, the tenant's row count and an
//! order-independent checksum (the sum of the first 60 bits of each row's MD5) on each side.
//!
//! The anchor row is compared without `epoch` and `serving`, which the move itself sets on each
//! side. Both sides run in UTC, so a row's text is the same wherever it is stored.

use super::MoveError;
use super::copy::begin;
use super::schema::{TenantSchema, TenantTable, column_list, ident};
use aries_tenants::TenantId;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

/// One table's figures on both sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TableCheck {
    /// The tenant table.
    pub table: String,
    /// The tenant's rows on the source.
    pub source_rows: i64,
    /// The tenant's rows on the target.
    pub target_rows: i64,
    /// Checksum over the source's rows (a decimal number as text).
    pub source_checksum: String,
    /// Checksum over the target's rows.
    pub target_checksum: String,
}

impl TableCheck {
    pub fn matches(&self) -> bool {
        self.source_rows == self.target_rows && self.source_checksum == self.target_checksum
    }
}

/// Columns a checksum covers: all, but the anchor row's move bookkeeping.
fn checked_columns(table: &TenantTable) -> Vec<String> {
    table
        .columns
        .iter()
        .filter(|c| !(table.name == "tenant" && matches!(c.as_str(), "epoch" | "serving")))
        .cloned()
        .collect()
}

/// `(table, rows, checksum)` for every tenant table, in one snapshot.
pub async fn checksums(
    conn: &mut PgConnection,
    schema: &TenantSchema,
    tenant: TenantId,
) -> Result<Vec<(String, i64, String)>, MoveError> {
    let mut tx = begin(conn, tenant, "repeatable read read only").await?;
    let mut out = Vec::with_capacity(schema.tables.len());
    for table in &schema.tables {
        let sql = format!(
            "select count(*), coalesce(sum(('x' || substr(md5(row({})::text), 1, 15))::bit(60)::bigint), 0)::text \
             from {} t where tenant_id = $1",
            column_list(&checked_columns(table), "t."),
            ident(&table.name)
        );
        let (rows, sum): (i64, String) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .fetch_one(&mut *tx)
            .await?;
        out.push((table.name.clone(), rows, sum));
    }
    tx.commit().await?;
    Ok(out)
}

/// Computes both sides at once and pairs them by table.
pub async fn compare(
    source: &mut PgConnection,
    target: &mut PgConnection,
    schema: &TenantSchema,
    tenant: TenantId,
) -> Result<Vec<TableCheck>, MoveError> {
    let (s, t) = futures::future::join(
        checksums(source, schema, tenant),
        checksums(target, schema, tenant),
    )
    .await;
    let (s, t) = (s?, t?);
    Ok(s.into_iter()
        .zip(t)
        .map(
            |((table, source_rows, source_checksum), (_, target_rows, target_checksum))| {
                TableCheck {
                    table,
                    source_rows,
                    target_rows,
                    source_checksum,
                    target_checksum,
                }
            },
        )
        .collect())
}
