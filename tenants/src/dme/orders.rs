//! Orders and their lines (DOMAIN.md §3.1, §4): the state machines, and the missing-information
//! check ("MIR") that gates approval and billing.
//!
//! Order: `new` → `approved` → `closed`, and `new | approved` → `canceled`. Approval needs at
//! least one line and nothing missing.
//! Line: `new` → `approved` → `delivered` → `pickup` → `closed`, and any state before delivery →
//! `canceled` (a delivered line ends by pickup or by billing, never by cancellation: the patient
//! has the equipment).
//!
//! The check is a pure function over plain facts ([`OrderFacts`]) that the store gathers in the
//! order's transaction. It returns every problem at once, each with a stable code a client can
//! switch on and the scope it belongs to, so a worklist can say *why* a line will not bill.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

text_enum!(
    /// Where an order is in its life.
    OrderState {
        /// Being entered; lines may be added, changed and removed.
        New => "new",
        /// Checked and approved; stock is committed to its lines.
        Approved => "approved",
        /// Every line has ended.
        Closed => "closed",
        /// Abandoned before delivery.
        Canceled => "canceled",
    }
);

text_enum!(
    /// Where an order line is in its life.
    LineState {
        New => "new",
        Approved => "approved",
        /// With the patient: billing runs on it.
        Delivered => "delivered",
        /// Rental equipment picked up; bills up to its end date, then closes.
        Pickup => "pickup",
        Closed => "closed",
        Canceled => "canceled",
    }
);

/// Something done to an order or a line, for the transition tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Add, change or remove lines, or change the order's fields.
    Edit,
    Approve,
    Cancel,
    Deliver,
    Pickup,
}

impl Transition {
    /// The name used in error messages.
    pub fn name(self) -> &'static str {
        match self {
            Transition::Edit => "edit",
            Transition::Approve => "approve",
            Transition::Cancel => "cancel",
            Transition::Deliver => "deliver",
            Transition::Pickup => "pickup",
        }
    }
}

/// The transition is not allowed in the current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {} an order that is {state}", .transition.name())]
pub struct IllegalOrderTransition {
    /// The state the order was in.
    pub state: OrderState,
    /// What was refused.
    pub transition: Transition,
}

/// The state an order moves to, or why it cannot.
pub fn order_transition(
    state: OrderState,
    transition: Transition,
) -> Result<OrderState, IllegalOrderTransition> {
    use OrderState as S;
    use Transition as T;
    match (state, transition) {
        (S::New, T::Edit) => Ok(S::New),
        (S::New, T::Approve) => Ok(S::Approved),
        (S::New | S::Approved, T::Cancel) => Ok(S::Canceled),
        // Delivery happens on an approved order; it may deliver in several visits.
        (S::Approved, T::Deliver) => Ok(S::Approved),
        (S::Approved, T::Pickup) => Ok(S::Approved),
        _ => Err(IllegalOrderTransition { state, transition }),
    }
}

/// The line's state after a transition of its order, or `None` when the line does not take it.
pub fn line_transition(state: LineState, transition: Transition) -> Option<LineState> {
    use LineState as L;
    use Transition as T;
    match (state, transition) {
        (L::New, T::Edit) => Some(L::New),
        (L::New, T::Approve) => Some(L::Approved),
        (L::New | L::Approved, T::Cancel) => Some(L::Canceled),
        (L::Approved, T::Deliver) => Some(L::Delivered),
        (L::Delivered, T::Pickup) => Some(L::Pickup),
        _ => None,
    }
}

/// Whether an order whose lines are in these states has ended (every line closed or canceled,
/// and at least one closed).
pub fn order_is_finished(lines: &[LineState]) -> bool {
    lines.contains(&LineState::Closed)
        && lines
            .iter()
            .all(|l| matches!(l, LineState::Closed | LineState::Canceled))
}

// ---- the missing-information check ----

/// What a problem belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MissingScope {
    Patient,
    Policy,
    Prescriber,
    Order,
    Line,
}

/// One piece of missing or invalid information.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MissingInfo {
    /// What it belongs to.
    pub scope: MissingScope,
    /// The policy's or line's id, for those scopes.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub id: Option<Uuid>,
    /// Stable code (`missing_diagnosis`, `authorization_expired`…).
    pub code: String,
    /// For people.
    pub message: String,
}

/// The patient, as the check needs it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PatientFacts {
    pub date_of_birth: Option<NaiveDate>,
    /// A complete delivery address (line 1, city, state, postal code).
    pub has_address: bool,
    pub signature_on_file: bool,
    pub inactive_date: Option<NaiveDate>,
    pub deceased_date: Option<NaiveDate>,
}

/// One policy billed by the order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyFacts {
    pub id: Uuid,
    pub rank: i16,
    pub policy_number: Option<String>,
    /// The insured is someone else (spouse, parent…): their name and birth date are needed.
    pub insured_is_patient: bool,
    pub insured_name_and_dob: bool,
    pub effective_date: Option<NaiveDate>,
    pub inactive_date: Option<NaiveDate>,
    pub payer_active: bool,
    /// Medicare requires a PECOS-enrolled ordering prescriber.
    pub payer_is_medicare: bool,
}

/// The ordering prescriber.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PrescriberFacts {
    pub active: bool,
    pub pecos_enrolled: bool,
    pub license_expires: Option<NaiveDate>,
}

/// One line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LineFacts {
    pub id: Uuid,
    /// Canceled and closed lines are not checked.
    pub open: bool,
    pub billable_price: Option<rust_decimal::Decimal>,
    pub allowable_price: Option<rust_decimal::Decimal>,
    /// Rent-to-purchase needs the sale price for month 10.
    pub needs_sale_price: bool,
    pub has_sale_price: bool,
    /// 1-based pointers into the order's diagnosis codes.
    pub dx_pointers: Vec<i16>,
    pub authorization_expires: Option<NaiveDate>,
    pub cmn_expires: Option<NaiveDate>,
}

/// Everything the check looks at.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OrderFacts {
    pub patient: PatientFacts,
    /// In rank order.
    pub policies: Vec<PolicyFacts>,
    /// Whether the order bills the patient only (no insurance), which needs no policy.
    pub self_pay: bool,
    pub prescriber: Option<PrescriberFacts>,
    /// The order names the warehouse it is delivered from (stock is committed there).
    pub has_warehouse: bool,
    pub diagnosis_count: usize,
    pub lines: Vec<LineFacts>,
}

/// Every missing or invalid piece of information of an order as of a date, in a stable order:
/// patient, policies (by rank), prescriber, order, lines (in the given order).
pub fn missing_information(facts: &OrderFacts, as_of: NaiveDate) -> Vec<MissingInfo> {
    let mut out = Vec::new();
    let mut push = |scope, id: Option<Uuid>, code: &str, message: String| {
        out.push(MissingInfo {
            scope,
            id,
            code: code.to_owned(),
            message,
        })
    };
    use MissingScope as S;
    let p = &facts.patient;
    if p.date_of_birth.is_none() {
        push(
            S::Patient,
            None,
            "missing_date_of_birth",
            "the patient has no date of birth".into(),
        );
    }
    if !p.has_address {
        push(
            S::Patient,
            None,
            "missing_address",
            "the patient has no complete address".into(),
        );
    }
    if !p.signature_on_file && !facts.self_pay {
        push(
            S::Patient,
            None,
            "missing_signature_on_file",
            "insurers are billed only with the patient's signature on file".into(),
        );
    }
    if p.inactive_date.is_some_and(|d| d <= as_of) {
        push(
            S::Patient,
            None,
            "patient_inactive",
            "the patient is inactive".into(),
        );
    }
    if let Some(d) = p.deceased_date.filter(|d| *d <= as_of) {
        push(
            S::Patient,
            None,
            "patient_deceased",
            format!("the patient died on {d}"),
        );
    }

    let policies = &facts.policies;
    if policies.is_empty() && !facts.self_pay {
        push(
            S::Policy,
            None,
            "missing_policy",
            "the order bills no insurance policy".into(),
        );
    }
    for pol in policies {
        let id = Some(pol.id);
        if pol
            .policy_number
            .as_deref()
            .is_none_or(|n| n.trim().is_empty())
        {
            push(
                S::Policy,
                id,
                "missing_policy_number",
                format!("policy {} has no number", pol.rank),
            );
        }
        if !pol.insured_is_patient && !pol.insured_name_and_dob {
            push(
                S::Policy,
                id,
                "missing_insured",
                format!(
                    "policy {}: the insured's name and birth date are needed",
                    pol.rank
                ),
            );
        }
        if pol.effective_date.is_some_and(|d| d > as_of) {
            push(
                S::Policy,
                id,
                "policy_not_effective",
                format!("policy {} is not yet in force", pol.rank),
            );
        }
        if pol.inactive_date.is_some_and(|d| d <= as_of) {
            push(
                S::Policy,
                id,
                "policy_inactive",
                format!("policy {} has ended", pol.rank),
            );
        }
        if !pol.payer_active {
            push(
                S::Policy,
                id,
                "payer_inactive",
                format!("policy {}'s payer is inactive", pol.rank),
            );
        }
    }

    match &facts.prescriber {
        None => push(
            S::Prescriber,
            None,
            "missing_prescriber",
            "the order has no ordering prescriber".into(),
        ),
        Some(pr) => {
            if !pr.active {
                push(
                    S::Prescriber,
                    None,
                    "prescriber_inactive",
                    "the prescriber is inactive".into(),
                );
            }
            if pr.license_expires.is_some_and(|d| d < as_of) {
                push(
                    S::Prescriber,
                    None,
                    "prescriber_license_expired",
                    "the prescriber's licence has expired".into(),
                );
            }
            if !pr.pecos_enrolled && policies.iter().any(|p| p.payer_is_medicare) {
                push(
                    S::Prescriber,
                    None,
                    "prescriber_not_pecos_enrolled",
                    "Medicare pays only for orders from PECOS-enrolled prescribers".into(),
                );
            }
        }
    }

    if !facts.has_warehouse {
        push(
            S::Order,
            None,
            "missing_warehouse",
            "the order names no warehouse to deliver from".into(),
        );
    }
    if facts.diagnosis_count == 0 {
        push(
            S::Order,
            None,
            "missing_diagnosis",
            "the order has no diagnosis code".into(),
        );
    }
    let open: Vec<&LineFacts> = facts.lines.iter().filter(|l| l.open).collect();
    if open.is_empty() {
        push(
            S::Order,
            None,
            "no_lines",
            "the order has no open line".into(),
        );
    }
    for line in open {
        let id = Some(line.id);
        if line.billable_price.is_none() {
            push(
                S::Line,
                id,
                "missing_billable_price",
                "the line has no billable price".into(),
            );
        }
        if line.allowable_price.is_none() {
            push(
                S::Line,
                id,
                "missing_allowable_price",
                "the line has no allowable price".into(),
            );
        }
        if line.needs_sale_price && !line.has_sale_price {
            push(
                S::Line,
                id,
                "missing_sale_price",
                "rent to purchase needs the sale price for its last month".into(),
            );
        }
        if line.dx_pointers.is_empty() {
            push(
                S::Line,
                id,
                "missing_dx_pointer",
                "the line points to no diagnosis".into(),
            );
        } else if let Some(bad) = line
            .dx_pointers
            .iter()
            .find(|p| **p < 1 || usize::try_from(**p).is_ok_and(|p| p > facts.diagnosis_count))
        {
            push(
                S::Line,
                id,
                "dx_pointer_out_of_range",
                format!(
                    "diagnosis pointer {bad} is beyond the order's {} code(s)",
                    facts.diagnosis_count
                ),
            );
        }
        if let Some(d) = line.authorization_expires.filter(|d| *d < as_of) {
            push(
                S::Line,
                id,
                "authorization_expired",
                format!("the prior authorization expired on {d}"),
            );
        }
        if let Some(d) = line.cmn_expires.filter(|d| *d < as_of) {
            push(
                S::Line,
                id,
                "cmn_expired",
                format!("the certificate of medical necessity expired on {d}"),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_default()
    }

    fn complete() -> OrderFacts {
        OrderFacts {
            patient: PatientFacts {
                date_of_birth: Some(day("1950-03-01")),
                has_address: true,
                signature_on_file: true,
                inactive_date: None,
                deceased_date: None,
            },
            policies: vec![PolicyFacts {
                id: Uuid::from_u128(1),
                rank: 1,
                policy_number: Some("1EG4TE5MK72".into()),
                insured_is_patient: true,
                insured_name_and_dob: false,
                effective_date: Some(day("2020-01-01")),
                inactive_date: None,
                payer_active: true,
                payer_is_medicare: true,
            }],
            self_pay: false,
            prescriber: Some(PrescriberFacts {
                active: true,
                pecos_enrolled: true,
                license_expires: Some(day("2030-01-01")),
            }),
            has_warehouse: true,
            diagnosis_count: 1,
            lines: vec![LineFacts {
                id: Uuid::from_u128(9),
                open: true,
                billable_price: Some(Decimal::new(12000, 2)),
                allowable_price: Some(Decimal::new(8010, 2)),
                needs_sale_price: false,
                has_sale_price: false,
                dx_pointers: vec![1],
                authorization_expires: None,
                cmn_expires: Some(day("2027-06-30")),
            }],
        }
    }

    fn codes(f: &OrderFacts) -> Vec<String> {
        missing_information(f, day("2026-12-02"))
            .into_iter()
            .map(|m| m.code)
            .collect()
    }

    #[test]
    fn a_complete_order_misses_nothing() {
        assert_eq!(codes(&complete()), Vec::<String>::new());
    }

    #[test]
    fn each_gap_is_reported_with_its_code() {
        type Case = (&'static str, fn(&mut OrderFacts), &'static [&'static str]);
        let cases: &[Case] = &[
            (
                "no dob",
                |f| f.patient.date_of_birth = None,
                &["missing_date_of_birth"],
            ),
            (
                "no address",
                |f| f.patient.has_address = false,
                &["missing_address"],
            ),
            (
                "no signature",
                |f| f.patient.signature_on_file = false,
                &["missing_signature_on_file"],
            ),
            (
                "self pay needs no signature nor policy",
                |f| {
                    f.self_pay = true;
                    f.patient.signature_on_file = false;
                    f.policies.clear();
                },
                &[],
            ),
            (
                "inactive patient",
                |f| f.patient.inactive_date = Some(day("2026-12-02")),
                &["patient_inactive"],
            ),
            (
                "inactive later is fine",
                |f| f.patient.inactive_date = Some(day("2026-12-03")),
                &[],
            ),
            (
                "deceased",
                |f| f.patient.deceased_date = Some(day("2026-11-01")),
                &["patient_deceased"],
            ),
            ("no policy", |f| f.policies.clear(), &["missing_policy"]),
            (
                "no policy number",
                |f| f.policies[0].policy_number = Some(" ".into()),
                &["missing_policy_number"],
            ),
            (
                "insured unknown",
                |f| f.policies[0].insured_is_patient = false,
                &["missing_insured"],
            ),
            (
                "insured known",
                |f| {
                    f.policies[0].insured_is_patient = false;
                    f.policies[0].insured_name_and_dob = true;
                },
                &[],
            ),
            (
                "policy in future",
                |f| f.policies[0].effective_date = Some(day("2027-01-01")),
                &["policy_not_effective"],
            ),
            (
                "policy ended",
                |f| f.policies[0].inactive_date = Some(day("2026-01-01")),
                &["policy_inactive"],
            ),
            (
                "payer inactive",
                |f| f.policies[0].payer_active = false,
                &["payer_inactive"],
            ),
            (
                "no prescriber",
                |f| f.prescriber = None,
                &["missing_prescriber"],
            ),
            (
                "prescriber inactive",
                |f| {
                    if let Some(p) = f.prescriber.as_mut() {
                        p.active = false
                    }
                },
                &["prescriber_inactive"],
            ),
            (
                "licence expired",
                |f| {
                    if let Some(p) = f.prescriber.as_mut() {
                        p.license_expires = Some(day("2026-12-01"))
                    }
                },
                &["prescriber_license_expired"],
            ),
            (
                "not PECOS with Medicare",
                |f| {
                    if let Some(p) = f.prescriber.as_mut() {
                        p.pecos_enrolled = false
                    }
                },
                &["prescriber_not_pecos_enrolled"],
            ),
            (
                "not PECOS, commercial payer",
                |f| {
                    f.policies[0].payer_is_medicare = false;
                    if let Some(p) = f.prescriber.as_mut() {
                        p.pecos_enrolled = false
                    }
                },
                &[],
            ),
            (
                "no diagnosis",
                |f| f.diagnosis_count = 0,
                &["missing_diagnosis", "dx_pointer_out_of_range"],
            ),
            ("no lines", |f| f.lines.clear(), &["no_lines"]),
            (
                "only canceled lines",
                |f| f.lines[0].open = false,
                &["no_lines"],
            ),
            (
                "no billable",
                |f| f.lines[0].billable_price = None,
                &["missing_billable_price"],
            ),
            (
                "no allowable",
                |f| f.lines[0].allowable_price = None,
                &["missing_allowable_price"],
            ),
            (
                "rent to purchase without sale price",
                |f| f.lines[0].needs_sale_price = true,
                &["missing_sale_price"],
            ),
            (
                "no pointer",
                |f| f.lines[0].dx_pointers.clear(),
                &["missing_dx_pointer"],
            ),
            (
                "pointer beyond",
                |f| f.lines[0].dx_pointers = vec![1, 3],
                &["dx_pointer_out_of_range"],
            ),
            (
                "authorization expired",
                |f| f.lines[0].authorization_expires = Some(day("2026-12-01")),
                &["authorization_expired"],
            ),
            (
                "authorization ends today is fine",
                |f| f.lines[0].authorization_expires = Some(day("2026-12-02")),
                &[],
            ),
            (
                "cmn expired",
                |f| f.lines[0].cmn_expires = Some(day("2025-12-01")),
                &["cmn_expired"],
            ),
        ];
        for (name, change, expected) in cases {
            let mut f = complete();
            change(&mut f);
            assert_eq!(codes(&f), *expected, "{name}");
        }
    }

    #[test]
    fn problems_name_their_policy_and_line() {
        let mut f = complete();
        f.policies[0].payer_active = false;
        f.lines[0].allowable_price = None;
        let got = missing_information(&f, day("2026-12-02"));
        assert_eq!(
            got.iter().map(|m| (m.scope, m.id)).collect::<Vec<_>>(),
            [
                (MissingScope::Policy, Some(Uuid::from_u128(1))),
                (MissingScope::Line, Some(Uuid::from_u128(9)))
            ]
        );
    }

    #[test]
    fn order_transitions() {
        use OrderState as S;
        use Transition as T;
        let table = [
            (S::New, T::Edit, Some(S::New)),
            (S::New, T::Approve, Some(S::Approved)),
            (S::New, T::Cancel, Some(S::Canceled)),
            (S::New, T::Deliver, None),
            (S::Approved, T::Edit, None),
            (S::Approved, T::Approve, None),
            (S::Approved, T::Deliver, Some(S::Approved)),
            (S::Approved, T::Cancel, Some(S::Canceled)),
            (S::Canceled, T::Approve, None),
            (S::Canceled, T::Cancel, None),
            (S::Closed, T::Cancel, None),
            (S::Closed, T::Pickup, None),
        ];
        for (from, t, to) in table {
            assert_eq!(order_transition(from, t).ok(), to, "{from} {}", t.name());
        }
        assert_eq!(
            order_transition(S::Canceled, T::Approve)
                .err()
                .map(|e| e.to_string()),
            Some("cannot approve an order that is canceled".to_owned())
        );
    }

    #[test]
    fn line_transitions() {
        use LineState as L;
        use Transition as T;
        let table = [
            (L::New, T::Approve, Some(L::Approved)),
            (L::New, T::Cancel, Some(L::Canceled)),
            (L::Approved, T::Deliver, Some(L::Delivered)),
            (L::Approved, T::Cancel, Some(L::Canceled)),
            (L::Delivered, T::Cancel, None),
            (L::Delivered, T::Pickup, Some(L::Pickup)),
            (L::Delivered, T::Deliver, None),
            (L::Pickup, T::Pickup, None),
            (L::Canceled, T::Deliver, None),
            (L::Closed, T::Pickup, None),
        ];
        for (from, t, to) in table {
            assert_eq!(line_transition(from, t), to, "{from} {}", t.name());
        }
        assert!(order_is_finished(&[L::Closed, L::Canceled]));
        assert!(!order_is_finished(&[L::Canceled]));
        assert!(!order_is_finished(&[L::Closed, L::Pickup]));
    }

    #[test]
    fn states_round_trip_through_text() {
        for s in [
            OrderState::New,
            OrderState::Approved,
            OrderState::Closed,
            OrderState::Canceled,
        ] {
            assert_eq!(s.as_str().parse::<OrderState>(), Ok(s));
        }
        for s in [
            LineState::New,
            LineState::Approved,
            LineState::Delivered,
            LineState::Pickup,
            LineState::Closed,
            LineState::Canceled,
        ] {
            assert_eq!(s.as_str().parse::<LineState>(), Ok(s));
        }
    }
}
