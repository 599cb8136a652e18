//! Tenant users: the staff who log in with a password. Passwords are hashed with Argon2id by the
//! caller (outside the transaction: hashing is deliberately slow) and only the PHC string is stored.

use crate::error::{DomainError, unique_violation};
use crate::ids::{LocationId, TenantId, UserId};
use crate::page::PageRequest;
use crate::validation::ValidationErrors;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

/// Body of "create a user".
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserInput {
    /// The login name; stored lower-case, unique within the tenant.
    pub email: String,
    /// How the user is shown to colleagues.
    pub display_name: String,
    /// The first password (12+ characters). Omit to create the user without one; an admin sets it later.
    #[serde(default)]
    pub password: Option<String>,
    /// Built-in (`owner`, `admin`, `billing`, `intake`, `warehouse`, `viewer`) or custom role names.
    pub roles: Vec<String>,
    /// Locations the user may act in; omit for all.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub location_ids: Option<Vec<LocationId>>,
}

/// Validated user fields.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Lower-cased login name.
    pub email: String,
    /// Trimmed display name.
    pub display_name: String,
    /// The first password, still in clear (hashed by the caller before storing).
    pub password: Option<String>,
    /// Role names, deduplicated.
    pub roles: Vec<String>,
    /// Location scope (`None`: all locations).
    pub location_ids: Option<Vec<LocationId>>,
}

/// Checks an e-mail-shaped login name: one `@`, something on both sides, a dot in the domain.
pub fn parse_email(errs: &mut ValidationErrors, field: &str, raw: &str) -> String {
    let email = raw.trim().to_lowercase();
    let ok = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok {
        errs.push(
            field,
            "invalid_email",
            "an e-mail address such as jane@example.com",
        );
    }
    email
}

/// Checks a list of role names is non-empty and made of plausible names (existence is checked
/// against the tenant's roles by the caller).
pub fn parse_roles(errs: &mut ValidationErrors, field: &str, roles: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in roles {
        let r = r.trim().to_owned();
        if r.is_empty() || r.len() > 64 {
            errs.push(field, "invalid_role", "role names are 1 to 64 characters");
        } else if !out.contains(&r) {
            out.push(r);
        }
    }
    if out.is_empty() {
        errs.push(field, "required", "at least one role");
    }
    out
}

impl NewUserInput {
    pub fn parse(&self) -> Result<NewUser, ValidationErrors> {
        let mut errs = ValidationErrors::default();
        let email = parse_email(&mut errs, "email", &self.email);
        let display_name = errs.text("display_name", &self.display_name, 200);
        if let Some(p) = &self.password
            && let Err(why) = crate::auth::secrets::check_password_rules(p)
        {
            errs.push("password", "weak_password", why);
        }
        let roles = parse_roles(&mut errs, "roles", &self.roles);
        errs.finish(NewUser {
            email,
            display_name,
            password: self.password.clone(),
            roles,
            location_ids: self.location_ids.clone(),
        })
    }
}

/// Whether the user may log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    Active,
    Disabled,
}

/// A user as the API returns it (never the password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct User {
    /// The user's id, the `sub` of their access tokens.
    #[schema(value_type = String, format = Uuid)]
    pub id: UserId,
    /// Login name (lower-case).
    pub email: String,
    /// Name shown to colleagues.
    pub display_name: String,
    /// Disabled users cannot log in and their tokens stop working.
    pub status: UserStatus,
    /// Role names.
    pub roles: Vec<String>,
    /// Locations the user is limited to; absent means all.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>)]
    pub location_ids: Option<Vec<LocationId>>,
    /// Whether a password is set (a user without one cannot log in with the password grant).
    pub has_password: bool,
    /// Bumped on every change.
    pub version: i64,
    /// When the user was created.
    pub created_at: DateTime<Utc>,
    /// When the user last changed.
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct Row {
    user_id: UserId,
    email: String,
    display_name: String,
    status: String,
    roles: Vec<String>,
    location_ids: Option<Vec<uuid::Uuid>>,
    password_hash: Option<String>,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl Row {
    fn into_user(self) -> (User, Option<String>) {
        let user = User {
            id: self.user_id,
            email: self.email,
            display_name: self.display_name,
            status: if self.status == "disabled" {
                UserStatus::Disabled
            } else {
                UserStatus::Active
            },
            roles: self.roles,
            location_ids: self
                .location_ids
                .map(|ids| ids.into_iter().map(LocationId).collect()),
            has_password: self.password_hash.is_some(),
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        };
        (user, self.password_hash)
    }
}

const COLUMNS: &str = "user_id, email, display_name, status, roles, location_ids, password_hash, version, created_at, updated_at";

/// Creates a user; `password_hash` is the Argon2id PHC string of the first password, if any.
pub async fn create(
    conn: &mut PgConnection,
    tenant: TenantId,
    user: &NewUser,
    password_hash: Option<&str>,
) -> Result<User, DomainError> {
    let sql = format!(
        "insert into app_user (tenant_id, user_id, email, display_name, password_hash, roles, location_ids) \
         values ($1, $2, $3, $4, $5, $6, $7) returning {COLUMNS}"
    );
    let locations: Option<Vec<uuid::Uuid>> = user
        .location_ids
        .as_ref()
        .map(|l| l.iter().map(|i| i.0).collect());
    let row: Row = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(UserId::new())
        .bind(&user.email)
        .bind(&user.display_name)
        .bind(password_hash)
        .bind(&user.roles)
        .bind(locations)
        .fetch_one(conn)
        .await
        .map_err(|e| match unique_violation(&e) {
            Some("app_user_email_key") => DomainError::Conflict {
                code: "user_email_taken",
                detail: format!("a user with e-mail {} exists", user.email),
            },
            _ => DomainError::Database(e),
        })?;
    Ok(row.into_user().0)
}

pub async fn get(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: UserId,
) -> Result<User, DomainError> {
    let sql = format!("select {COLUMNS} from app_user where tenant_id = $1 and user_id = $2");
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.map(|r| r.into_user().0)
        .ok_or(DomainError::NotFound("user"))
}

/// The user and their password hash, by login name (for the password grant).
pub async fn find_for_login(
    conn: &mut PgConnection,
    tenant: TenantId,
    email: &str,
) -> Result<Option<(User, Option<String>)>, DomainError> {
    let sql = format!("select {COLUMNS} from app_user where tenant_id = $1 and email = $2");
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(email.trim().to_lowercase())
        .fetch_optional(conn)
        .await?;
    Ok(row.map(Row::into_user))
}

/// A page of users in id order (`limit + 1` rows).
pub async fn list(
    conn: &mut PgConnection,
    tenant: TenantId,
    page: PageRequest,
) -> Result<Vec<User>, DomainError> {
    let sql = format!(
        "select {COLUMNS} from app_user where tenant_id = $1 and ($2::uuid is null or user_id > $2) \
         order by user_id limit $3"
    );
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(page.after)
        .bind(i64::from(page.limit) + 1)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(|r| r.into_user().0).collect())
}

/// Enables or disables a user. Disabling also revokes the user's refresh tokens.
pub async fn set_status(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: UserId,
    status: UserStatus,
) -> Result<User, DomainError> {
    let text = match status {
        UserStatus::Active => "active",
        UserStatus::Disabled => "disabled",
    };
    let sql = format!(
        "update app_user set status = $3, version = version + case when status = $3 then 0 else 1 end, \
         updated_at = now() where tenant_id = $1 and user_id = $2 returning {COLUMNS}"
    );
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .bind(text)
        .fetch_optional(&mut *conn)
        .await?;
    let user = row
        .map(|r| r.into_user().0)
        .ok_or(DomainError::NotFound("user"))?;
    if status == UserStatus::Disabled {
        crate::auth::refresh::revoke_user(conn, tenant, id).await?;
    }
    Ok(user)
}

/// Replaces the user's password hash and revokes their refresh tokens (a reset logs them out).
pub async fn set_password(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: UserId,
    password_hash: &str,
) -> Result<User, DomainError> {
    let sql = format!(
        "update app_user set password_hash = $3, version = version + 1, updated_at = now() \
         where tenant_id = $1 and user_id = $2 returning {COLUMNS}"
    );
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .bind(password_hash)
        .fetch_optional(&mut *conn)
        .await?;
    let user = row
        .map(|r| r.into_user().0)
        .ok_or(DomainError::NotFound("user"))?;
    crate::auth::refresh::revoke_user(conn, tenant, id).await?;
    Ok(user)
}

/// A user's current status and roles, for checking a live access token (`None`: no such user).
pub async fn standing(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: UserId,
) -> Result<Option<(UserStatus, Vec<String>, Option<Vec<LocationId>>)>, DomainError> {
    let row: Option<(String, Vec<String>, Option<Vec<uuid::Uuid>>)> = sqlx::query_as(
        "select status, roles, location_ids from app_user where tenant_id = $1 and user_id = $2",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(status, roles, locations)| {
        let status = if status == "disabled" {
            UserStatus::Disabled
        } else {
            UserStatus::Active
        };
        (
            status,
            roles,
            locations.map(|l| l.into_iter().map(LocationId).collect()),
        )
    }))
}

/// The user's TOTP secret (once enrolment started) and whether it is confirmed.
pub async fn totp_state(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: UserId,
) -> Result<(Option<String>, bool), DomainError> {
    let row: Option<(Option<String>, bool)> = sqlx::query_as(
        "select totp_secret, totp_enabled from app_user where tenant_id = $1 and user_id = $2",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.ok_or(DomainError::NotFound("user"))
}

/// Starts (or restarts) TOTP enrolment with a new, not yet confirmed secret.
pub async fn set_totp_secret(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: UserId,
    secret: &str,
) -> Result<(), DomainError> {
    sqlx::query("update app_user set totp_secret = $3, totp_enabled = false where tenant_id = $1 and user_id = $2")
        .bind(tenant)
        .bind(id)
        .bind(secret)
        .execute(conn)
        .await?;
    Ok(())
}

/// Accepts a TOTP time step once (true if newer than the last accepted; TOTP is then enabled).
pub async fn accept_totp_step(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: UserId,
    step: u64,
) -> Result<bool, DomainError> {
    let n = sqlx::query(
        "update app_user set totp_last_step = $3, totp_enabled = true \
         where tenant_id = $1 and user_id = $2 and totp_last_step < $3 and totp_secret is not null",
    )
    .bind(tenant)
    .bind(id)
    .bind(i64::try_from(step).unwrap_or(i64::MAX))
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Replaces the user's recovery codes (SHA-256 of each).
pub async fn replace_recovery_codes(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: UserId,
    hashes: &[[u8; 32]],
) -> Result<(), DomainError> {
    sqlx::query("delete from user_recovery_code where tenant_id = $1 and user_id = $2")
        .bind(tenant)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    for h in hashes {
        sqlx::query(
            "insert into user_recovery_code (tenant_id, user_id, code_sha256) values ($1, $2, $3)",
        )
        .bind(tenant)
        .bind(id)
        .bind(&h[..])
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Uses a recovery code once.
pub async fn use_recovery_code(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: UserId,
    hash: &[u8; 32],
) -> Result<bool, DomainError> {
    let n = sqlx::query(
        "update user_recovery_code set used_at = now() \
         where tenant_id = $1 and user_id = $2 and code_sha256 = $3 and used_at is null",
    )
    .bind(tenant)
    .bind(id)
    .bind(&hash[..])
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_user_input() {
        let input = NewUserInput {
            email: " Jane@Example.COM ".into(),
            display_name: "Jane".into(),
            password: Some("a fine long passphrase".into()),
            roles: vec!["intake".into(), "intake".into()],
            location_ids: None,
        };
        let user = input.parse().ok();
        assert_eq!(
            user.as_ref().map(|u| u.email.as_str()),
            Some("jane@example.com")
        );
        assert_eq!(user.map(|u| u.roles), Some(vec!["intake".to_owned()]));
        let bad = NewUserInput {
            email: "nope".into(),
            password: Some("short".into()),
            roles: vec![],
            ..input
        };
        let fields: Vec<String> = bad
            .parse()
            .err()
            .map(|e| e.0.into_iter().map(|e| e.field).collect())
            .unwrap_or_default();
        assert_eq!(fields, ["email", "password", "roles"]);
    }
}
