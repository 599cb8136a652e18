//! Location operations. A principal limited to some locations sees and changes only those (others
//! answer 404, as if they did not exist).

use super::{Access, OpContext};
use aries_tenants::auth::{Action, Permission, Resource};
use aries_tenants::locations::store::{self, ListFilter};
use aries_tenants::locations::{Location, LocationInput};
use aries_tenants::page::PageRequest;
use aries_tenants::{DomainError, LocationId};
use serde_json::json;

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

tenant_op!(
    /// `POST /locations`.
    CreateLocation {
        /// The new location.
        input: LocationInput,
    } -> Location, "location.create", needs(Action::Edit),
    |op, conn, ctx| {
        let location = store::create(conn, ctx.tenant, &op.input).await?;
        ctx.audit(conn, "location.created", "location", location.id, json!({"code": location.code}))
            .await?;
        Ok(location)
    }
);

tenant_op!(
    /// `GET /locations/{id}`.
    GetLocation {
        /// Which location.
        id: LocationId,
    } -> Location, "location.get", needs(Action::View),
    |op, conn, ctx| {
        visible(ctx, op.id)?;
        store::get(conn, ctx.tenant, op.id).await
    }
);

tenant_op!(
    /// `GET /locations`.
    ListLocations {
        /// Which page.
        page: PageRequest,
        /// Which locations.
        filter: ListFilter,
    } -> Vec<Location>, "location.list", needs(Action::View),
    |op, conn, ctx| {
        let mut filter = op.filter;
        if let Some(p) = &ctx.principal {
            filter.only = p.location_ids.clone();
        }
        store::list(conn, ctx.tenant, op.page, &filter).await
    }
);

tenant_op!(
    /// `PATCH /locations/{id}` (JSON merge patch).
    PatchLocation {
        /// Which location.
        id: LocationId,
        /// The merge patch (an object).
        patch: serde_json::Value,
        /// `If-Match` version, when sent.
        if_match: Option<i64>,
    } -> Location, "location.patch", needs(Action::Edit),
    |op, conn, ctx| {
        visible(ctx, op.id)?;
        let (location, changed) = store::patch(conn, ctx.tenant, op.id, &op.patch, op.if_match).await?;
        if changed {
            ctx.audit(conn, "location.updated", "location", location.id, json!({"patch": op.patch}))
                .await?;
        }
        Ok(location)
    }
);

tenant_op!(
    /// `DELETE /locations/{id}`.
    DeleteLocation {
        /// Which location.
        id: LocationId,
        /// `If-Match` version, when sent.
        if_match: Option<i64>,
    } -> (), "location.delete", needs(Action::Delete),
    |op, conn, ctx| {
        visible(ctx, op.id)?;
        store::delete(conn, ctx.tenant, op.id, op.if_match).await?;
        ctx.audit(conn, "location.deleted", "location", op.id, json!({})).await
    }
);
