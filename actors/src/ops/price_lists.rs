//! Price-list operations: lists, their rows per item, the fee-schedule import and the percentage
//! adjustment. Editing a list or a row needs `price_lists:edit` (`delete` to remove a row); the
//! two bulk repricings need `price_lists:process`, a workflow right the billing role holds, so a
//! clerk who may correct one row cannot reprice a whole list.

use super::Access;
use aries_tenants::auth::{Action, Permission, Resource};
use aries_tenants::ids::{ItemId, PriceListId};
use aries_tenants::page::PageRequest;
use aries_tenants::price_lists::{
    self, AdjustInput, Adjustment, FeeScheduleImport, FeeScheduleImportInput, ItemFilter,
    PriceList, PriceListFilter, PriceListInput, PriceListItem, PriceListItemInput, PutOutcome,
};
use serde_json::json;

const fn needs(action: Action) -> Access {
    Access::Requires(Permission::new(Resource::PriceLists, action))
}

tenant_op!(
    /// `POST /price-lists`.
    CreatePriceList {
        /// The new list.
        input: PriceListInput,
    } -> PriceList, "price_list.create", needs(Action::Edit),
    |op, conn, ctx| {
        let l = price_lists::create(conn, ctx.tenant, &op.input).await?;
        ctx.audit(conn, "price_list.created", "price_list", l.id, json!({"name": l.name})).await?;
        Ok(l)
    }
);

tenant_op!(
    /// `GET /price-lists/{id}`.
    GetPriceList {
        /// Which list.
        id: PriceListId,
    } -> PriceList, "price_list.get", needs(Action::View),
    |op, conn, ctx| { price_lists::get(conn, ctx.tenant, op.id).await }
);

tenant_op!(
    /// `GET /price-lists`.
    ListPriceLists {
        /// Which page.
        page: PageRequest,
        /// Which lists.
        filter: PriceListFilter,
    } -> Vec<PriceList>, "price_list.list", needs(Action::View),
    |op, conn, ctx| { price_lists::list(conn, ctx.tenant, op.page, &op.filter).await }
);

tenant_op!(
    /// `PATCH /price-lists/{id}` (JSON merge patch).
    PatchPriceList {
        /// Which list.
        id: PriceListId,
        /// The merge patch.
        patch: serde_json::Value,
        /// `If-Match` version, when sent.
        if_match: Option<i64>,
    } -> PriceList, "price_list.patch", needs(Action::Edit),
    |op, conn, ctx| {
        let (l, changed) = price_lists::patch(conn, ctx.tenant, op.id, &op.patch, op.if_match).await?;
        if changed {
            ctx.audit(conn, "price_list.updated", "price_list", l.id, json!({"patch": op.patch})).await?;
        }
        Ok(l)
    }
);

tenant_op!(
    /// `PUT /price-lists/{id}/items/{item_id}`: create or replace a row.
    PutPriceListItem {
        /// Which list.
        list: PriceListId,
        /// Which item.
        item: ItemId,
        /// The whole row.
        input: PriceListItemInput,
        /// `If-Match` version, when sent (a replacement only).
        if_match: Option<i64>,
    } -> (PriceListItem, PutOutcome), "price_list.item_put", needs(Action::Edit),
    |op, conn, ctx| {
        let (row, outcome) =
            price_lists::put_item(conn, ctx.tenant, op.list, op.item, &op.input, op.if_match).await?;
        if outcome != PutOutcome::Unchanged {
            ctx.audit(conn, "price_list.item_put", "price_list", op.list,
                json!({"item_id": op.item, "created": outcome == PutOutcome::Created, "row": op.input}))
                .await?;
        }
        Ok((row, outcome))
    }
);

tenant_op!(
    /// `GET /price-lists/{id}/items/{item_id}`.
    GetPriceListItem {
        /// Which list.
        list: PriceListId,
        /// Which item.
        item: ItemId,
    } -> PriceListItem, "price_list.item_get", needs(Action::View),
    |op, conn, ctx| { price_lists::get_item(conn, ctx.tenant, op.list, op.item).await }
);

tenant_op!(
    /// `GET /price-lists/{id}/items`.
    ListPriceListItems {
        /// Which list.
        list: PriceListId,
        /// Which page.
        page: PageRequest,
        /// Which rows.
        filter: ItemFilter,
    } -> Vec<PriceListItem>, "price_list.item_list", needs(Action::View),
    |op, conn, ctx| { price_lists::list_items(conn, ctx.tenant, op.list, op.page, &op.filter).await }
);

tenant_op!(
    /// `DELETE /price-lists/{id}/items/{item_id}`.
    DeletePriceListItem {
        /// Which list.
        list: PriceListId,
        /// Which item.
        item: ItemId,
        /// `If-Match` version, when sent.
        if_match: Option<i64>,
    } -> (), "price_list.item_delete", needs(Action::Delete),
    |op, conn, ctx| {
        let row = price_lists::delete_item(conn, ctx.tenant, op.list, op.item, op.if_match).await?;
        ctx.audit(conn, "price_list.item_deleted", "price_list", op.list,
            json!({"item_id": op.item, "hcpcs": row.hcpcs}))
            .await?;
        Ok(())
    }
);

tenant_op!(
    /// `POST /price-lists/{id}/fee-schedule-import`. A dry run writes nothing, not even an audit row.
    ImportFeeSchedule {
        /// Which list.
        list: PriceListId,
        /// The file and its options.
        input: FeeScheduleImportInput,
    } -> FeeScheduleImport, "price_list.fee_schedule_import", needs(Action::Process),
    |op, conn, ctx| {
        let mut out = price_lists::import_fee_schedule(conn, ctx.tenant, op.list, &op.input).await?;
        if op.input.cascade_to_open_lines {
            out.lines_repriced = aries_tenants::orders::reprice_new_lines(
                conn, ctx.tenant, op.list, &out.changes, out.dry_run,
            )
            .await?;
        }
        if !out.dry_run {
            ctx.audit(conn, "price_list.fee_schedule_imported", "price_list", op.list,
                json!({
                    "state": out.state, "rural": out.rural, "file_sha256": out.file_sha256,
                    "file_bytes": op.input.csv.len(), "rows_read": out.rows_read,
                    "rows_ignored": out.rows_ignored, "codes_in_file": out.codes_in_file,
                    "rows_changed": out.rows_changed, "codes_not_in_file": out.codes_not_in_file,
                    "lines_repriced": out.lines_repriced,
                }))
                .await?;
        }
        Ok(out)
    }
);

tenant_op!(
    /// `POST /price-lists/{id}/adjust`.
    AdjustPriceList {
        /// Which list.
        list: PriceListId,
        /// The percentage and what it applies to.
        input: AdjustInput,
    } -> Adjustment, "price_list.adjust", needs(Action::Process),
    |op, conn, ctx| {
        let out = price_lists::adjust(conn, ctx.tenant, op.list, &op.input).await?;
        ctx.audit(conn, "price_list.adjusted", "price_list", op.list,
            json!({
                "percent": out.percent, "prices": out.prices, "hcpcs": op.input.hcpcs,
                "rows_changed": out.rows_changed,
            }))
            .await?;
        Ok(out)
    }
);
