//! Prescriber operations (no delete: orders will refer to prescribers; deactivate instead).

use super::{Access, OpContext, TenantOp};
use aries_tenants::DomainError;
use aries_tenants::auth::{Action, Permission, Resource};
use aries_tenants::ids::PrescriberId;
use aries_tenants::page::PageRequest;
use aries_tenants::prescribers::{self, Prescriber, PrescriberFilter, PrescriberInput};
use futures::future::BoxFuture;
use serde_json::json;
use sqlx::PgConnection;

const fn needs(action: Action) -> Access {
    Access::Requires(Permission::new(Resource::Prescribers, action))
}

/// `POST /prescribers`.
pub struct CreatePrescriber(pub PrescriberInput);

impl TenantOp for CreatePrescriber {
    type Output = Prescriber;
    const NAME: &'static str = "prescriber.create";
    const ACCESS: Access = needs(Action::Edit);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Prescriber, DomainError>> {
        Box::pin(async move {
            let p = prescribers::create(conn, ctx.tenant, &self.0).await?;
            ctx.audit(
                conn,
                "prescriber.created",
                "prescriber",
                p.id,
                json!({"npi": p.npi}),
            )
            .await?;
            Ok(p)
        })
    }
}

/// `GET /prescribers/{id}`.
pub struct GetPrescriber(pub PrescriberId);

impl TenantOp for GetPrescriber {
    type Output = Prescriber;
    const NAME: &'static str = "prescriber.get";
    const ACCESS: Access = needs(Action::View);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Prescriber, DomainError>> {
        Box::pin(async move { prescribers::get(conn, ctx.tenant, self.0).await })
    }
}

/// `GET /prescribers`.
pub struct ListPrescribers {
    /// Which page.
    pub page: PageRequest,
    /// Which prescribers.
    pub filter: PrescriberFilter,
}

impl TenantOp for ListPrescribers {
    type Output = Vec<Prescriber>;
    const NAME: &'static str = "prescriber.list";
    const ACCESS: Access = needs(Action::View);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Vec<Prescriber>, DomainError>> {
        Box::pin(async move { prescribers::list(conn, ctx.tenant, self.page, &self.filter).await })
    }
}

/// `PATCH /prescribers/{id}` (JSON merge patch).
pub struct PatchPrescriber {
    /// Which prescriber.
    pub id: PrescriberId,
    /// The merge patch.
    pub patch: serde_json::Value,
    /// `If-Match` version, when sent.
    pub if_match: Option<i64>,
}

impl TenantOp for PatchPrescriber {
    type Output = Prescriber;
    const NAME: &'static str = "prescriber.patch";
    const ACCESS: Access = needs(Action::Edit);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Prescriber, DomainError>> {
        Box::pin(async move {
            let (p, changed) =
                prescribers::patch(conn, ctx.tenant, self.id, &self.patch, self.if_match).await?;
            if changed {
                ctx.audit(
                    conn,
                    "prescriber.updated",
                    "prescriber",
                    p.id,
                    json!({"patch": self.patch}),
                )
                .await?;
            }
            Ok(p)
        })
    }
}
