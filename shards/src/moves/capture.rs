//! Change capture on the source, and the catch-up that replays it on the target.
//!
//! The trigger (`aries_move_capture()`, migration `…09_tenant_moves.sql`) is installed only while
//! a move runs from the shard, so writers pay nothing otherwise; it logs only rows of tenants
//! listed in `aries_move_capture`. Installing and removing take a session advisory lock, so two
//! moves off one shard never drop each other's triggers.
//!
//! A catch-up round reads a batch of logged keys and the current rows for them in ONE snapshot of
//! the source, applies them to the target in one transaction (deletes children-first, then
//! upserts parents-first, foreign keys deferred to the commit), and only then forgets the batch
//! on the source. A round is idempotent (it copies states, not operations): a crash between the
//! target's commit and the source's forget just replays the batch.

use super::MoveError;
use super::copy::begin;
use super::schema::{TenantSchema, TenantTable, column_list, ident};
use aries_tenants::TenantId;
use serde_json::Value;
use sqlx::PgConnection;
use sqlx::types::Json;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Session advisory lock serialising trigger installation and removal on a shard.
const CAPTURE_LOCK: i64 = 0x4152_4945_535f_4d56; // "ARIES_MV"

/// Starts logging the tenant's changes on the source: lists the tenant, then makes sure every
/// tenant table has the trigger. Each `CREATE TRIGGER` waits for writes in flight on its table (a
/// short `lock_timeout`, retried), so once this returns every later change is logged.
pub async fn install(
    conn: &mut PgConnection,
    schema: &TenantSchema,
    tenant: TenantId,
) -> Result<(), MoveError> {
    sqlx::query("select pg_advisory_lock($1)")
        .bind(CAPTURE_LOCK)
        .execute(&mut *conn)
        .await?;
    let result = async {
        sqlx::query(
            "insert into aries_move_capture (tenant_id) values ($1) on conflict do nothing",
        )
        .bind(tenant)
        .execute(&mut *conn)
        .await?;
        for table in &schema.tables {
            let args = table
                .key
                .iter()
                .map(|k| format!("'{}'", k.replace('\'', "''")))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "set lock_timeout = '2s'; create or replace trigger aries_move_capture \
                 after insert or update or delete on {} for each row \
                 execute function aries_move_capture({args}); reset lock_timeout",
                ident(&table.name)
            );
            retry_on_lock_timeout(conn, &sql).await?;
        }
        Ok::<(), MoveError>(())
    }
    .await;
    sqlx::query("select pg_advisory_unlock($1)")
        .bind(CAPTURE_LOCK)
        .execute(&mut *conn)
        .await?;
    result
}

async fn retry_on_lock_timeout(conn: &mut PgConnection, sql: &str) -> Result<(), MoveError> {
    let mut tries = 0;
    loop {
        match sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut *conn)
            .await
        {
            Ok(_) => return Ok(()),
            Err(e)
                if tries < 10
                    && e.as_database_error()
                        .and_then(|d| d.code())
                        .is_some_and(|c| c == "55P03") =>
            {
                tries += 1;
                let _ = sqlx::raw_sql("reset lock_timeout")
                    .execute(&mut *conn)
                    .await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => {
                let _ = sqlx::raw_sql("reset lock_timeout")
                    .execute(&mut *conn)
                    .await;
                return Err(e.into());
            }
        }
    }
}

/// Forgets the tenant's log (changes logged so far will never be replayed: the engine calls this
/// before a fresh bulk copy, whose snapshot holds them).
pub async fn clear_log(conn: &mut PgConnection, tenant: TenantId) -> Result<(), MoveError> {
    sqlx::query("delete from aries_move_change where tenant_id = $1")
        .bind(tenant)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Stops logging the tenant's changes and drops its log; the triggers go too once no other move
/// from this shard captures.
pub async fn remove(
    conn: &mut PgConnection,
    schema: &TenantSchema,
    tenant: TenantId,
) -> Result<(), MoveError> {
    sqlx::query("select pg_advisory_lock($1)")
        .bind(CAPTURE_LOCK)
        .execute(&mut *conn)
        .await?;
    let result = async {
        sqlx::query("delete from aries_move_capture where tenant_id = $1")
            .bind(tenant)
            .execute(&mut *conn)
            .await?;
        clear_log(conn, tenant).await?;
        let (others,): (i64,) = sqlx::query_as("select count(*) from aries_move_capture")
            .fetch_one(&mut *conn)
            .await?;
        if others == 0 {
            for table in &schema.tables {
                let sql = format!(
                    "set lock_timeout = '2s'; drop trigger if exists aries_move_capture on {}; \
                     reset lock_timeout",
                    ident(&table.name)
                );
                retry_on_lock_timeout(conn, &sql).await?;
            }
        }
        Ok::<(), MoveError>(())
    }
    .await;
    sqlx::query("select pg_advisory_unlock($1)")
        .bind(CAPTURE_LOCK)
        .execute(&mut *conn)
        .await?;
    result
}

/// Changes logged for the tenant and not applied yet.
pub async fn pending(conn: &mut PgConnection, tenant: TenantId) -> Result<u64, MoveError> {
    let (n,): (i64,) =
        sqlx::query_as("select count(*) from aries_move_change where tenant_id = $1")
            .bind(tenant)
            .fetch_one(conn)
            .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Applies up to `limit` logged changes to the target; returns how many log entries it consumed
/// (0: nothing was pending).
pub async fn catch_up_round(
    source: &mut PgConnection,
    target: &mut PgConnection,
    schema: &TenantSchema,
    tenant: TenantId,
    limit: i64,
) -> Result<u64, MoveError> {
    let mut snapshot = begin(source, tenant, "repeatable read").await?;
    let log: Vec<(i64, String, Value)> = sqlx::query_as(
        "select change_id, table_name, pk from aries_move_change where tenant_id = $1 \
         order by change_id limit $2",
    )
    .bind(tenant)
    .bind(limit)
    .fetch_all(&mut *snapshot)
    .await?;
    if log.is_empty() {
        snapshot.commit().await?;
        return Ok(0);
    }
    let ids: Vec<i64> = log.iter().map(|(id, _, _)| *id).collect();
    // Distinct keys per table (a row changed ten times is copied once).
    let mut keys: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (_, table, pk) in &log {
        keys.entry(table.as_str())
            .or_default()
            .insert(pk.to_string());
    }
    let mut present: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut absent: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (name, pks) in &keys {
        let Some(table) = schema.table(name) else {
            return Err(MoveError::Schema(format!(
                "a change was logged for {name}, which is not a tenant table"
            )));
        };
        let wanted: Vec<Value> = pks
            .iter()
            .filter_map(|k| serde_json::from_str(k).ok())
            .collect();
        let rows = current_rows(&mut snapshot, table, &wanted).await?;
        let found: BTreeSet<String> = rows.iter().map(|r| key_of(table, r).to_string()).collect();
        let gone: Vec<Value> = wanted
            .into_iter()
            .filter(|k| !found.contains(&k.to_string()))
            .collect();
        present.insert(table.name.clone(), rows);
        absent.insert(table.name.clone(), gone);
    }
    snapshot.commit().await?;

    let mut tx = begin(target, tenant, "read committed").await?;
    sqlx::raw_sql("set constraints all deferred")
        .execute(&mut *tx)
        .await?;
    for table in schema.tables.iter().rev() {
        if let Some(gone) = absent.get(&table.name).filter(|g| !g.is_empty()) {
            delete_keys(&mut tx, table, gone).await?;
        }
    }
    for table in &schema.tables {
        if let Some(rows) = present.get(&table.name).filter(|r| !r.is_empty()) {
            upsert_rows(&mut tx, table, rows).await?;
        }
    }
    tx.commit().await?;

    sqlx::query("delete from aries_move_change where change_id = any($1)")
        .bind(&ids)
        .execute(&mut *source)
        .await?;
    Ok(ids.len() as u64)
}

/// `{column: value}` of the key columns of a row given as JSON.
fn key_of(table: &TenantTable, row: &Value) -> Value {
    let mut key = serde_json::Map::new();
    for k in &table.key {
        key.insert(k.clone(), row.get(k).cloned().unwrap_or(Value::Null));
    }
    Value::Object(key)
}

fn key_join(table: &TenantTable, left: &str, right: &str) -> String {
    table
        .key
        .iter()
        .map(|k| format!("{left}.{c} = {right}.{c}", c = ident(k)))
        .collect::<Vec<_>>()
        .join(" and ")
}

/// The rows (as JSON objects) of `table` whose keys are in `keys`, as the snapshot sees them.
async fn current_rows(
    conn: &mut PgConnection,
    table: &TenantTable,
    keys: &[Value],
) -> Result<Vec<Value>, MoveError> {
    let name = ident(&table.name);
    let sql = format!(
        "select to_jsonb(t) from {name} t join jsonb_populate_recordset(null::{name}, $1) k on {}",
        key_join(table, "t", "k")
    );
    let rows: Vec<(Value,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(Json(keys))
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(|(v,)| v).collect())
}

async fn delete_keys(
    conn: &mut PgConnection,
    table: &TenantTable,
    keys: &[Value],
) -> Result<(), MoveError> {
    let name = ident(&table.name);
    let sql = format!(
        "delete from {name} t using jsonb_populate_recordset(null::{name}, $1) k where {}",
        key_join(table, "t", "k")
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(Json(keys))
        .execute(conn)
        .await?;
    Ok(())
}

/// Inserts the rows, or brings the existing ones to these values. A row already equal is not
/// touched (no write, no trigger: the audit trail's append-only rule never sees an update).
async fn upsert_rows(
    conn: &mut PgConnection,
    table: &TenantTable,
    rows: &[Value],
) -> Result<(), MoveError> {
    let name = ident(&table.name);
    let columns = column_list(&table.columns, "");
    let key = column_list(&table.key, "");
    let others: Vec<&String> = table
        .columns
        .iter()
        .filter(|c| !table.key.contains(c))
        .collect();
    let on_conflict = if others.is_empty() {
        "do nothing".to_owned()
    } else {
        let set = others
            .iter()
            .map(|c| format!("{c} = excluded.{c}", c = ident(c)))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "do update set {set} where row({})::text is distinct from row({})::text",
            column_list(&table.columns, "t."),
            column_list(&table.columns, "excluded.")
        )
    };
    let sql = format!(
        "insert into {name} as t ({columns}) select {columns} \
         from jsonb_populate_recordset(null::{name}, $1) on conflict ({key}) {on_conflict}"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(Json(rows))
        .execute(conn)
        .await?;
    Ok(())
}
