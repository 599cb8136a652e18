//! Custom roles: a tenant's own named sets of permissions, next to the built-in roles.

use crate::auth::permissions::{Permission, RoleName};
use crate::error::{DomainError, unique_violation};
use crate::ids::TenantId;
use crate::validation::ValidationErrors;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use std::collections::HashMap;

/// Body of "create a custom role".
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomRoleInput {
    /// Lower-case letters, digits, `-` and `_`; not a built-in role's name.
    pub name: String,
    /// `resource:action` strings, e.g. `deliveries:process`.
    pub permissions: Vec<String>,
}

/// A custom role as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CustomRole {
    /// The name users and keys refer to.
    pub name: String,
    /// `resource:action` strings.
    pub permissions: Vec<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl CustomRoleInput {
    /// Validates the name and every permission.
    pub fn parse(&self) -> Result<(String, Vec<Permission>), ValidationErrors> {
        let mut errs = ValidationErrors::default();
        let name = self.name.trim().to_owned();
        let name_ok = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !name_ok {
            errs.push(
                "name",
                "invalid_format",
                "1 to 64 lower-case letters, digits, '-' or '_'",
            );
        } else if name.parse::<RoleName>().is_ok() {
            errs.push("name", "reserved", "that is a built-in role's name");
        }
        let mut perms = Vec::new();
        for (i, p) in self.permissions.iter().enumerate() {
            match p.parse::<Permission>() {
                Ok(p) if !perms.contains(&p) => perms.push(p),
                Ok(_) => {}
                Err(e) => errs.push(format!("permissions[{i}]"), "invalid_permission", e),
            }
        }
        if self.permissions.is_empty() {
            errs.push("permissions", "required", "at least one permission");
        }
        errs.finish((name, perms))
    }
}

pub async fn create(
    conn: &mut PgConnection,
    tenant: TenantId,
    name: &str,
    permissions: &[Permission],
) -> Result<CustomRole, DomainError> {
    let texts: Vec<String> = permissions.iter().map(ToString::to_string).collect();
    let row: (String, Vec<String>, DateTime<Utc>) = sqlx::query_as(
        "insert into custom_role (tenant_id, role_id, name, permissions) values ($1, $2, $3, $4) \
         returning name, permissions, created_at",
    )
    .bind(tenant)
    .bind(uuid::Uuid::now_v7())
    .bind(name)
    .bind(&texts)
    .fetch_one(conn)
    .await
    .map_err(|e| match unique_violation(&e) {
        Some("custom_role_name_key") => DomainError::Conflict {
            code: "role_name_taken",
            detail: format!("a role named {name} exists"),
        },
        _ => DomainError::Database(e),
    })?;
    Ok(CustomRole {
        name: row.0,
        permissions: row.1,
        created_at: row.2,
    })
}

pub async fn list(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<Vec<CustomRole>, DomainError> {
    let rows: Vec<(String, Vec<String>, DateTime<Utc>)> = sqlx::query_as(
        "select name, permissions, created_at from custom_role where tenant_id = $1 order by name",
    )
    .bind(tenant)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(name, permissions, created_at)| CustomRole {
            name,
            permissions,
            created_at,
        })
        .collect())
}

pub async fn delete(
    conn: &mut PgConnection,
    tenant: TenantId,
    name: &str,
) -> Result<(), DomainError> {
    let n = sqlx::query("delete from custom_role where tenant_id = $1 and name = $2")
        .bind(tenant)
        .bind(name)
        .execute(conn)
        .await?
        .rows_affected();
    if n == 0 {
        Err(DomainError::NotFound("role"))
    } else {
        Ok(())
    }
}

/// The tenant's custom roles as permission lists (stored permissions this build no longer knows
/// are skipped).
pub async fn load(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<HashMap<String, Vec<Permission>>, DomainError> {
    Ok(list(conn, tenant)
        .await?
        .into_iter()
        .map(|r| {
            (
                r.name,
                r.permissions
                    .iter()
                    .filter_map(|p| p.parse().ok())
                    .collect(),
            )
        })
        .collect())
}

/// Checks every role name exists (built-in or custom); errors name the field.
pub fn check_known(
    errs: &mut ValidationErrors,
    field: &str,
    roles: &[String],
    custom: &HashMap<String, Vec<Permission>>,
) {
    for (i, r) in roles.iter().enumerate() {
        if r.parse::<RoleName>().is_err() && !custom.contains_key(r) {
            errs.push(
                format!("{field}[{i}]"),
                "unknown_role",
                format!("no role named {r}"),
            );
        }
    }
}
