//! Payer operations (no delete: policies will refer to payers; deactivate instead).

use super::{Access, OpContext, TenantOp};
use aries_tenants::DomainError;
use aries_tenants::auth::{Action, Permission, Resource};
use aries_tenants::ids::PayerId;
use aries_tenants::page::PageRequest;
use aries_tenants::payers::{self, Payer, PayerFilter, PayerInput};
use futures::future::BoxFuture;
use serde_json::json;
use sqlx::PgConnection;

const fn needs(action: Action) -> Access {
    Access::Requires(Permission::new(Resource::Payers, action))
}

/// `POST /payers`.
pub struct CreatePayer(pub PayerInput);

impl TenantOp for CreatePayer {
    type Output = Payer;
    const NAME: &'static str = "payer.create";
    const ACCESS: Access = needs(Action::Edit);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Payer, DomainError>> {
        Box::pin(async move {
            let p = payers::create(conn, ctx.tenant, &self.0).await?;
            ctx.audit(
                conn,
                "payer.created",
                "payer",
                p.id,
                json!({"name": p.name}),
            )
            .await?;
            Ok(p)
        })
    }
}

/// `GET /payers/{id}`.
pub struct GetPayer(pub PayerId);

impl TenantOp for GetPayer {
    type Output = Payer;
    const NAME: &'static str = "payer.get";
    const ACCESS: Access = needs(Action::View);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Payer, DomainError>> {
        Box::pin(async move { payers::get(conn, ctx.tenant, self.0).await })
    }
}

/// `GET /payers`.
pub struct ListPayers {
    /// Which page.
    pub page: PageRequest,
    /// Which payers.
    pub filter: PayerFilter,
}

impl TenantOp for ListPayers {
    type Output = Vec<Payer>;
    const NAME: &'static str = "payer.list";
    const ACCESS: Access = needs(Action::View);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Vec<Payer>, DomainError>> {
        Box::pin(async move { payers::list(conn, ctx.tenant, self.page, &self.filter).await })
    }
}

/// `PATCH /payers/{id}` (JSON merge patch).
pub struct PatchPayer {
    /// Which payer.
    pub id: PayerId,
    /// The merge patch.
    pub patch: serde_json::Value,
    /// `If-Match` version, when sent.
    pub if_match: Option<i64>,
}

impl TenantOp for PatchPayer {
    type Output = Payer;
    const NAME: &'static str = "payer.patch";
    const ACCESS: Access = needs(Action::Edit);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Payer, DomainError>> {
        Box::pin(async move {
            let (p, changed) =
                payers::patch(conn, ctx.tenant, self.id, &self.patch, self.if_match).await?;
            if changed {
                ctx.audit(
                    conn,
                    "payer.updated",
                    "payer",
                    p.id,
                    json!({"patch": self.patch}),
                )
                .await?;
            }
            Ok(p)
        })
    }
}
