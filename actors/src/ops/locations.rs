//! Location operations. A principal limited to some locations sees and changes only those (others
//! answer 404, as if they did not exist).

use super::{Access, OpContext, TenantOp};
use aries_tenants::auth::{Action, Permission, Resource};
use aries_tenants::locations::store::{self, ListFilter};
use aries_tenants::locations::{Location, LocationInput};
use aries_tenants::page::PageRequest;
use aries_tenants::{DomainError, LocationId};
use futures::future::BoxFuture;
use serde_json::json;
use sqlx::PgConnection;

const fn needs(action: Action) -> Access {
    Access::Requires(Permission::new(Resource::Locations, action))
}

/// 404 unless the caller may use `id`.
fn visible(ctx: &OpContext, id: LocationId) -> Result<(), DomainError> {
    match &ctx.principal {
        Some(p) if !p.may_use_location(id) => Err(DomainError::NotFound("location")),
        _ => Ok(()),
    }
}

/// `POST /locations`.
pub struct CreateLocation(pub LocationInput);

impl TenantOp for CreateLocation {
    type Output = Location;
    const NAME: &'static str = "location.create";
    const ACCESS: Access = needs(Action::Edit);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Location, DomainError>> {
        Box::pin(async move {
            let location = store::create(conn, ctx.tenant, &self.0).await?;
            ctx.audit(
                conn,
                "location.created",
                "location",
                location.id,
                json!({"code": location.code}),
            )
            .await?;
            Ok(location)
        })
    }
}

/// `GET /locations/{id}`.
pub struct GetLocation(pub LocationId);

impl TenantOp for GetLocation {
    type Output = Location;
    const NAME: &'static str = "location.get";
    const ACCESS: Access = needs(Action::View);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Location, DomainError>> {
        Box::pin(async move {
            visible(ctx, self.0)?;
            store::get(conn, ctx.tenant, self.0).await
        })
    }
}

/// `GET /locations`.
pub struct ListLocations {
    /// Which page.
    pub page: PageRequest,
    /// Which locations.
    pub filter: ListFilter,
}

impl TenantOp for ListLocations {
    type Output = Vec<Location>;
    const NAME: &'static str = "location.list";
    const ACCESS: Access = needs(Action::View);
    fn run<'c>(
        mut self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Vec<Location>, DomainError>> {
        Box::pin(async move {
            if let Some(p) = &ctx.principal {
                self.filter.only = p.location_ids.clone();
            }
            store::list(conn, ctx.tenant, self.page, &self.filter).await
        })
    }
}

/// `PATCH /locations/{id}` (JSON merge patch).
pub struct PatchLocation {
    /// Which location.
    pub id: LocationId,
    /// The merge patch (an object).
    pub patch: serde_json::Value,
    /// `If-Match` version, when sent.
    pub if_match: Option<i64>,
}

impl TenantOp for PatchLocation {
    type Output = Location;
    const NAME: &'static str = "location.patch";
    const ACCESS: Access = needs(Action::Edit);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Location, DomainError>> {
        Box::pin(async move {
            visible(ctx, self.id)?;
            let (location, changed) =
                store::patch(conn, ctx.tenant, self.id, &self.patch, self.if_match).await?;
            if changed {
                ctx.audit(
                    conn,
                    "location.updated",
                    "location",
                    location.id,
                    json!({"patch": self.patch}),
                )
                .await?;
            }
            Ok(location)
        })
    }
}

/// `DELETE /locations/{id}`.
pub struct DeleteLocation {
    /// Which location.
    pub id: LocationId,
    /// `If-Match` version, when sent.
    pub if_match: Option<i64>,
}

impl TenantOp for DeleteLocation {
    type Output = ();
    const NAME: &'static str = "location.delete";
    const ACCESS: Access = needs(Action::Delete);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<(), DomainError>> {
        Box::pin(async move {
            visible(ctx, self.id)?;
            store::delete(conn, ctx.tenant, self.id, self.if_match).await?;
            ctx.audit(conn, "location.deleted", "location", self.id, json!({}))
                .await
        })
    }
}
