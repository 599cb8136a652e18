//! Operator accounts (the platform's own staff): password + TOTP, single-use recovery codes, a
//! role that bounds what they may do through the operator API.

use crate::catalog::{Catalog, CatalogError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::str::FromStr;
use uuid::Uuid;

/// What an operator may do; each role includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorRole {
    /// Reads tenants, shards and the audit trail.
    PlatformViewer,
    /// Also creates, suspends and resumes tenants and gives them their first key.
    PlatformOperator,
    /// Everything: archiving, signing keys, operator accounts.
    PlatformAdmin,
}

impl OperatorRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PlatformViewer => "platform_viewer",
            Self::PlatformOperator => "platform_operator",
            Self::PlatformAdmin => "platform_admin",
        }
    }
}

impl FromStr for OperatorRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "platform_viewer" => Ok(Self::PlatformViewer),
            "platform_operator" => Ok(Self::PlatformOperator),
            "platform_admin" => Ok(Self::PlatformAdmin),
            other => Err(format!(
                "unknown operator role `{other}`: platform_viewer, platform_operator or platform_admin"
            )),
        }
    }
}

/// An operator account as shown (never its secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperatorAccount {
    /// The account's id.
    pub id: Uuid,
    /// Login name.
    pub email: String,
    /// Shown in the console and the audit trail.
    pub display_name: String,
    /// What it may do.
    pub role: OperatorRole,
    /// Whether it may log in.
    pub active: bool,
    /// Whether TOTP is confirmed (required for console sessions to act).
    pub totp_enabled: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// An account with what logging in needs.
#[derive(Debug, Clone)]
pub struct OperatorLogin {
    /// The account.
    pub account: OperatorAccount,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Base32 TOTP secret, once enrolment started.
    pub totp_secret: Option<String>,
}

type Row = (
    Uuid,
    String,
    String,
    String,
    String,
    bool,
    DateTime<Utc>,
    String,
    Option<String>,
);

const COLUMNS: &str = "operator_id, email, display_name, role, status, totp_enabled, created_at, password_hash, totp_secret";

fn from_row(r: Row) -> Result<OperatorLogin, CatalogError> {
    let (
        id,
        email,
        display_name,
        role,
        status,
        totp_enabled,
        created_at,
        password_hash,
        totp_secret,
    ) = r;
    Ok(OperatorLogin {
        account: OperatorAccount {
            id,
            email,
            display_name,
            role: role.parse().map_err(CatalogError::Corrupt)?,
            active: status == "active",
            totp_enabled,
            created_at,
        },
        password_hash,
        totp_secret,
    })
}

impl Catalog {
    /// Creates an operator account (`password_hash`: Argon2id PHC).
    pub async fn create_operator(
        &self,
        email: &str,
        display_name: &str,
        password_hash: &str,
        role: OperatorRole,
    ) -> Result<OperatorAccount, CatalogError> {
        let sql = format!(
            "insert into operator_account (operator_id, email, display_name, password_hash, role) \
             values ($1, $2, $3, $4, $5) returning {COLUMNS}"
        );
        let row: Row = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(Uuid::now_v7())
            .bind(email.trim().to_lowercase())
            .bind(display_name)
            .bind(password_hash)
            .bind(role.as_str())
            .fetch_one(self.pool())
            .await
            .map_err(|e| match aries_tenants::error::unique_violation(&e) {
                Some("operator_account_email_key") => {
                    CatalogError::OperatorEmailTaken(email.to_owned())
                }
                _ => CatalogError::Database(e),
            })?;
        Ok(from_row(row)?.account)
    }

    /// The account with this login name.
    pub async fn operator_by_email(
        &self,
        email: &str,
    ) -> Result<Option<OperatorLogin>, CatalogError> {
        let sql = format!("select {COLUMNS} from operator_account where email = $1");
        let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(email.trim().to_lowercase())
            .fetch_optional(self.pool())
            .await?;
        row.map(from_row).transpose()
    }

    /// The account with this id.
    pub async fn operator(&self, id: Uuid) -> Result<Option<OperatorLogin>, CatalogError> {
        let sql = format!("select {COLUMNS} from operator_account where operator_id = $1");
        let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.map(from_row).transpose()
    }

    /// Every operator account, by e-mail.
    pub async fn operators(&self) -> Result<Vec<OperatorAccount>, CatalogError> {
        let sql = format!("select {COLUMNS} from operator_account order by email");
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await?;
        rows.into_iter()
            .map(|r| from_row(r).map(|l| l.account))
            .collect()
    }

    /// Starts (or restarts) TOTP enrolment: stores a new secret, not yet enabled.
    pub async fn set_operator_totp_secret(
        &self,
        id: Uuid,
        secret_base32: &str,
    ) -> Result<(), CatalogError> {
        sqlx::query("update operator_account set totp_secret = $2, totp_enabled = false where operator_id = $1")
            .bind(id)
            .bind(secret_base32)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Accepts a TOTP step once: true if `step` is newer than the last accepted one (then it is
    /// recorded, and TOTP becomes enabled if it was being confirmed).
    pub async fn accept_operator_totp_step(
        &self,
        id: Uuid,
        step: u64,
    ) -> Result<bool, CatalogError> {
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        let n = sqlx::query(
            "update operator_account set totp_last_step = $2, totp_enabled = true \
             where operator_id = $1 and totp_last_step < $2 and totp_secret is not null",
        )
        .bind(id)
        .bind(step)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Replaces the account's recovery codes with these (SHA-256 of each).
    pub async fn replace_operator_recovery_codes(
        &self,
        id: Uuid,
        hashes: &[[u8; 32]],
    ) -> Result<(), CatalogError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("delete from operator_recovery_code where operator_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        for h in hashes {
            sqlx::query(
                "insert into operator_recovery_code (operator_id, code_sha256) values ($1, $2)",
            )
            .bind(id)
            .bind(&h[..])
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Uses a recovery code: true the first time, false after (or for an unknown code).
    pub async fn use_operator_recovery_code(
        &self,
        id: Uuid,
        hash: &[u8; 32],
    ) -> Result<bool, CatalogError> {
        let n = sqlx::query(
            "update operator_recovery_code set used_at = now() \
             where operator_id = $1 and code_sha256 = $2 and used_at is null",
        )
        .bind(id)
        .bind(&hash[..])
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(n == 1)
    }
}
