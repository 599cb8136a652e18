//! What a move copies: every table of the shard's schema `public` with a `tenant_id` column (the
//! maintenance tables `aries_*` excepted), with its columns, primary key and the tables its
//! foreign keys point to, in an order where parents come before children.

use super::MoveError;
use sqlx::PgConnection;
use std::collections::{BTreeMap, BTreeSet};

/// One tenant table as the catalogs of Postgres describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantTable {
    /// Table name (schema `public`), unquoted.
    pub name: String,
    /// Every column in attribute order: the column list of the copy, the upsert and the checksum.
    pub columns: Vec<String>,
    /// Primary-key columns in key order: how the catch-up names a changed row.
    pub key: Vec<String>,
    /// Tables this one references (other than itself): they are copied first and emptied last.
    pub parents: BTreeSet<String>,
}

/// The tenant tables of a shard, parents before children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSchema {
    pub tables: Vec<TenantTable>,
}

impl TenantSchema {
    pub fn table(&self, name: &str) -> Option<&TenantTable> {
        self.tables.iter().find(|t| t.name == name)
    }
}

/// Quotes an identifier for SQL text (names come from the Postgres catalogs, never from a client,
/// and are quoted anyway).
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A comma-separated, quoted column list, each prefixed with `prefix` (`""` or `"t."`).
pub fn column_list(columns: &[String], prefix: &str) -> String {
    columns
        .iter()
        .map(|c| format!("{prefix}{}", ident(c)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads the tenant tables of the database `conn` is connected to. Refuses a schema a move could
/// not copy safely: a tenant table without a primary key, or a foreign key between tenant tables
/// that is not deferrable (the catch-up defers them while it applies a batch).
pub async fn load(conn: &mut PgConnection) -> Result<TenantSchema, MoveError> {
    let tables: Vec<(String,)> = sqlx::query_as(
        "select c.relname::text from pg_class c join pg_namespace n on n.oid = c.relnamespace \
         where n.nspname = 'public' and c.relkind in ('r', 'p') and c.relname not like 'aries\\_%' \
           and exists (select 1 from pg_attribute a where a.attrelid = c.oid and a.attname = 'tenant_id' \
                        and not a.attisdropped) \
         order by 1",
    )
    .fetch_all(&mut *conn)
    .await?;
    let names: BTreeSet<String> = tables.into_iter().map(|(n,)| n).collect();
    let columns: Vec<(String, String)> = sqlx::query_as(
        "select c.relname::text, a.attname::text from pg_attribute a \
         join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace \
         where n.nspname = 'public' and a.attnum > 0 and not a.attisdropped and a.attgenerated = '' \
         order by c.relname, a.attnum",
    )
    .fetch_all(&mut *conn)
    .await?;
    let keys: Vec<(String, String)> = sqlx::query_as(
        "select c.relname::text, a.attname::text from pg_index i \
         join pg_class c on c.oid = i.indrelid join pg_namespace n on n.oid = c.relnamespace \
         join lateral unnest(i.indkey) with ordinality k(attnum, ord) on true \
         join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum \
         where n.nspname = 'public' and i.indisprimary order by c.relname, k.ord",
    )
    .fetch_all(&mut *conn)
    .await?;
    let fks: Vec<(String, String, String, bool)> = sqlx::query_as(
        "select conrelid::regclass::text, confrelid::regclass::text, conname::text, condeferrable \
         from pg_constraint where contype = 'f' and connamespace = 'public'::regnamespace",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut by_name: BTreeMap<String, TenantTable> = names
        .iter()
        .map(|n| {
            (
                n.clone(),
                TenantTable {
                    name: n.clone(),
                    columns: Vec::new(),
                    key: Vec::new(),
                    parents: BTreeSet::new(),
                },
            )
        })
        .collect();
    for (table, column) in columns {
        if let Some(t) = by_name.get_mut(&table) {
            t.columns.push(column);
        }
    }
    for (table, column) in keys {
        if let Some(t) = by_name.get_mut(&table) {
            t.key.push(column);
        }
    }
    for (child, parent, name, deferrable) in fks {
        let (child, parent) = (unquote(&child), unquote(&parent));
        if !names.contains(&child) || !names.contains(&parent) {
            continue;
        }
        if !deferrable {
            return Err(MoveError::Schema(format!(
                "foreign key {name} of {child} is not deferrable"
            )));
        }
        if child != parent
            && let Some(t) = by_name.get_mut(&child)
        {
            t.parents.insert(parent);
        }
    }
    if let Some(t) = by_name.values().find(|t| t.key.is_empty()) {
        return Err(MoveError::Schema(format!(
            "tenant table {} has no primary key",
            t.name
        )));
    }
    let tables = parents_first(by_name.into_values().collect())?;
    Ok(TenantSchema { tables })
}

/// `regclass::text` quotes names that need it; tenant table names never do, but be exact.
fn unquote(name: &str) -> String {
    name.strip_prefix('"')
        .and_then(|n| n.strip_suffix('"'))
        .map_or_else(|| name.to_owned(), |n| n.replace("\"\"", "\""))
}

/// Orders tables so every table comes after the tables it references (Kahn's algorithm; ties by
/// name, so the order is deterministic). A cycle is a schema a move cannot order: an error.
pub fn parents_first(tables: Vec<TenantTable>) -> Result<Vec<TenantTable>, MoveError> {
    let mut pending: BTreeMap<String, TenantTable> =
        tables.into_iter().map(|t| (t.name.clone(), t)).collect();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut ordered = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let ready: Vec<String> = pending
            .values()
            .filter(|t| {
                t.parents
                    .iter()
                    .all(|p| done.contains(p) || !pending.contains_key(p))
            })
            .map(|t| t.name.clone())
            .collect();
        if ready.is_empty() {
            let names: Vec<&str> = pending.keys().map(String::as_str).collect();
            return Err(MoveError::Schema(format!(
                "foreign keys form a cycle among {}",
                names.join(", ")
            )));
        }
        for name in ready {
            if let Some(t) = pending.remove(&name) {
                done.insert(name);
                ordered.push(t);
            }
        }
    }
    Ok(ordered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, parents: &[&str]) -> TenantTable {
        TenantTable {
            name: name.into(),
            columns: vec!["tenant_id".into()],
            key: vec!["tenant_id".into()],
            parents: parents.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    #[test]
    fn parents_come_first() -> Result<(), MoveError> {
        let order = parents_first(vec![
            table("order_line", &["patient_order", "tenant"]),
            table("patient_order", &["patient", "tenant"]),
            table("patient", &["tenant"]),
            table("tenant", &[]),
            table("audit_event", &["tenant"]),
        ])?;
        let names: Vec<&str> = order.iter().map(|t| t.name.as_str()).collect();
        let pos = |n: &str| names.iter().position(|x| *x == n);
        assert_eq!(names[0], "tenant");
        assert!(pos("patient") < pos("patient_order"));
        assert!(pos("patient_order") < pos("order_line"));
        assert_eq!(names.len(), 5);
        Ok(())
    }

    #[test]
    fn a_cycle_is_refused() {
        let r = parents_first(vec![table("a", &["b"]), table("b", &["a"])]);
        assert!(matches!(r, Err(MoveError::Schema(_))));
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(ident("tenant"), "\"tenant\"");
        assert_eq!(ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(
            column_list(&["a".into(), "b".into()], "t."),
            "t.\"a\", t.\"b\""
        );
    }
}
