//! Recurring billing (DOMAIN.md §3.2, §4): the pure function that turns an order line's billing
//! cursor into its next charge — dates of service, invoice date, billed units, modifiers, amounts
//! and tax — and says when the line closes. No I/O: the billing run reads the line, calls
//! [`next_cycle`] or [`charges_until`], and stores the charges and the new [`Cursor`].
//!
//! **Periods** are derived from the delivery date and the period number, never from the previous
//! period, so month arithmetic that clamps (Jan 31 + 1 month = Feb 28/29) does not drift (the
//! third period still starts on Mar 31). Period *n* (0-based) starts at [`period_start`] and ends
//! the day before period *n + 1* starts, so consecutive charges never overlap nor leave a gap.
//!
//! **Versions**: every period is priced by the [`RuleSet`] in force on its first day of service
//! ([`rule_set_for`]), so a rule change applies to later periods and never rewrites what was
//! billed before it. Periods of lines delivered before 2006-01-01 are refused.
//!
//! Choices where the legacy rules are silent (each one is tested below):
//! - The end date is `end_date`, else the pickup date: a period that starts after it is never
//!   billed; a period that starts on or before it bills whole (no proration) and closes the line.
//! - Sales (`one_time_sale`, `reoccurring_sale`) and the `one_time` frequency have a single day of
//!   service (`dos_to = dos_from`); rentals span their period.
//! - A line billed on the day of pickup has no invoice date until it is picked up: the outcome is
//!   [`Cycle::Held`] with [`HoldReason::AwaitingPickup`] (there is no date to report in `NotDue`).
//! - A cursor whose `dos_from` is not the derived start of its period (a frequency or delivery date
//!   changed after billing began) is held ([`HoldReason::CursorMismatch`]) rather than billed, so a
//!   changed line can never bill a period twice; a person decides.
//! - Amounts are price × billed units (unless flat rate) for every type, including capped and
//!   oxygen rentals; the rent-to-purchase balance is per unit. Missing prices count as zero
//!   (the missing-information check keeps such lines off the worklist) and negative prices or tax
//!   rates as zero, so a charge is never a credit.

use super::terms::{BillItemOn, BillingFrequency, SaleRentType};
use crate::money::cents;
use chrono::{Datelike, Days, Months, NaiveDate};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// What the billing function needs of an order line: plain data, copied from the stored line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingLine {
    /// Decides how many months bill, the amount and the modifiers (§3.2).
    pub sale_rent_type: SaleRentType,
    /// How far each period advances the date of service.
    pub billing_frequency: BillingFrequency,
    /// Which day each period's invoice is dated, and so when it is due.
    pub bill_item_on: BillItemOn,
    /// Units ordered per `ordered_frequency` (e.g. 2 a day); `ordered_frequency` None = per billing period.
    pub quantity: i32,
    /// The frequency `quantity` is ordered in; converted to the billing period by [`multiplier`].
    pub ordered_frequency: Option<BillingFrequency>,
    /// The line's pricing modifiers (from the price list or the line), kept after the ones the
    /// rules add.
    pub modifiers: Vec<String>,
    /// Per-unit billable (usual and customary) price of the line's kind (rent for rentals).
    pub billable_price: Option<Decimal>,
    /// Per-unit allowable price of the line's kind; the tax base.
    pub allowable_price: Option<Decimal>,
    /// Per-unit sale billable price: the purchase a rent-to-purchase line's last month completes.
    pub sale_billable_price: Option<Decimal>,
    /// Per-unit sale allowable price, for the same purchase.
    pub sale_allowable_price: Option<Decimal>,
    /// Whether tax is charged on the allowable amount.
    pub taxable: bool,
    /// Whether the price is for the whole line, whatever the quantity.
    pub flat_rate: bool,
    /// First day of service; every period is derived from it.
    pub delivery_date: NaiveDate,
    /// When rental equipment came back: the invoice date of day-of-pickup lines, and the end date
    /// when `end_date` is not set.
    pub pickup_date: Option<NaiveDate>,
    /// No period starting after this day is billed.
    pub end_date: Option<NaiveDate>,
    /// The cursor: months billed so far (0 before the first invoice) and the next period's first day.
    pub billing_month: i32,
    /// The first day of the next period to bill (the delivery date before the first invoice).
    pub dos_from: NaiveDate,
}

impl BillingLine {
    /// The line's billing cursor.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            billing_month: self.billing_month,
            dos_from: self.dos_from,
        }
    }

    /// The same line with its cursor moved (what the billing run stores after a charge).
    pub fn at(&self, cursor: Cursor) -> BillingLine {
        BillingLine {
            billing_month: cursor.billing_month,
            dos_from: cursor.dos_from,
            ..self.clone()
        }
    }
}

/// One invoice line's worth: what the line bills for one period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Charge {
    /// 1-based month (period number) this charge is for; a line bills each month once.
    pub billing_month: i32,
    /// First day of service of the period.
    pub dos_from: NaiveDate,
    /// Last day of service: the period's last day, or `dos_from` for sales and one-time lines.
    pub dos_to: NaiveDate,
    /// The invoice's date, from `bill_item_on`; never later than the `as_of` it was billed at.
    pub invoice_date: NaiveDate,
    /// Billed units: the ordered quantity × the frequency [`multiplier`].
    pub quantity: Decimal,
    /// At most four modifiers for the claim line, e.g. `RR KH`, `RR KI`, `RR KJ KX`.
    pub modifiers: Vec<String>,
    /// Billable amount for the line (price × quantity unless flat rate), to the cent.
    pub billable: Decimal,
    /// Allowable amount for the line, to the cent.
    pub allowable: Decimal,
    /// Allowable × tax rate when taxable, half-up to the cent; else 0.00.
    pub tax: Decimal,
    /// The [`RuleSet::version`] that priced this period (chosen by `dos_from`).
    pub rule_version: &'static str,
}

/// A [`Charge`] as read back from JSON: its rule version must be one of [`RULE_SETS`].
#[derive(Deserialize)]
struct StoredCharge {
    billing_month: i32,
    dos_from: NaiveDate,
    dos_to: NaiveDate,
    invoice_date: NaiveDate,
    quantity: Decimal,
    modifiers: Vec<String>,
    billable: Decimal,
    allowable: Decimal,
    tax: Decimal,
    rule_version: String,
}

impl<'de> Deserialize<'de> for Charge {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Charge::try_from(StoredCharge::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<StoredCharge> for Charge {
    type Error = String;
    fn try_from(c: StoredCharge) -> Result<Self, String> {
        let rule_version = RULE_SETS
            .iter()
            .map(|r| r.version)
            .find(|v| *v == c.rule_version)
            .ok_or_else(|| format!("unknown rule version `{}`", c.rule_version))?;
        Ok(Charge {
            billing_month: c.billing_month,
            dos_from: c.dos_from,
            dos_to: c.dos_to,
            invoice_date: c.invoice_date,
            quantity: c.quantity,
            modifiers: c.modifiers,
            billable: c.billable,
            allowable: c.allowable,
            tax: c.tax,
            rule_version,
        })
    }
}

/// Where a line's billing stands at a date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Cycle {
    /// Bill this; then the cursor becomes `next` (billing_month + 1, next dos_from) and, when
    /// `closes` is true, the line closes after this charge (auto-close or end date).
    Bill {
        /// The charge for the cursor's period.
        charge: Charge,
        /// The cursor to store once the charge is invoiced.
        next: Cursor,
        /// Whether the line has nothing more to bill after this charge (the next call would be
        /// [`Cycle::Closed`], whatever the date).
        closes: bool,
    },
    /// Nothing to bill yet: the next charge's invoice date is later than `as_of`.
    NotDue {
        /// When the next charge becomes due (the line's next bill date).
        invoice_date: NaiveDate,
    },
    /// The line is finished (no charge): past its end date, or its type's last month was billed.
    Closed {
        /// Why it is finished.
        reason: CloseReason,
    },
    /// Added to the specified API: nothing can bill and no invoice date is known, but the line
    /// stays open (waiting for a pickup, or a cursor that needs a person to look at it).
    Held {
        /// What it waits for.
        reason: HoldReason,
    },
}

/// A line's billing cursor, as stored on the order line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Cursor {
    /// Months billed so far.
    pub billing_month: i32,
    /// First day of the next period to bill.
    pub dos_from: NaiveDate,
}

/// Why a line has nothing more to bill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// The type's last month (13 capped, 10 rent to purchase, 60 oxygen, …) was billed.
    LastMonthBilled,
    /// The next period starts after the end date (or the pickup date).
    EndDatePassed,
    /// A one-time line (one-time sale or rental, a reoccurring sale's order, or the `one_time`
    /// frequency) billed its single month.
    OneTime,
    /// Delivered before 2006-01-01: the pre-2006 rules are not ported (DOMAIN.md §3.2).
    UnsupportedLegacyRules,
    /// The next period's dates fall outside the calendar's range (only with absurd data).
    DateOutOfRange,
}

/// Why an open line cannot bill now, with no date at which it will.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldReason {
    /// Billed on the day of pickup, and not picked up yet.
    AwaitingPickup,
    /// The cursor's `dos_from` is not its period's derived start (the delivery date or frequency
    /// changed after billing began); billing it could bill days twice.
    CursorMismatch {
        /// The start the delivery date and billing month give.
        expected: NaiveDate,
    },
    /// A negative billing month.
    InvalidCursor,
}

/// A version of the billing rules, in force for periods starting on or after `effective_from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RuleSet {
    /// Stable name stored on each charge it priced.
    pub version: &'static str,
    /// The first date of service (a period's `dos_from`) it applies to.
    pub effective_from: NaiveDate,
    /// Months a capped (or parenteral capped) rental bills before it closes.
    pub capped_rental_months: i32,
    /// The month from which a capped rental carries KX.
    pub capped_rental_kx_from: i32,
    /// Months a rent-to-purchase line bills; the last one is the rest of the sale price.
    pub rent_to_purchase_months: i32,
    /// Months a Medicare oxygen rental bills.
    pub oxygen_months: i32,
}

const fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    match NaiveDate::from_ymd_opt(y, m, d) {
        Some(d) => d,
        None => NaiveDate::MIN,
    }
}

/// The rule versions, oldest first, each in force from its `effective_from` until the next.
pub const RULE_SETS: &[RuleSet] = &[
    // DMEPOS rules after the Deficit Reduction Act of 2005 (DOMAIN.md §3.2).
    RuleSet {
        version: "dmepos-2006",
        effective_from: date(2006, 1, 1),
        capped_rental_months: 13,
        capped_rental_kx_from: 12,
        rent_to_purchase_months: 10,
        oxygen_months: 60,
    },
];

/// The rule set in force for a period starting on `dos_from`; None before 2006-01-01.
pub fn rule_set_for(dos_from: NaiveDate) -> Option<&'static RuleSet> {
    rule_set_in(RULE_SETS, dos_from)
}

/// The rule set of `table` (oldest first) in force for a period starting on `dos_from`.
pub fn rule_set_in(table: &'static [RuleSet], dos_from: NaiveDate) -> Option<&'static RuleSet> {
    table.iter().rev().find(|r| r.effective_from <= dos_from)
}

/// The first day of period `index` (0-based) of a line delivered on `delivery`: +1 day / week /
/// month / 3 / 6 / 12 months per period (clamped to the month's last day, always counted from the
/// delivery date); `calendar_monthly` starts later periods on the 1st of the month. The `one_time`
/// frequency advances like `daily` (its period is one day). None for a negative index or a date
/// out of range.
pub fn period_start(
    frequency: BillingFrequency,
    delivery: NaiveDate,
    index: i32,
) -> Option<NaiveDate> {
    use BillingFrequency as F;
    let n = u32::try_from(index).ok()?;
    if n == 0 {
        return Some(delivery);
    }
    let months = |per: u32| delivery.checked_add_months(Months::new(n.checked_mul(per)?));
    match frequency {
        F::OneTime | F::Daily => delivery.checked_add_days(Days::new(u64::from(n))),
        F::Weekly => delivery.checked_add_days(Days::new(u64::from(n) * 7)),
        F::Monthly => months(1),
        F::Quarterly => months(3),
        F::SemiAnnually => months(6),
        F::Annually => months(12),
        F::CalendarMonthly => delivery.with_day(1)?.checked_add_months(Months::new(n)),
    }
}

/// Months (periods) a line of this kind bills at most under `rules`, and the reason it closes
/// after the last one; None = every period until the end date.
pub fn months_billed(
    sale_rent_type: SaleRentType,
    frequency: BillingFrequency,
    rules: &RuleSet,
) -> Option<(i32, CloseReason)> {
    use SaleRentType as T;
    if frequency == BillingFrequency::OneTime {
        return Some((1, CloseReason::OneTime));
    }
    match sale_rent_type {
        T::OneTimeSale | T::OneTimeRental | T::ReoccurringSale => Some((1, CloseReason::OneTime)),
        T::MonthlyRental => None,
        T::CappedRental | T::ParentalCappedRental => {
            Some((rules.capped_rental_months, CloseReason::LastMonthBilled))
        }
        T::RentToPurchase => Some((rules.rent_to_purchase_months, CloseReason::LastMonthBilled)),
        T::MedicareOxygenRental => Some((rules.oxygen_months, CloseReason::LastMonthBilled)),
    }
}

/// Months a frequency spans, for the month-based ones.
fn months_in(f: BillingFrequency) -> Option<i64> {
    use BillingFrequency as F;
    match f {
        F::Monthly | F::CalendarMonthly => Some(1),
        F::Quarterly => Some(3),
        F::SemiAnnually => Some(6),
        F::Annually => Some(12),
        F::OneTime | F::Daily | F::Weekly => None,
    }
}

/// Billed units per ordered unit (legacy `GetMultiplier`): converts a quantity ordered per
/// `ordered` into the billing period `billed` of `period_days` days.
///
/// | ordered ↓ billed → | one_time | daily | weekly | (calendar) monthly | quarterly | semi | annual |
/// |---|---|---|---|---|---|---|---|
/// | none, one_time, same | 1 | 1 | 1 | 1 | 1 | 1 | 1 |
/// | daily | 1 | 1 | days (7) | days in period | days | days | days |
/// | weekly | 1 | 1 | 1 | 4 (legacy) | 13 | 26 | 52 |
/// | monthly, calendar monthly | 1 | 1 | 1 | 1 | 3 | 6 | 12 |
/// | quarterly | 1 | 1 | 1 | 1 | 1 | 2 | 4 |
/// | semi-annually | 1 | 1 | 1 | 1 | 1 | 1 | 2 |
///
/// Billing more often than ordered bills the ordered units each period (1): claims take whole
/// units, so a fraction is not an option.
pub fn multiplier(
    ordered: Option<BillingFrequency>,
    billed: BillingFrequency,
    period_days: i64,
) -> Decimal {
    use BillingFrequency as F;
    let ordered = match ordered {
        Some(o) if o != billed => o,
        _ => return Decimal::ONE,
    };
    let n = match (ordered, billed) {
        (F::OneTime, _) | (_, F::OneTime) => 1,
        (F::Daily, _) => period_days.max(1),
        (F::Weekly, F::Monthly | F::CalendarMonthly) => 4,
        (F::Weekly, F::Quarterly) => 13,
        (F::Weekly, F::SemiAnnually) => 26,
        (F::Weekly, F::Annually) => 52,
        (o, b) => match (months_in(o), months_in(b)) {
            (Some(o), Some(b)) if b > o => b / o,
            _ => 1,
        },
    };
    Decimal::from(n)
}

/// The modifiers a charge carries in `month` (1-based), at most four. Capped rentals: RR, then
/// KH (month 1), KI (months 2–3) or KJ (months 4+), then KX from the rule set's KX month, then the
/// line's other modifiers (its own KH/KI/KJ dropped). Other types: the line's modifiers.
/// Modifiers are trimmed, upper-cased and never repeated.
pub fn invoice_modifiers(line: &BillingLine, month: i32, rules: &RuleSet) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(4);
    let capped = matches!(
        line.sale_rent_type,
        SaleRentType::CappedRental | SaleRentType::ParentalCappedRental
    );
    if capped {
        out.push("RR".into());
        out.push(
            match month {
                ..=1 => "KH",
                2..=3 => "KI",
                _ => "KJ",
            }
            .into(),
        );
        if month >= rules.capped_rental_kx_from {
            out.push("KX".into());
        }
    }
    for m in &line.modifiers {
        let m = m.trim().to_ascii_uppercase();
        let phase = capped && matches!(m.as_str(), "KH" | "KI" | "KJ");
        if out.len() < 4 && !m.is_empty() && !phase && !out.contains(&m) {
            out.push(m);
        }
    }
    out
}

/// The invoice date of the line's next charge, whatever the day (None when the line is closed or
/// held, e.g. a day-of-pickup line still out): what an order line keeps as `next_bill_date`.
pub fn next_invoice_date(line: &BillingLine) -> Option<NaiveDate> {
    match next_cycle(line, NaiveDate::MIN, Decimal::ZERO) {
        Cycle::NotDue { invoice_date } => Some(invoice_date),
        Cycle::Bill { charge, .. } => Some(charge.invoice_date),
        Cycle::Closed { .. } | Cycle::Held { .. } => None,
    }
}

/// When the next order of a reoccurring sale is due: the start of the line's second period, if it
/// is not after the end date. None for other types and the `one_time` frequency.
pub fn reorder_date(line: &BillingLine) -> Option<NaiveDate> {
    if line.sale_rent_type != SaleRentType::ReoccurringSale
        || line.billing_frequency == BillingFrequency::OneTime
    {
        return None;
    }
    let next = period_start(line.billing_frequency, line.delivery_date, 1)?;
    match end_of_billing(line) {
        Some(end) if next > end => None,
        _ => Some(next),
    }
}

/// The last day a period may start on: the end date, else the pickup date.
fn end_of_billing(line: &BillingLine) -> Option<NaiveDate> {
    line.end_date.or(line.pickup_date)
}

/// Whether a charge's dates of service are a single day rather than the period.
fn single_day(line: &BillingLine) -> bool {
    line.billing_frequency == BillingFrequency::OneTime
        || matches!(
            line.sale_rent_type,
            SaleRentType::OneTimeSale | SaleRentType::ReoccurringSale
        )
}

/// A period the cursor may bill (whatever the date).
struct OpenPeriod {
    rules: &'static RuleSet,
    /// 1-based month.
    month: i32,
    /// Months the type bills (None = unlimited).
    last_month: Option<i32>,
    start: NaiveDate,
    last_day: NaiveDate,
    next_start: NaiveDate,
}

/// Why the cursor's period cannot bill, whatever the date.
enum Stop {
    Closed(CloseReason),
    Held(HoldReason),
}

impl From<Stop> for Cycle {
    fn from(stop: Stop) -> Cycle {
        match stop {
            Stop::Closed(reason) => Cycle::Closed { reason },
            Stop::Held(reason) => Cycle::Held { reason },
        }
    }
}

/// The period at `cursor`, or why it cannot bill whatever the date (closed or held).
fn open_period(
    table: &'static [RuleSet],
    line: &BillingLine,
    cursor: Cursor,
) -> Result<OpenPeriod, Stop> {
    if cursor.billing_month < 0 {
        return Err(Stop::Held(HoldReason::InvalidCursor));
    }
    // The cap rules depend on when the rental began, so a line delivered before the first
    // version never bills under it, even for periods after 2006-01-01.
    if rule_set_in(table, line.delivery_date).is_none() {
        return Err(Stop::Closed(CloseReason::UnsupportedLegacyRules));
    }
    let index = cursor.billing_month;
    let start = period_start(line.billing_frequency, line.delivery_date, index)
        .ok_or(Stop::Closed(CloseReason::DateOutOfRange))?;
    if cursor.dos_from != start {
        return Err(Stop::Held(HoldReason::CursorMismatch { expected: start }));
    }
    let rules =
        rule_set_in(table, start).ok_or(Stop::Closed(CloseReason::UnsupportedLegacyRules))?;
    let limit = months_billed(line.sale_rent_type, line.billing_frequency, rules);
    if let Some((_, reason)) = limit.filter(|(last, _)| index >= *last) {
        return Err(Stop::Closed(reason));
    }
    if end_of_billing(line).is_some_and(|end| start > end) {
        return Err(Stop::Closed(CloseReason::EndDatePassed));
    }
    let next_start = index
        .checked_add(1)
        .and_then(|i| period_start(line.billing_frequency, line.delivery_date, i))
        .ok_or(Stop::Closed(CloseReason::DateOutOfRange))?;
    let last_day = next_start
        .pred_opt()
        .ok_or(Stop::Closed(CloseReason::DateOutOfRange))?;
    Ok(OpenPeriod {
        rules,
        month: index + 1,
        last_month: limit.map(|(m, _)| m),
        start,
        last_day,
        next_start,
    })
}

fn mul(a: Decimal, b: Decimal) -> Decimal {
    a.checked_mul(b).unwrap_or(Decimal::MAX)
}

fn non_negative(p: Option<Decimal>) -> Decimal {
    p.unwrap_or_default().max(Decimal::ZERO)
}

/// Per-unit (billable, allowable) prices for `month`: the rent, except a rent-to-purchase line's
/// last month, which bills the sale price less the rent already billed (not below zero).
fn unit_prices(line: &BillingLine, open: &OpenPeriod) -> (Decimal, Decimal) {
    let rent = (
        non_negative(line.billable_price),
        non_negative(line.allowable_price),
    );
    if line.sale_rent_type != SaleRentType::RentToPurchase || open.last_month != Some(open.month) {
        return rent;
    }
    let paid_months = Decimal::from(open.month - 1);
    let rest = |sale: Option<Decimal>, rent: Decimal| {
        non_negative(sale)
            .checked_sub(mul(paid_months, rent))
            .unwrap_or_default()
            .max(Decimal::ZERO)
    };
    (
        rest(line.sale_billable_price, rent.0),
        rest(line.sale_allowable_price, rent.1),
    )
}

fn cycle_at(
    table: &'static [RuleSet],
    line: &BillingLine,
    cursor: Cursor,
    as_of: NaiveDate,
    tax_rate: Decimal,
) -> Cycle {
    let open = match open_period(table, line, cursor) {
        Ok(open) => open,
        Err(stop) => return stop.into(),
    };
    let dos_to = if single_day(line) {
        open.start
    } else {
        open.last_day
    };
    let invoice_date = match line.bill_item_on {
        BillItemOn::DayOfDelivery => open.start,
        BillItemOn::LastDayOfMonth => last_day_of_month(open.start),
        BillItemOn::LastDayOfPeriod => dos_to,
        BillItemOn::DayOfPickup => match line.pickup_date {
            Some(p) => p,
            None => {
                return Cycle::Held {
                    reason: HoldReason::AwaitingPickup,
                };
            }
        },
    };
    if invoice_date > as_of {
        return Cycle::NotDue { invoice_date };
    }
    let days = (open.last_day - open.start).num_days() + 1;
    let quantity = mul(
        Decimal::from(line.quantity.max(0)),
        multiplier(line.ordered_frequency, line.billing_frequency, days),
    );
    let (unit_billable, unit_allowable) = unit_prices(line, &open);
    let amount = |unit: Decimal| {
        if line.flat_rate {
            cents(unit)
        } else {
            cents(mul(unit, quantity))
        }
    };
    let allowable = amount(unit_allowable);
    let tax = if line.taxable {
        cents(mul(allowable, tax_rate.max(Decimal::ZERO)))
    } else {
        cents(Decimal::ZERO)
    };
    let next = Cursor {
        billing_month: open.month,
        dos_from: open.next_start,
    };
    let closes = matches!(open_period(table, line, next), Err(Stop::Closed(_)));
    Cycle::Bill {
        charge: Charge {
            billing_month: open.month,
            dos_from: open.start,
            dos_to,
            invoice_date,
            quantity,
            modifiers: invoice_modifiers(line, open.month, open.rules),
            billable: amount(unit_billable),
            allowable,
            tax,
            rule_version: open.rules.version,
        },
        next,
        closes,
    }
}

fn last_day_of_month(d: NaiveDate) -> NaiveDate {
    d.with_day(1)
        .and_then(|first| first.checked_add_months(Months::new(1)))
        .and_then(|next| next.pred_opt())
        .unwrap_or(d)
}

/// The line's next step at `as_of`: the charge for its cursor's period if that is due, else why
/// not. `tax_rate` is a fraction (0.0825 for 8.25 %), applied when the line is taxable.
pub fn next_cycle(line: &BillingLine, as_of: NaiveDate, tax_rate: Decimal) -> Cycle {
    next_cycle_with(RULE_SETS, line, as_of, tax_rate)
}

/// [`next_cycle`] under another table of rule versions (tests of versioning; a future rule set
/// before it enters [`RULE_SETS`]).
pub fn next_cycle_with(
    table: &'static [RuleSet],
    line: &BillingLine,
    as_of: NaiveDate,
    tax_rate: Decimal,
) -> Cycle {
    cycle_at(table, line, line.cursor(), as_of, tax_rate)
}

/// Every charge the line produces from its cursor up to `as_of` (repeatedly applying next_cycle),
/// in order; the billing run uses it to catch up missed months. Returns the charges, the cursor
/// after them, and whether the line is closed (after its last charge, or already).
pub fn charges_until(
    line: &BillingLine,
    as_of: NaiveDate,
    tax_rate: Decimal,
) -> (Vec<Charge>, Cursor, bool) {
    charges_until_with(RULE_SETS, line, as_of, tax_rate)
}

/// [`charges_until`] under another table of rule versions.
pub fn charges_until_with(
    table: &'static [RuleSet],
    line: &BillingLine,
    as_of: NaiveDate,
    tax_rate: Decimal,
) -> (Vec<Charge>, Cursor, bool) {
    let mut charges = Vec::new();
    let mut cursor = line.cursor();
    loop {
        match cycle_at(table, line, cursor, as_of, tax_rate) {
            Cycle::Bill {
                charge,
                next,
                closes,
            } => {
                charges.push(charge);
                cursor = next;
                if closes {
                    return (charges, cursor, true);
                }
            }
            Cycle::NotDue { .. } | Cycle::Held { .. } => return (charges, cursor, false),
            Cycle::Closed { .. } => return (charges, cursor, true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use BillItemOn as On;
    use BillingFrequency as F;
    use SaleRentType as T;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn money(s: &str) -> Decimal {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    /// A line delivered on `delivery` with rent 150.00 billable / 120.00 allowable and a sale
    /// price of 1500.00 / 1200.00, quantity 1, cursor at the start.
    fn line(t: SaleRentType, f: BillingFrequency, on: BillItemOn, delivery: &str) -> BillingLine {
        BillingLine {
            sale_rent_type: t,
            billing_frequency: f,
            bill_item_on: on,
            quantity: 1,
            ordered_frequency: None,
            modifiers: Vec::new(),
            billable_price: Some(money("150.00")),
            allowable_price: Some(money("120.00")),
            sale_billable_price: Some(money("1500.00")),
            sale_allowable_price: Some(money("1200.00")),
            taxable: false,
            flat_rate: false,
            delivery_date: day(delivery),
            pickup_date: None,
            end_date: None,
            billing_month: 0,
            dos_from: day(delivery),
        }
    }

    fn far() -> NaiveDate {
        day("2099-12-31")
    }

    /// Up to `n` charges, billing whatever the date.
    fn take(l: &BillingLine, n: usize) -> Vec<Charge> {
        let mut out = Vec::new();
        let mut l = l.clone();
        while out.len() < n {
            match next_cycle(&l, far(), Decimal::ZERO) {
                Cycle::Bill { charge, next, .. } => {
                    out.push(charge);
                    l = l.at(next);
                }
                other => panic!("stopped after {} charges: {other:?}", out.len()),
            }
        }
        out
    }

    type Row = (i32, String, String, String, String, String, String, String);
    type Expected<'a> = (
        i32,
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        &'a str,
    );
    type PeriodCase<'a> = (BillingFrequency, &'a str, [(&'a str, &'a str); 4]);

    /// (month, dos_from, dos_to, invoice_date, quantity, modifiers, billable, allowable).
    fn row(c: &Charge) -> Row {
        (
            c.billing_month,
            c.dos_from.to_string(),
            c.dos_to.to_string(),
            c.invoice_date.to_string(),
            c.quantity.to_string(),
            c.modifiers.join(" "),
            c.billable.to_string(),
            c.allowable.to_string(),
        )
    }

    fn expect(rows: &[Expected]) -> Vec<Row> {
        rows.iter()
            .map(|r| {
                (
                    r.0,
                    r.1.into(),
                    r.2.into(),
                    r.3.into(),
                    r.4.into(),
                    r.5.into(),
                    r.6.into(),
                    r.7.into(),
                )
            })
            .collect()
    }

    fn cursor(month: i32, dos_from: &str) -> Cursor {
        Cursor {
            billing_month: month,
            dos_from: day(dos_from),
        }
    }

    // ---- whole life of every sale/rent type ------------------------------------------------

    #[rustfmt::skip] // tables read best one case a line
    #[test]
    fn capped_rentals_bill_13_months_with_kh_ki_kj_and_kx_from_12_then_close() {
        // Delivered on Jan 31 of a leap year: the periods clamp (Feb 29) but keep the 31st.
        let want = expect(&[
            (1, "2024-01-31", "2024-02-28", "2024-01-31", "1", "RR KH GA BP", "150.00", "120.00"),
            (2, "2024-02-29", "2024-03-30", "2024-02-29", "1", "RR KI GA BP", "150.00", "120.00"),
            (3, "2024-03-31", "2024-04-29", "2024-03-31", "1", "RR KI GA BP", "150.00", "120.00"),
            (4, "2024-04-30", "2024-05-30", "2024-04-30", "1", "RR KJ GA BP", "150.00", "120.00"),
            (5, "2024-05-31", "2024-06-29", "2024-05-31", "1", "RR KJ GA BP", "150.00", "120.00"),
            (6, "2024-06-30", "2024-07-30", "2024-06-30", "1", "RR KJ GA BP", "150.00", "120.00"),
            (7, "2024-07-31", "2024-08-30", "2024-07-31", "1", "RR KJ GA BP", "150.00", "120.00"),
            (8, "2024-08-31", "2024-09-29", "2024-08-31", "1", "RR KJ GA BP", "150.00", "120.00"),
            (9, "2024-09-30", "2024-10-30", "2024-09-30", "1", "RR KJ GA BP", "150.00", "120.00"),
            (10, "2024-10-31", "2024-11-29", "2024-10-31", "1", "RR KJ GA BP", "150.00", "120.00"),
            (11, "2024-11-30", "2024-12-30", "2024-11-30", "1", "RR KJ GA BP", "150.00", "120.00"),
            (12, "2024-12-31", "2025-01-30", "2024-12-31", "1", "RR KJ KX GA", "150.00", "120.00"),
            (13, "2025-01-31", "2025-02-27", "2025-01-31", "1", "RR KJ KX GA", "150.00", "120.00"),
        ]);
        for t in [T::CappedRental, T::ParentalCappedRental] {
            let mut l = line(t, F::Monthly, On::DayOfDelivery, "2024-01-31");
            // The list's own RR is not repeated and its KH is replaced by the month's phase.
            l.modifiers = vec!["rr".into(), "KH".into(), "GA".into(), "BP".into()];
            let (charges, cur, closed) = charges_until(&l, far(), Decimal::ZERO);
            assert_eq!(charges.iter().map(row).collect::<Vec<_>>(), want, "{t}");
            assert_eq!((cur, closed), (cursor(13, "2025-02-28"), true), "{t}");
            let Cycle::Bill { closes, next, .. } = next_cycle(&l.at(cursor(12, "2025-01-31")), far(), Decimal::ZERO) else {
                panic!("month 13 bills");
            };
            assert_eq!((closes, next), (true, cursor(13, "2025-02-28")));
            let Cycle::Bill { closes, .. } = next_cycle(&l.at(cursor(11, "2024-12-31")), far(), Decimal::ZERO) else {
                panic!("month 12 bills");
            };
            assert!(!closes, "month 12 does not close");
            assert_eq!(
                next_cycle(&l.at(cur), far(), Decimal::ZERO),
                Cycle::Closed { reason: CloseReason::LastMonthBilled }
            );
        }
    }

    #[rustfmt::skip] // tables read best one case a line
    #[test]
    fn rent_to_purchase_bills_nine_rents_then_the_rest_of_the_sale_price() {
        let mut l = line(T::RentToPurchase, F::Monthly, On::LastDayOfPeriod, "2023-03-15");
        l.modifiers = vec!["RR".into()];
        let rent = |m: i32, from: &'static str, to: &'static str| (m, from, to, to, "1", "RR", "150.00", "120.00");
        // Month 10: 1500.00 − 9 × 150.00 = 150.00 and 1200.00 − 9 × 120.00 = 120.00.
        let want = expect(&[
            rent(1, "2023-03-15", "2023-04-14"),
            rent(2, "2023-04-15", "2023-05-14"),
            rent(3, "2023-05-15", "2023-06-14"),
            rent(4, "2023-06-15", "2023-07-14"),
            rent(5, "2023-07-15", "2023-08-14"),
            rent(6, "2023-08-15", "2023-09-14"),
            rent(7, "2023-09-15", "2023-10-14"),
            rent(8, "2023-10-15", "2023-11-14"),
            rent(9, "2023-11-15", "2023-12-14"),
            rent(10, "2023-12-15", "2024-01-14"),
        ]);
        let (charges, cur, closed) = charges_until(&l, far(), Decimal::ZERO);
        assert_eq!(charges.iter().map(row).collect::<Vec<_>>(), want);
        assert_eq!((cur, closed), (cursor(10, "2024-01-15"), true));
        assert_eq!(
            next_cycle(&l.at(cur), far(), Decimal::ZERO),
            Cycle::Closed { reason: CloseReason::LastMonthBilled }
        );

        // (sale billable, sale allowable, quantity) → month 10's (billable, allowable, qty).
        let cases = [
            ("2000.00", "1500.00", 1, "650.00", "420.00"),
            ("2000.00", "1500.00", 2, "1300.00", "840.00"),
            // Less than the rent already billed: nothing more, never a credit.
            ("1000.00", "800.00", 1, "0.00", "0.00"),
            ("1350.00", "1080.00", 1, "0.00", "0.00"),
        ];
        for (sb, sa, q, b, a) in cases {
            let mut l = l.clone();
            l.sale_billable_price = Some(money(sb));
            l.sale_allowable_price = Some(money(sa));
            l.quantity = q;
            let last = take(&l, 10).pop().map(|c| (c.billing_month, c.billable.to_string(), c.allowable.to_string()));
            assert_eq!(last, Some((10, b.to_string(), a.to_string())), "{sb}/{sa} × {q}");
            let ninth = take(&l, 9).pop().map(|c| c.billable.to_string());
            assert_eq!(ninth, Some(format!("{}.00", 150 * q)), "month 9 is rent");
        }
    }

    #[test]
    fn medicare_oxygen_bills_60_months_then_closes() {
        let mut l = line(
            T::MedicareOxygenRental,
            F::Monthly,
            On::DayOfDelivery,
            "2010-01-15",
        );
        l.modifiers = vec!["QE".into()];
        let (charges, cur, closed) = charges_until(&l, far(), Decimal::ZERO);
        assert_eq!(charges.len(), 60);
        for (k, c) in charges.iter().enumerate() {
            let k = k as i32;
            // Computed independently: month k+1 runs from the 15th to the 14th of the next month.
            let (y, m) = (2010 + k / 12, 1 + (k % 12) as u32);
            let (ny, nm) = (2010 + (k + 1) / 12, 1 + ((k + 1) % 12) as u32);
            let from = NaiveDate::from_ymd_opt(y, m, 15);
            let to = NaiveDate::from_ymd_opt(ny, nm, 14);
            assert_eq!(
                (
                    c.billing_month,
                    Some(c.dos_from),
                    Some(c.dos_to),
                    Some(c.invoice_date)
                ),
                (k + 1, from, to, from)
            );
            assert_eq!(
                (
                    c.quantity.to_string(),
                    c.modifiers.join(" "),
                    c.billable.to_string(),
                    c.allowable.to_string(),
                    c.rule_version
                ),
                (
                    "1".to_string(),
                    "QE".to_string(),
                    "150.00".to_string(),
                    "120.00".to_string(),
                    "dmepos-2006"
                )
            );
        }
        assert_eq!((cur, closed), (cursor(60, "2015-01-15"), true));
    }

    /// Regression for the legacy bug: `OrderMustBeClosed` compared the type with
    /// 'Medicare Oxygent Rental' (sic), so oxygen lines were never auto-closed and went on billing
    /// after month 60. We close after month 60.
    #[test]
    fn oxygent_typo_regression_oxygen_closes_after_month_60() {
        let l = line(
            T::MedicareOxygenRental,
            F::Monthly,
            On::DayOfDelivery,
            "2010-01-15",
        );
        let Cycle::Bill {
            charge,
            closes,
            next,
        } = next_cycle(&l.at(cursor(59, "2014-12-15")), far(), Decimal::ZERO)
        else {
            panic!("month 60 bills");
        };
        assert_eq!((charge.billing_month, closes), (60, true));
        assert_eq!(
            next_cycle(&l.at(next), far(), Decimal::ZERO),
            Cycle::Closed {
                reason: CloseReason::LastMonthBilled
            }
        );
        let Cycle::Bill { closes, .. } =
            next_cycle(&l.at(cursor(58, "2014-11-15")), far(), Decimal::ZERO)
        else {
            panic!("month 59 bills");
        };
        assert!(!closes);
    }

    #[rustfmt::skip] // tables read best one case a line
    #[test]
    fn monthly_rentals_bill_every_period_until_the_end_date_only() {
        let mut l = line(T::MonthlyRental, F::CalendarMonthly, On::DayOfDelivery, "2020-05-20");
        l.modifiers = vec!["RR".into()];
        let (charges, _, closed) = charges_until(&l, day("2030-05-20"), Decimal::ZERO);
        assert_eq!((charges.len(), closed), (121, false), "no end date: never closes");

        l.end_date = Some(day("2021-02-10"));
        let m = |n: i32, from: &'static str, to: &'static str| (n, from, to, from, "1", "RR", "150.00", "120.00");
        let want = expect(&[
            m(1, "2020-05-20", "2020-05-31"),
            m(2, "2020-06-01", "2020-06-30"),
            m(3, "2020-07-01", "2020-07-31"),
            m(4, "2020-08-01", "2020-08-31"),
            m(5, "2020-09-01", "2020-09-30"),
            m(6, "2020-10-01", "2020-10-31"),
            m(7, "2020-11-01", "2020-11-30"),
            m(8, "2020-12-01", "2020-12-31"),
            m(9, "2021-01-01", "2021-01-31"),
            m(10, "2021-02-01", "2021-02-28"),
        ]);
        let (charges, cur, closed) = charges_until(&l, far(), Decimal::ZERO);
        assert_eq!(charges.iter().map(row).collect::<Vec<_>>(), want);
        assert_eq!((cur, closed), (cursor(10, "2021-03-01"), true));
        assert_eq!(
            next_cycle(&l.at(cur), far(), Decimal::ZERO),
            Cycle::Closed { reason: CloseReason::EndDatePassed }
        );
    }

    #[rustfmt::skip] // tables read best one case a line
    #[test]
    fn one_time_types_bill_month_1_only() {
        // (type, dos_to of the single charge): sales are a single day, a rental its period.
        let cases = [
            (T::OneTimeSale, "2024-06-10"),
            (T::OneTimeRental, "2024-07-09"),
            (T::ReoccurringSale, "2024-06-10"),
        ];
        for (t, dos_to) in cases {
            let mut l = line(t, F::Monthly, On::LastDayOfPeriod, "2024-06-10");
            l.quantity = 3;
            let (charges, cur, closed) = charges_until(&l, far(), Decimal::ZERO);
            assert_eq!(
                charges.iter().map(row).collect::<Vec<_>>(),
                expect(&[(1, "2024-06-10", dos_to, dos_to, "3", "", "450.00", "360.00")]),
                "{t}"
            );
            assert_eq!((cur, closed), (cursor(1, "2024-07-10"), true), "{t}");
            assert_eq!(
                next_cycle(&l.at(cur), far(), Decimal::ZERO),
                Cycle::Closed { reason: CloseReason::OneTime },
                "{t}"
            );
        }
        // The one-time frequency makes any type a single charge of a single day.
        for t in T::ALL.iter().copied() {
            let l = line(t, F::OneTime, On::DayOfDelivery, "2024-06-10");
            let (charges, cur, closed) = charges_until(&l, far(), Decimal::ZERO);
            let dates: Vec<_> = charges.iter().map(|c| (c.billing_month, c.dos_from, c.dos_to)).collect();
            assert_eq!(dates, vec![(1, day("2024-06-10"), day("2024-06-10"))], "{t}");
            assert_eq!((cur, closed), (cursor(1, "2024-06-11"), true), "{t}");
        }
    }

    #[rustfmt::skip] // tables read best one case a line
    #[test]
    fn reoccurring_sales_expose_the_next_orders_date() {
        // (frequency, delivery, end date, reorder date)
        let cases = [
            (F::Monthly, "2024-01-31", None, Some("2024-02-29")),
            (F::CalendarMonthly, "2024-01-15", None, Some("2024-02-01")),
            (F::Quarterly, "2024-01-15", None, Some("2024-04-15")),
            (F::Weekly, "2024-01-15", None, Some("2024-01-22")),
            (F::Monthly, "2024-01-15", Some("2024-02-15"), Some("2024-02-15")),
            (F::Monthly, "2024-01-15", Some("2024-02-14"), None),
            (F::OneTime, "2024-01-15", None, None),
        ];
        for (f, delivery, end, want) in cases {
            let mut l = line(T::ReoccurringSale, f, On::DayOfDelivery, delivery);
            l.end_date = end.map(day);
            assert_eq!(reorder_date(&l), want.map(day), "{f} {delivery} {end:?}");
        }
        for t in T::ALL.iter().copied().filter(|t| *t != T::ReoccurringSale) {
            assert_eq!(reorder_date(&line(t, F::Monthly, On::DayOfDelivery, "2024-01-15")), None, "{t}");
        }
    }

    // ---- periods, frequencies and quantities ----------------------------------------------

    #[rustfmt::skip] // tables read best one case a line
    #[test]
    fn periods_by_frequency_never_drift() {
        // (frequency, delivery, the first four periods as (dos_from, dos_to))
        let cases: &[PeriodCase] = &[
            (F::Daily, "2024-02-28", [("2024-02-28", "2024-02-28"), ("2024-02-29", "2024-02-29"), ("2024-03-01", "2024-03-01"), ("2024-03-02", "2024-03-02")]),
            (F::Weekly, "2024-12-30", [("2024-12-30", "2025-01-05"), ("2025-01-06", "2025-01-12"), ("2025-01-13", "2025-01-19"), ("2025-01-20", "2025-01-26")]),
            // Jan 31 in a common year: Feb 28, then back to the 31st.
            (F::Monthly, "2023-01-31", [("2023-01-31", "2023-02-27"), ("2023-02-28", "2023-03-30"), ("2023-03-31", "2023-04-29"), ("2023-04-30", "2023-05-30")]),
            (F::Monthly, "2024-01-30", [("2024-01-30", "2024-02-28"), ("2024-02-29", "2024-03-29"), ("2024-03-30", "2024-04-29"), ("2024-04-30", "2024-05-29")]),
            // Mid-month: the first period runs to the month's end, then whole months.
            (F::CalendarMonthly, "2024-01-15", [("2024-01-15", "2024-01-31"), ("2024-02-01", "2024-02-29"), ("2024-03-01", "2024-03-31"), ("2024-04-01", "2024-04-30")]),
            (F::CalendarMonthly, "2023-02-01", [("2023-02-01", "2023-02-28"), ("2023-03-01", "2023-03-31"), ("2023-04-01", "2023-04-30"), ("2023-05-01", "2023-05-31")]),
            (F::CalendarMonthly, "2023-12-31", [("2023-12-31", "2023-12-31"), ("2024-01-01", "2024-01-31"), ("2024-02-01", "2024-02-29"), ("2024-03-01", "2024-03-31")]),
            (F::Quarterly, "2023-11-30", [("2023-11-30", "2024-02-28"), ("2024-02-29", "2024-05-29"), ("2024-05-30", "2024-08-29"), ("2024-08-30", "2024-11-29")]),
            (F::SemiAnnually, "2024-08-31", [("2024-08-31", "2025-02-27"), ("2025-02-28", "2025-08-30"), ("2025-08-31", "2026-02-27"), ("2026-02-28", "2026-08-30")]),
            // Leap day: Feb 28 in common years, Feb 29 again in 2028.
            (F::Annually, "2024-02-29", [("2024-02-29", "2025-02-27"), ("2025-02-28", "2026-02-27"), ("2026-02-28", "2027-02-27"), ("2027-02-28", "2028-02-28")]),
        ];
        for (f, delivery, want) in cases {
            let l = line(T::MonthlyRental, *f, On::DayOfDelivery, delivery);
            let got: Vec<(String, String)> = take(&l, 4).iter().map(|c| (c.dos_from.to_string(), c.dos_to.to_string())).collect();
            let want: Vec<(String, String)> = want.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
            assert_eq!(got, want, "{f} from {delivery}");
        }
        assert_eq!(period_start(F::Monthly, day("2024-01-31"), 48), Some(day("2028-01-31")));
        assert_eq!(period_start(F::Monthly, day("2024-01-31"), 49), Some(day("2028-02-29")));
        assert_eq!(period_start(F::Monthly, day("2024-01-31"), -1), None);
        assert_eq!(period_start(F::Daily, NaiveDate::MAX, 1), None);
    }

    #[rustfmt::skip] // tables read best one case a line
    #[test]
    fn multiplier_table() {
        let billed = [F::OneTime, F::Daily, F::Weekly, F::Monthly, F::CalendarMonthly, F::Quarterly, F::SemiAnnually, F::Annually];
        // Days in a period of each billed frequency, for the daily row.
        let days = [1, 1, 7, 31, 31, 92, 184, 365];
        let table: &[(Option<BillingFrequency>, [i64; 8])] = &[
            (None, [1, 1, 1, 1, 1, 1, 1, 1]),
            (Some(F::OneTime), [1, 1, 1, 1, 1, 1, 1, 1]),
            (Some(F::Daily), [1, 1, 7, 31, 31, 92, 184, 365]),
            (Some(F::Weekly), [1, 1, 1, 4, 4, 13, 26, 52]),
            (Some(F::Monthly), [1, 1, 1, 1, 1, 3, 6, 12]),
            (Some(F::CalendarMonthly), [1, 1, 1, 1, 1, 3, 6, 12]),
            (Some(F::Quarterly), [1, 1, 1, 1, 1, 1, 2, 4]),
            (Some(F::SemiAnnually), [1, 1, 1, 1, 1, 1, 1, 2]),
            (Some(F::Annually), [1, 1, 1, 1, 1, 1, 1, 1]),
        ];
        assert_eq!(table.len(), F::ALL.len() + 1);
        for (ordered, want) in table {
            for ((b, d), w) in billed.iter().zip(days).zip(want) {
                assert_eq!(multiplier(*ordered, *b, d), Decimal::from(*w), "{ordered:?} → {b}");
            }
        }
    }

    #[rustfmt::skip] // tables read best one case a line
    #[test]
    fn quantities_follow_the_ordered_frequency() {
        // (ordered per, billed, delivery, quantity, the first two charges' billed units)
        let cases = [
            // 2 a day, billed monthly: days in each period (Feb 10–Mar 9 is 29 days in 2024).
            (Some(F::Daily), F::Monthly, "2024-01-10", 2, ["62", "58"]),
            (Some(F::Daily), F::Monthly, "2023-01-10", 2, ["62", "56"]),
            // Calendar monthly from the 20th: 12 days, then February's 29.
            (Some(F::Daily), F::CalendarMonthly, "2024-01-20", 2, ["24", "58"]),
            (Some(F::Daily), F::Weekly, "2024-01-20", 3, ["21", "21"]),
            (Some(F::Weekly), F::Monthly, "2024-01-20", 2, ["8", "8"]),
            (Some(F::Monthly), F::Quarterly, "2024-01-20", 5, ["15", "15"]),
            (None, F::Monthly, "2024-01-20", 5, ["5", "5"]),
            (Some(F::Monthly), F::Monthly, "2024-01-20", 5, ["5", "5"]),
        ];
        for (ordered, billed, delivery, q, want) in cases {
            let mut l = line(T::MonthlyRental, billed, On::DayOfDelivery, delivery);
            l.ordered_frequency = ordered;
            l.quantity = q;
            let got: Vec<String> = take(&l, 2).iter().map(|c| c.quantity.to_string()).collect();
            assert_eq!(got, want, "{ordered:?} → {billed} from {delivery}");
        }
        // Amounts follow the billed units: 24 units × 1.25 / 1.00.
        let mut l = line(T::MonthlyRental, F::CalendarMonthly, On::DayOfDelivery, "2024-01-20");
        (l.ordered_frequency, l.quantity) = (Some(F::Daily), 2);
        (l.billable_price, l.allowable_price) = (Some(money("1.25")), Some(money("1.00")));
        let first = take(&l, 1).pop().map(|c| (c.billable.to_string(), c.allowable.to_string()));
        assert_eq!(first, Some(("30.00".into(), "24.00".into())));
    }

    // ---- invoice dating, end dates, taxes ------------------------------------------------

    #[rustfmt::skip] // tables read best one case a line
    #[test]
    fn invoice_dates_by_bill_item_on() {
        // Monthly from Jan 15 2024: periods Jan 15–Feb 14 and Feb 15–Mar 14.
        let cases = [
            (On::DayOfDelivery, ["2024-01-15", "2024-02-15"]),
            (On::LastDayOfMonth, ["2024-01-31", "2024-02-29"]),
            (On::LastDayOfPeriod, ["2024-02-14", "2024-03-14"]),
        ];
        for (on, want) in cases {
            let l = line(T::MonthlyRental, F::Monthly, on, "2024-01-15");
            let got: Vec<String> = take(&l, 2).iter().map(|c| c.invoice_date.to_string()).collect();
            assert_eq!(got, want, "{on}");
            // Due on that date, not the day before.
            let first = day(want[0]);
            assert_eq!(next_cycle(&l, first.pred_opt().unwrap_or(first), Decimal::ZERO), Cycle::NotDue { invoice_date: first }, "{on}");
            assert!(matches!(next_cycle(&l, first, Decimal::ZERO), Cycle::Bill { .. }), "{on}");
            let (charges, cur, closed) = charges_until(&l, day(want[1]), Decimal::ZERO);
            assert_eq!((charges.len(), cur.billing_month, closed), (2, 2, false), "{on}");
        }
    }

    #[rustfmt::skip] // tables read best one case a line
    #[test]
    fn day_of_pickup_waits_for_the_pickup_then_bills_everything_to_the_end_date() {
        let mut l = line(T::MonthlyRental, F::Monthly, On::DayOfPickup, "2024-01-15");
        assert_eq!(next_cycle(&l, far(), Decimal::ZERO), Cycle::Held { reason: HoldReason::AwaitingPickup });
        assert_eq!(charges_until(&l, far(), Decimal::ZERO), (vec![], cursor(0, "2024-01-15"), false));

        l.pickup_date = Some(day("2024-03-20"));
        l.end_date = Some(day("2024-03-20"));
        assert_eq!(next_cycle(&l, day("2024-03-19"), Decimal::ZERO), Cycle::NotDue { invoice_date: day("2024-03-20") });
        let m = |n: i32, from: &'static str, to: &'static str| (n, from, to, "2024-03-20", "1", "", "150.00", "120.00");
        let (charges, cur, closed) = charges_until(&l, day("2024-03-20"), Decimal::ZERO);
        assert_eq!(
            charges.iter().map(row).collect::<Vec<_>>(),
            expect(&[m(1, "2024-01-15", "2024-02-14"), m(2, "2024-02-15", "2024-03-14"), m(3, "2024-03-15", "2024-04-14")])
        );
        assert_eq!((cur, closed), (cursor(3, "2024-04-15"), true));
        assert_eq!(next_cycle(&l.at(cur), far(), Decimal::ZERO), Cycle::Closed { reason: CloseReason::EndDatePassed });
    }

    #[rustfmt::skip] // tables read best one case a line
    #[test]
    fn end_dates() {
        // Monthly from Jan 15 2024: (end date, pickup date, months billed, last month closes).
        let cases = [
            // Mid-period end: the period that contains it bills whole, then the line closes.
            (Some("2024-03-01"), None, 2),
            // Ends the day before the next period: that period is never billed.
            (Some("2024-02-14"), None, 1),
            // Ends on a period's first day: that period bills.
            (Some("2024-02-15"), None, 2),
            // Picked up with no end date: the pickup date ends it.
            (None, Some("2024-02-20"), 2),
            // The end date wins over the pickup date.
            (Some("2024-04-01"), Some("2024-02-20"), 3),
        ];
        for (end, pickup, months) in cases {
            for t in [T::MonthlyRental, T::CappedRental, T::MedicareOxygenRental, T::RentToPurchase] {
                let mut l = line(t, F::Monthly, On::DayOfDelivery, "2024-01-15");
                l.end_date = end.map(day);
                l.pickup_date = pickup.map(day);
                let (charges, cur, closed) = charges_until(&l, far(), Decimal::ZERO);
                assert_eq!((charges.len(), cur.billing_month, closed), (months, months as i32, true), "{t} {end:?} {pickup:?}");
                assert_eq!(charges.last().map(|c| c.dos_to.to_string()), take(&line(t, F::Monthly, On::DayOfDelivery, "2024-01-15"), months).last().map(|c| c.dos_to.to_string()), "no proration");
                let last = l.at(Cursor { billing_month: cur.billing_month - 1, dos_from: charges.last().map_or(l.dos_from, |c| c.dos_from) });
                assert!(matches!(next_cycle(&last, far(), Decimal::ZERO), Cycle::Bill { closes: true, .. }), "{t} {end:?}");
                assert_eq!(next_cycle(&l.at(cur), far(), Decimal::ZERO), Cycle::Closed { reason: CloseReason::EndDatePassed }, "{t} {end:?}");
            }
        }
        // An end date before delivery: nothing bills.
        let mut l = line(T::OneTimeSale, F::Monthly, On::DayOfDelivery, "2024-01-15");
        l.end_date = Some(day("2024-01-14"));
        assert_eq!(next_cycle(&l, far(), Decimal::ZERO), Cycle::Closed { reason: CloseReason::EndDatePassed });
        assert_eq!(charges_until(&l, far(), Decimal::ZERO), (vec![], cursor(0, "2024-01-15"), true));
        // The type's last month wins over the end date as the reason.
        let mut l = line(T::CappedRental, F::Monthly, On::DayOfDelivery, "2024-01-15");
        l.end_date = Some(day("2025-02-14"));
        assert_eq!(charges_until(&l, far(), Decimal::ZERO).0.len(), 13);
        assert_eq!(next_cycle(&l.at(cursor(13, "2025-02-15")), far(), Decimal::ZERO), Cycle::Closed { reason: CloseReason::LastMonthBilled });
    }

    #[rustfmt::skip] // tables read best one case a line
    #[test]
    fn amounts_and_taxes_round_half_up_to_the_cent() {
        // (unit billable, unit allowable, quantity, flat rate, taxable, rate) → (billable, allowable, tax)
        let cases = [
            ("150.00", "120.00", 1, false, false, "0.0825", ("150.00", "120.00", "0.00")),
            ("12.00", "10.05", 1, false, true, "0.0825", ("12.00", "10.05", "0.83")), // 0.829125
            ("1.00", "0.50", 1, false, true, "0.05", ("1.00", "0.50", "0.03")),      // 0.025: half up, not to even
            ("1.00", "0.10", 1, false, true, "0.125", ("1.00", "0.10", "0.01")),     // 0.0125
            ("1.00", "0.30", 1, false, true, "0.125", ("1.00", "0.30", "0.04")),     // 0.0375
            ("40.00", "33.33", 3, false, true, "0.07", ("120.00", "99.99", "7.00")), // 6.9993
            // Prices with more places round once, on the line amount.
            ("0.125", "0.135", 1, false, true, "0", ("0.13", "0.14", "0.00")),
            ("0.125", "0.135", 3, false, false, "0", ("0.38", "0.41", "0.00")), // 0.375, 0.405
            // Flat rate: the price is for the line, whatever the units.
            ("75.00", "60.00", 4, true, true, "0.10", ("75.00", "60.00", "6.00")),
            ("75.00", "60.00", 4, false, true, "0.10", ("300.00", "240.00", "24.00")),
            // A negative rate is no tax, never a credit.
            ("75.00", "60.00", 1, false, true, "-0.10", ("75.00", "60.00", "0.00")),
        ];
        for (b, a, q, flat, taxable, rate, want) in cases {
            let mut l = line(T::OneTimeSale, F::OneTime, On::DayOfDelivery, "2024-05-01");
            (l.billable_price, l.allowable_price) = (Some(money(b)), Some(money(a)));
            (l.quantity, l.flat_rate, l.taxable) = (q, flat, taxable);
            let (charges, _, _) = charges_until(&l, far(), money(rate));
            let got = charges.first().map(|c| (c.billable.to_string(), c.allowable.to_string(), c.tax.to_string(), c.quantity.to_string()));
            let want = (want.0.to_string(), want.1.to_string(), want.2.to_string(), q.to_string());
            assert_eq!(got, Some(want), "{b}/{a} × {q} flat={flat} tax={taxable}@{rate}");
        }
        // Missing prices count as zero.
        let mut l = line(T::MonthlyRental, F::Monthly, On::DayOfDelivery, "2024-05-01");
        (l.billable_price, l.allowable_price, l.taxable) = (None, None, true);
        let first = take(&l, 1).pop().map(|c| (c.billable.to_string(), c.allowable.to_string(), c.tax.to_string()));
        assert_eq!(first, Some(("0.00".into(), "0.00".into(), "0.00".into())));
    }

    #[test]
    fn the_next_invoice_date_follows_the_invoice_dating() {
        let mut l = line(
            T::MonthlyRental,
            F::Monthly,
            On::LastDayOfMonth,
            "2026-11-21",
        );
        assert_eq!(next_invoice_date(&l), Some(day("2026-11-30")));
        l.bill_item_on = On::DayOfDelivery;
        assert_eq!(next_invoice_date(&l), Some(day("2026-11-21")));
        l.bill_item_on = On::LastDayOfPeriod;
        assert_eq!(next_invoice_date(&l), Some(day("2026-12-20")));
        l.bill_item_on = On::DayOfPickup;
        assert_eq!(
            next_invoice_date(&l),
            None,
            "not picked up: nothing to date it by"
        );
        l.pickup_date = Some(day("2027-01-10"));
        assert_eq!(next_invoice_date(&l), Some(day("2027-01-10")));
        let sold = line(T::OneTimeSale, F::OneTime, On::DayOfDelivery, "2026-11-21");
        let (_, cursor, closed) = charges_until(&sold, far(), Decimal::ZERO);
        assert!(closed);
        assert_eq!(
            next_invoice_date(&sold.at(cursor)),
            None,
            "closed: no next invoice"
        );
    }

    // ---- versions, legacy, cursor --------------------------------------------------------

    /// A made-up later version (a 36-month oxygen cap from 2027-07-01), only for these tests: the
    /// production table holds real rules only.
    const VERSIONED: &[RuleSet] = &[
        RULE_SETS[0],
        RuleSet {
            version: "test-oxygen-36",
            effective_from: date(2027, 7, 1),
            oxygen_months: 36,
            ..RULE_SETS[0]
        },
    ];

    #[test]
    fn rule_sets_are_chosen_by_date_of_service() {
        let v = |d: &str| rule_set_in(VERSIONED, day(d)).map(|r| r.version);
        assert_eq!(v("2005-12-31"), None);
        assert_eq!(v("2006-01-01"), Some("dmepos-2006"));
        assert_eq!(v("2027-06-30"), Some("dmepos-2006"));
        assert_eq!(v("2027-07-01"), Some("test-oxygen-36"));
        assert_eq!(
            rule_set_for(day("2040-01-01")).map(|r| r.version),
            Some("dmepos-2006")
        );
        for table in [RULE_SETS, VERSIONED] {
            assert!(
                table
                    .windows(2)
                    .all(|w| w[0].effective_from < w[1].effective_from)
            );
        }
    }

    #[test]
    fn a_rule_change_applies_to_later_periods_and_never_rewrites_history() {
        let count =
            |charges: &[Charge], v: &str| charges.iter().filter(|c| c.rule_version == v).count();
        // Delivered 2025-01-01: months 1–30 start before 2027-07-01 (old rules), month 31 starts on
        // it; the new 36-month oxygen cap closes the line after month 36.
        let l = line(
            T::MedicareOxygenRental,
            F::Monthly,
            On::DayOfDelivery,
            "2025-01-01",
        );
        let (charges, cur, closed) = charges_until_with(VERSIONED, &l, far(), Decimal::ZERO);
        assert_eq!(
            (
                charges.len(),
                count(&charges, "dmepos-2006"),
                count(&charges, "test-oxygen-36")
            ),
            (36, 30, 6)
        );
        assert_eq!(
            charges.get(30).map(|c| (c.billing_month, c.dos_from)),
            Some((31, day("2027-07-01")))
        );
        assert_eq!((cur, closed), (cursor(36, "2028-01-01"), true));
        // What was billed before the change is exactly what the old rules billed.
        let (before, _, _) = charges_until_with(VERSIONED, &l, day("2027-06-30"), Decimal::ZERO);
        assert_eq!(before.as_slice(), charges.get(..30).unwrap_or_default());

        // Delivered 2023-06-01: month 49 (2027-06-01) is billed under the 60-month rule; month 50
        // starts under the 36-month one, so month 49 closes the line.
        let l = line(
            T::MedicareOxygenRental,
            F::Monthly,
            On::DayOfDelivery,
            "2023-06-01",
        );
        let (charges, cur, closed) = charges_until_with(VERSIONED, &l, far(), Decimal::ZERO);
        assert_eq!(
            (charges.len(), count(&charges, "dmepos-2006"), cur, closed),
            (49, 49, cursor(49, "2027-07-01"), true)
        );
        assert_eq!(
            next_cycle_with(VERSIONED, &l.at(cur), far(), Decimal::ZERO),
            Cycle::Closed {
                reason: CloseReason::LastMonthBilled
            }
        );

        // Finished before the change: 60 months, untouched.
        let l = line(
            T::MedicareOxygenRental,
            F::Monthly,
            On::DayOfDelivery,
            "2021-01-10",
        );
        let (charges, _, closed) = charges_until_with(VERSIONED, &l, far(), Decimal::ZERO);
        assert_eq!(
            (charges.len(), count(&charges, "dmepos-2006"), closed),
            (60, 60, true)
        );

        // Other types are unchanged by the new version.
        let l = line(T::CappedRental, F::Monthly, On::DayOfDelivery, "2027-01-01");
        let (charges, _, _) = charges_until_with(VERSIONED, &l, far(), Decimal::ZERO);
        assert_eq!((charges.len(), count(&charges, "test-oxygen-36")), (13, 7));
    }

    #[test]
    fn pre_2006_deliveries_are_refused() {
        for t in T::ALL.iter().copied() {
            let l = line(t, F::Monthly, On::DayOfDelivery, "2005-12-31");
            assert_eq!(
                next_cycle(&l, far(), Decimal::ZERO),
                Cycle::Closed {
                    reason: CloseReason::UnsupportedLegacyRules
                },
                "{t}"
            );
            // Even for a period after 2006-01-01: the rental began under the old rules.
            let later = l.at(cursor(1, "2006-01-31"));
            assert_eq!(
                next_cycle(&later, far(), Decimal::ZERO),
                Cycle::Closed {
                    reason: CloseReason::UnsupportedLegacyRules
                },
                "{t}"
            );
            assert_eq!(
                charges_until(&l, far(), Decimal::ZERO),
                (vec![], cursor(0, "2005-12-31"), true)
            );
        }
        let l = line(
            T::MonthlyRental,
            F::Monthly,
            On::DayOfDelivery,
            "2006-01-01",
        );
        assert!(matches!(
            next_cycle(&l, far(), Decimal::ZERO),
            Cycle::Bill { .. }
        ));
    }

    #[test]
    fn inconsistent_cursors_are_held_not_billed() {
        let l = line(
            T::MonthlyRental,
            F::Monthly,
            On::DayOfDelivery,
            "2024-01-31",
        );
        // Month 2 starts on Feb 29, not on a date carried forward from an older frequency.
        assert_eq!(
            next_cycle(&l.at(cursor(1, "2024-02-28")), far(), Decimal::ZERO),
            Cycle::Held {
                reason: HoldReason::CursorMismatch {
                    expected: day("2024-02-29")
                }
            }
        );
        assert_eq!(
            next_cycle(&l.at(cursor(-1, "2024-01-31")), far(), Decimal::ZERO),
            Cycle::Held {
                reason: HoldReason::InvalidCursor
            }
        );
        assert_eq!(
            charges_until(&l.at(cursor(1, "2024-02-28")), far(), Decimal::ZERO),
            (vec![], cursor(1, "2024-02-28"), false)
        );
    }

    #[test]
    fn outcomes_serialize_with_cent_strings_and_read_back() {
        let mut l = line(T::CappedRental, F::Monthly, On::DayOfDelivery, "2024-01-31");
        l.taxable = true;
        let bill = next_cycle(&l, far(), money("0.0825"));
        let json = serde_json::to_value(&bill).unwrap_or_default();
        assert_eq!(
            json,
            serde_json::json!({
                "outcome": "bill",
                "charge": {
                    "billing_month": 1, "dos_from": "2024-01-31", "dos_to": "2024-02-28",
                    "invoice_date": "2024-01-31", "quantity": "1", "modifiers": ["RR", "KH"],
                    "billable": "150.00", "allowable": "120.00", "tax": "9.90",
                    "rule_version": "dmepos-2006"
                },
                "next": { "billing_month": 1, "dos_from": "2024-02-29" },
                "closes": false
            })
        );
        assert_eq!(
            serde_json::from_value::<Cycle>(json.clone()).ok(),
            Some(bill)
        );
        let mut unknown = json;
        unknown["charge"]["rule_version"] = "dmepos-1999".into();
        assert!(serde_json::from_value::<Cycle>(unknown).is_err());
        for c in [
            Cycle::NotDue {
                invoice_date: day("2024-02-29"),
            },
            Cycle::Closed {
                reason: CloseReason::UnsupportedLegacyRules,
            },
            Cycle::Held {
                reason: HoldReason::CursorMismatch {
                    expected: day("2024-02-29"),
                },
            },
        ] {
            let back = serde_json::to_string(&c)
                .ok()
                .and_then(|s| serde_json::from_str::<Cycle>(&s).ok());
            assert_eq!(back, Some(c));
        }
        assert_eq!(
            serde_json::to_value(CloseReason::EndDatePassed).ok(),
            Some("end_date_passed".into())
        );
    }

    // ---- properties ----------------------------------------------------------------------

    use proptest::prelude::*;

    fn arb_line() -> impl Strategy<Value = BillingLine> {
        let money = (0i64..200_000).prop_map(|c| Decimal::new(c, 2));
        let kinds = (
            proptest::sample::select(T::ALL.to_vec()),
            proptest::sample::select(F::ALL.to_vec()),
            proptest::sample::select(On::ALL.to_vec()),
            proptest::option::of(proptest::sample::select(F::ALL.to_vec())),
            1i32..5,
            proptest::sample::subsequence(vec!["RR", "KH", "KX", "GA", "NU", "BP"], 0..=4),
        );
        let prices = (
            proptest::option::weighted(0.95, money.clone()),
            proptest::option::weighted(0.95, money.clone()),
            proptest::option::weighted(0.95, money.clone()),
            proptest::option::weighted(0.95, money),
            any::<bool>(),
            any::<bool>(),
        );
        // Deliveries 2006-01-01 .. ~2031.
        let dates = (
            0i64..9_200,
            proptest::option::of(-40i64..1_500),
            proptest::option::of(0i64..1_500),
        );
        (kinds, prices, dates).prop_map(
            |((t, f, on, of, q, mods), (b, a, sb, sa, taxable, flat), (d, end, pickup))| {
                let delivery = day("2006-01-01") + chrono::Duration::days(d);
                BillingLine {
                    sale_rent_type: t,
                    billing_frequency: f,
                    bill_item_on: on,
                    quantity: q,
                    ordered_frequency: of,
                    modifiers: mods.into_iter().map(String::from).collect(),
                    billable_price: b,
                    allowable_price: a,
                    sale_billable_price: sb,
                    sale_allowable_price: sa,
                    taxable,
                    flat_rate: flat,
                    delivery_date: delivery,
                    pickup_date: pickup.map(|p| delivery + chrono::Duration::days(p)),
                    end_date: end.map(|e| delivery + chrono::Duration::days(e)),
                    billing_month: 0,
                    dos_from: delivery,
                }
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Consecutive charges cover the days of service with no overlap and no gap, months count
        /// 1, 2, 3… once each, nothing is billed before its invoice date, amounts are never
        /// negative and always in cents, and at most four modifiers.
        #[test]
        fn charges_are_contiguous_counted_once_and_never_negative(
            l in arb_line(), horizon in 0i64..1_200, rate in 0i64..1_500,
        ) {
            let as_of = l.delivery_date + chrono::Duration::days(horizon);
            let (charges, cur, _) = charges_until(&l, as_of, Decimal::new(rate, 4));
            for (i, c) in charges.iter().enumerate() {
                prop_assert_eq!(c.billing_month, i as i32 + 1);
                prop_assert!(c.dos_from <= c.dos_to);
                prop_assert!(c.invoice_date <= as_of);
                prop_assert!(c.modifiers.len() <= 4);
                for v in [c.billable, c.allowable, c.tax] {
                    prop_assert!(v >= Decimal::ZERO && v.scale() == 2, "{v}");
                }
                prop_assert!(c.quantity >= Decimal::ZERO);
            }
            for w in charges.windows(2) {
                prop_assert_eq!(w[0].dos_to.succ_opt(), Some(w[1].dos_from), "{:?}", w);
            }
            prop_assert_eq!(cur.billing_month, charges.len() as i32);
            if let Some(last) = charges.last() {
                prop_assert!(cur.dos_from > last.dos_from);
            }
        }

        /// Catching up in two steps gives exactly what one call gives.
        #[test]
        fn catching_up_in_steps_equals_one_call(
            l in arb_line(), h1 in 0i64..900, h2 in 0i64..900, rate in 0i64..1_500,
        ) {
            let rate = Decimal::new(rate, 4);
            let a1 = l.delivery_date + chrono::Duration::days(h1.min(h2));
            let a2 = l.delivery_date + chrono::Duration::days(h1.max(h2));
            let (mut first, cur, closed1) = charges_until(&l, a1, rate);
            let (rest, cur2, closed2) = charges_until(&l.at(cur), a2, rate);
            if closed1 {
                prop_assert!(rest.is_empty());
                prop_assert_eq!(cur2, cur);
            }
            first.extend(rest);
            prop_assert_eq!((first, cur2, closed2), charges_until(&l, a2, rate));
        }

        /// `closes` says exactly whether the next cycle is Closed, and a closed line produces
        /// nothing more at any date.
        #[test]
        fn a_closed_line_produces_nothing_more(l in arb_line(), horizon in 0i64..1_200) {
            let as_of = l.delivery_date + chrono::Duration::days(horizon);
            let mut line = l.clone();
            while let Cycle::Bill { next, closes, charge } = next_cycle(&line, as_of, Decimal::ZERO) {
                prop_assert_eq!(next.billing_month, charge.billing_month);
                line = line.at(next);
                let after = next_cycle(&line, far(), Decimal::ZERO);
                prop_assert_eq!(closes, matches!(after, Cycle::Closed { .. }), "{:?}", after);
                if closes {
                    break;
                }
            }
            let (_, cur, closed) = charges_until(&l, as_of, Decimal::ZERO);
            if closed {
                let done = l.at(cur);
                let after = next_cycle(&done, far(), Decimal::ZERO);
                prop_assert!(matches!(after, Cycle::Closed { .. }), "{:?}", after);
                let (more, cur2, still) = charges_until(&done, far(), Decimal::ZERO);
                prop_assert_eq!((more.len(), cur2, still), (0, cur, true));
            }
        }
    }
}
