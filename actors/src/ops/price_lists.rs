//! Price-list operations: lists, their rows per item, the fee-schedule import and the percentage
//! adjustment. Editing a list or a row needs `price_lists:edit` (`delete` to remove a row); the
//! two bulk repricings need `price_lists:process`, a workflow right the billing role holds, so a
//! clerk who may correct one row cannot reprice a whole list.

use super::{Access, OpContext, TenantOp};
use aries_tenants::DomainError;
use aries_tenants::auth::{Action, Permission, Resource};
use aries_tenants::ids::{ItemId, PriceListId};
use aries_tenants::page::PageRequest;
use aries_tenants::price_lists::{
    self, AdjustInput, Adjustment, FeeScheduleImport, FeeScheduleImportInput, ItemFilter,
    PriceList, PriceListFilter, PriceListInput, PriceListItem, PriceListItemInput, PutOutcome,
};
use futures::future::BoxFuture;
use serde_json::json;
use sqlx::PgConnection;

const fn needs(action: Action) -> Access {
    Access::Requires(Permission::new(Resource::PriceLists, action))
}

/// `POST /price-lists`.
pub struct CreatePriceList(pub PriceListInput);

impl TenantOp for CreatePriceList {
    type Output = PriceList;
    const NAME: &'static str = "price_list.create";
    const ACCESS: Access = needs(Action::Edit);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<PriceList, DomainError>> {
        Box::pin(async move {
            let l = price_lists::create(conn, ctx.tenant, &self.0).await?;
            ctx.audit(
                conn,
                "price_list.created",
                "price_list",
                l.id,
                json!({"name": l.name}),
            )
            .await?;
            Ok(l)
        })
    }
}

/// `GET /price-lists/{id}`.
pub struct GetPriceList(pub PriceListId);

impl TenantOp for GetPriceList {
    type Output = PriceList;
    const NAME: &'static str = "price_list.get";
    const ACCESS: Access = needs(Action::View);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<PriceList, DomainError>> {
        Box::pin(async move { price_lists::get(conn, ctx.tenant, self.0).await })
    }
}

/// `GET /price-lists`.
pub struct ListPriceLists {
    /// Which page.
    pub page: PageRequest,
    /// Which lists.
    pub filter: PriceListFilter,
}

impl TenantOp for ListPriceLists {
    type Output = Vec<PriceList>;
    const NAME: &'static str = "price_list.list";
    const ACCESS: Access = needs(Action::View);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Vec<PriceList>, DomainError>> {
        Box::pin(async move { price_lists::list(conn, ctx.tenant, self.page, &self.filter).await })
    }
}

/// `PATCH /price-lists/{id}` (JSON merge patch).
pub struct PatchPriceList {
    /// Which list.
    pub id: PriceListId,
    /// The merge patch.
    pub patch: serde_json::Value,
    /// `If-Match` version, when sent.
    pub if_match: Option<i64>,
}

impl TenantOp for PatchPriceList {
    type Output = PriceList;
    const NAME: &'static str = "price_list.patch";
    const ACCESS: Access = needs(Action::Edit);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<PriceList, DomainError>> {
        Box::pin(async move {
            let (l, changed) =
                price_lists::patch(conn, ctx.tenant, self.id, &self.patch, self.if_match).await?;
            if changed {
                ctx.audit(
                    conn,
                    "price_list.updated",
                    "price_list",
                    l.id,
                    json!({"patch": self.patch}),
                )
                .await?;
            }
            Ok(l)
        })
    }
}

/// `PUT /price-lists/{id}/items/{item_id}`: create or replace a row.
pub struct PutPriceListItem {
    /// Which list.
    pub list: PriceListId,
    /// Which item.
    pub item: ItemId,
    /// The whole row.
    pub input: PriceListItemInput,
    /// `If-Match` version, when sent (a replacement only).
    pub if_match: Option<i64>,
}

impl TenantOp for PutPriceListItem {
    type Output = (PriceListItem, PutOutcome);
    const NAME: &'static str = "price_list.item_put";
    const ACCESS: Access = needs(Action::Edit);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<(PriceListItem, PutOutcome), DomainError>> {
        Box::pin(async move {
            let (row, outcome) = price_lists::put_item(
                conn,
                ctx.tenant,
                self.list,
                self.item,
                &self.input,
                self.if_match,
            )
            .await?;
            if outcome != PutOutcome::Unchanged {
                ctx.audit(
                    conn,
                    "price_list.item_put",
                    "price_list",
                    self.list,
                    json!({"item_id": self.item, "created": outcome == PutOutcome::Created, "row": self.input}),
                )
                .await?;
            }
            Ok((row, outcome))
        })
    }
}

/// `GET /price-lists/{id}/items/{item_id}`.
pub struct GetPriceListItem {
    /// Which list.
    pub list: PriceListId,
    /// Which item.
    pub item: ItemId,
}

impl TenantOp for GetPriceListItem {
    type Output = PriceListItem;
    const NAME: &'static str = "price_list.item_get";
    const ACCESS: Access = needs(Action::View);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<PriceListItem, DomainError>> {
        Box::pin(async move { price_lists::get_item(conn, ctx.tenant, self.list, self.item).await })
    }
}

/// `GET /price-lists/{id}/items`.
pub struct ListPriceListItems {
    /// Which list.
    pub list: PriceListId,
    /// Which page.
    pub page: PageRequest,
    /// Which rows.
    pub filter: ItemFilter,
}

impl TenantOp for ListPriceListItems {
    type Output = Vec<PriceListItem>;
    const NAME: &'static str = "price_list.item_list";
    const ACCESS: Access = needs(Action::View);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Vec<PriceListItem>, DomainError>> {
        Box::pin(async move {
            price_lists::list_items(conn, ctx.tenant, self.list, self.page, &self.filter).await
        })
    }
}

/// `DELETE /price-lists/{id}/items/{item_id}`.
pub struct DeletePriceListItem {
    /// Which list.
    pub list: PriceListId,
    /// Which item.
    pub item: ItemId,
    /// `If-Match` version, when sent.
    pub if_match: Option<i64>,
}

impl TenantOp for DeletePriceListItem {
    type Output = ();
    const NAME: &'static str = "price_list.item_delete";
    const ACCESS: Access = needs(Action::Delete);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<(), DomainError>> {
        Box::pin(async move {
            let row =
                price_lists::delete_item(conn, ctx.tenant, self.list, self.item, self.if_match)
                    .await?;
            ctx.audit(
                conn,
                "price_list.item_deleted",
                "price_list",
                self.list,
                json!({"item_id": self.item, "hcpcs": row.hcpcs}),
            )
            .await?;
            Ok(())
        })
    }
}

/// `POST /price-lists/{id}/fee-schedule-import`. A dry run writes nothing, not even an audit row.
pub struct ImportFeeSchedule {
    /// Which list.
    pub list: PriceListId,
    /// The file and its options.
    pub input: FeeScheduleImportInput,
}

impl TenantOp for ImportFeeSchedule {
    type Output = FeeScheduleImport;
    const NAME: &'static str = "price_list.fee_schedule_import";
    const ACCESS: Access = needs(Action::Process);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<FeeScheduleImport, DomainError>> {
        Box::pin(async move {
            let mut out =
                price_lists::import_fee_schedule(conn, ctx.tenant, self.list, &self.input).await?;
            if self.input.cascade_to_open_lines {
                out.lines_repriced = aries_tenants::orders::reprice_new_lines(
                    conn,
                    ctx.tenant,
                    self.list,
                    &out.changes,
                    out.dry_run,
                )
                .await?;
            }
            if !out.dry_run {
                ctx.audit(
                    conn,
                    "price_list.fee_schedule_imported",
                    "price_list",
                    self.list,
                    json!({
                        "state": out.state, "rural": out.rural, "file_sha256": out.file_sha256,
                        "file_bytes": self.input.csv.len(), "rows_read": out.rows_read,
                        "rows_ignored": out.rows_ignored, "codes_in_file": out.codes_in_file,
                        "rows_changed": out.rows_changed, "codes_not_in_file": out.codes_not_in_file,
                        "lines_repriced": out.lines_repriced,
                    }),
                )
                .await?;
            }
            Ok(out)
        })
    }
}

/// `POST /price-lists/{id}/adjust`.
pub struct AdjustPriceList {
    /// Which list.
    pub list: PriceListId,
    /// The percentage and what it applies to.
    pub input: AdjustInput,
}

impl TenantOp for AdjustPriceList {
    type Output = Adjustment;
    const NAME: &'static str = "price_list.adjust";
    const ACCESS: Access = needs(Action::Process);
    fn run<'c>(
        self,
        conn: &'c mut PgConnection,
        ctx: &'c OpContext,
    ) -> BoxFuture<'c, Result<Adjustment, DomainError>> {
        Box::pin(async move {
            let out = price_lists::adjust(conn, ctx.tenant, self.list, &self.input).await?;
            ctx.audit(
                conn,
                "price_list.adjusted",
                "price_list",
                self.list,
                json!({
                    "percent": out.percent, "prices": out.prices, "hcpcs": self.input.hcpcs,
                    "rows_changed": out.rows_changed,
                }),
            )
            .await?;
            Ok(out)
        })
    }
}
