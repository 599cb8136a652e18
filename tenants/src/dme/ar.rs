//! Accounts receivable of one invoice line (DOMAIN.md §3.3): its balance, submission status and
//! payer cursor are a fold of its append-only transactions, never stored.
//!
//! Rules:
//! - balance = charge (billable + tax) − Σ payments − Σ write-offs; an entry that would take it
//!   below zero is refused ([`ArError::ExceedsBalance`]);
//! - the payer cursor starts at Ins1 (the Patient when the invoice bills no policy); a payment or a
//!   denial by the current payer moves it to the next policy rank the invoice has, then to the
//!   Patient; a zero balance is `Settled`, and a settled line accepts nothing more;
//! - payments, denials and submissions come from (go to) the current payer only; write-offs may
//!   name any payer the invoice has and do not move the cursor;
//! - submissions and denials carry no money; payments may be zero (a payer that paid nothing
//!   still hands the claim on); write-offs are positive.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Most policies an invoice bills (ranks 1–4).
pub const MAX_POLICIES: usize = 4;

text_enum!(
    /// What an AR transaction records (legacy `tbl_invoice_transactiontype`).
    ArKind {
        /// Sent to the current payer.
        Submit => "submit",
        /// Sent by the system (electronic batch).
        AutoSubmit => "auto_submit",
        /// Waiting to be sent.
        PendingSubmission => "pending_submission",
        /// A submission taken back (the line waits to be sent again).
        VoidedSubmission => "voided_submission",
        /// Money received from the current payer (may be zero); hands the line to the next payer.
        Payment => "payment",
        /// The current payer refused; hands the line to the next payer.
        Denial => "denial",
        ContractualWriteoff => "contractual_writeoff",
        HardshipWriteoff => "hardship_writeoff",
        BalanceWriteoff => "balance_writeoff",
        SequestrationWriteoff => "sequestration_writeoff",
    }
);

impl ArKind {
    /// Whether the entry is a submission (no money, status only).
    pub fn is_submission(self) -> bool {
        matches!(
            self,
            ArKind::Submit
                | ArKind::AutoSubmit
                | ArKind::PendingSubmission
                | ArKind::VoidedSubmission
        )
    }

    /// Whether the entry is a write-off (reduces the balance, does not move the cursor).
    pub fn is_writeoff(self) -> bool {
        matches!(
            self,
            ArKind::ContractualWriteoff
                | ArKind::HardshipWriteoff
                | ArKind::BalanceWriteoff
                | ArKind::SequestrationWriteoff
        )
    }

    /// Whether the entry carries money (reduces the balance).
    pub fn is_money(self) -> bool {
        self == ArKind::Payment || self.is_writeoff()
    }
}

text_enum!(
    /// Whom a transaction concerns: one of the invoice's policies by rank, or the patient.
    PayerSlot {
        Ins1 => "ins1",
        Ins2 => "ins2",
        Ins3 => "ins3",
        Ins4 => "ins4",
        Patient => "patient",
    }
);

impl PayerSlot {
    /// The policy rank (1–4), or None for the patient.
    pub fn rank(self) -> Option<usize> {
        match self {
            PayerSlot::Ins1 => Some(1),
            PayerSlot::Ins2 => Some(2),
            PayerSlot::Ins3 => Some(3),
            PayerSlot::Ins4 => Some(4),
            PayerSlot::Patient => None,
        }
    }

    /// The slot of policy rank `rank` (1–4).
    pub fn of_rank(rank: usize) -> Option<PayerSlot> {
        match rank {
            1 => Some(PayerSlot::Ins1),
            2 => Some(PayerSlot::Ins2),
            3 => Some(PayerSlot::Ins3),
            4 => Some(PayerSlot::Ins4),
            _ => None,
        }
    }
}

text_enum!(
    /// Who the line waits on next (legacy CurrentPayer; `settled` = None).
    CurrentPayer {
        Ins1 => "ins1",
        Ins2 => "ins2",
        Ins3 => "ins3",
        Ins4 => "ins4",
        Patient => "patient",
        Settled => "settled",
    }
);

impl CurrentPayer {
    /// The payer slot, or None once settled.
    pub fn slot(self) -> Option<PayerSlot> {
        match self {
            CurrentPayer::Ins1 => Some(PayerSlot::Ins1),
            CurrentPayer::Ins2 => Some(PayerSlot::Ins2),
            CurrentPayer::Ins3 => Some(PayerSlot::Ins3),
            CurrentPayer::Ins4 => Some(PayerSlot::Ins4),
            CurrentPayer::Patient => Some(PayerSlot::Patient),
            CurrentPayer::Settled => None,
        }
    }

    /// Position in the cursor's order (Ins1 < … < Ins4 < Patient < Settled); it never decreases.
    pub fn order(self) -> u8 {
        match self {
            CurrentPayer::Ins1 => 1,
            CurrentPayer::Ins2 => 2,
            CurrentPayer::Ins3 => 3,
            CurrentPayer::Ins4 => 4,
            CurrentPayer::Patient => 5,
            CurrentPayer::Settled => 6,
        }
    }

    fn from_slot(slot: PayerSlot) -> CurrentPayer {
        match slot {
            PayerSlot::Ins1 => CurrentPayer::Ins1,
            PayerSlot::Ins2 => CurrentPayer::Ins2,
            PayerSlot::Ins3 => CurrentPayer::Ins3,
            PayerSlot::Ins4 => CurrentPayer::Ins4,
            PayerSlot::Patient => CurrentPayer::Patient,
        }
    }
}

text_enum!(
    /// Where the claim stands with the current payer.
    SubmissionStatus {
        /// Not sent yet (or its submission was voided).
        Pending => "pending",
        Submitted => "submitted",
        /// The last payment left nothing to pay.
        Paid => "paid",
        /// The last payment left a balance (handed on to the next payer).
        PartiallyPaid => "partially_paid",
        Denied => "denied",
    }
);

/// One AR transaction as the fold needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArEntry {
    /// What happened.
    pub kind: ArKind,
    /// Whom it concerns (payments and denials: the current payer).
    pub payer: PayerSlot,
    /// Money paid or written off; zero for submissions and denials.
    pub amount: Decimal,
    /// What the payer allowed (payments), for reports.
    pub allowed: Option<Decimal>,
    /// The deductible the payer applied (payments), for reports.
    pub deductible: Option<Decimal>,
    /// The day it was posted.
    pub posted_on: chrono::NaiveDate,
}

/// An invoice line's receivable, derived from its charge and transactions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LineAr {
    /// What was billed: billable + tax.
    #[schema(value_type = String)]
    pub charge: Decimal,
    /// What is still owed: charge − paid − written off (never negative).
    #[schema(value_type = String)]
    pub balance: Decimal,
    /// Σ payments.
    #[schema(value_type = String)]
    pub paid: Decimal,
    /// Σ write-offs of every kind.
    #[schema(value_type = String)]
    pub written_off: Decimal,
    /// Σ deductibles the payers applied.
    #[schema(value_type = String)]
    pub deductible: Decimal,
    /// Who the line waits on.
    pub current_payer: CurrentPayer,
    /// Where the claim stands.
    pub status: SubmissionStatus,
    /// How many submissions (submit, auto submit) were recorded.
    pub submissions: u32,
    /// How many payments were recorded.
    pub payments: u32,
    /// How many policies the invoice bills (0 = patient only).
    pub policies: usize,
    /// The last posting day, if any.
    pub last_posted_on: Option<chrono::NaiveDate>,
}

/// Why an entry was refused. Each has a stable code for the API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArError {
    /// A payment, denial or submission by (to) a payer that is not the current one.
    #[error("the line waits on {current}, not {payer}")]
    PayerNotCurrent {
        payer: PayerSlot,
        current: CurrentPayer,
    },
    /// The entry names a policy rank the invoice does not bill.
    #[error("the invoice bills {policies} polic(ies); {payer} is not one of them")]
    PayerNotOnInvoice { payer: PayerSlot, policies: usize },
    /// The entry would take the balance below zero.
    #[error("{amount} is more than the balance {balance}")]
    ExceedsBalance { amount: Decimal, balance: Decimal },
    /// The line is settled: nothing more can be posted.
    #[error("the line is settled")]
    Settled,
    /// The amount does not suit the kind (negative, money on a submission or denial, a zero
    /// write-off, more than two decimal places).
    #[error("{0}")]
    InvalidAmount(String),
    /// An invoice bills at most four policies.
    #[error("an invoice bills at most {MAX_POLICIES} policies, not {0}")]
    TooManyPolicies(usize),
}

impl ArError {
    /// The stable code naming the rule.
    pub fn code(&self) -> &'static str {
        match self {
            ArError::PayerNotCurrent { .. } => "ar_payer_not_current",
            ArError::PayerNotOnInvoice { .. } => "ar_payer_not_on_invoice",
            ArError::ExceedsBalance { .. } => "ar_overpayment",
            ArError::Settled => "ar_line_settled",
            ArError::InvalidAmount(_) => "ar_amount_invalid",
            ArError::TooManyPolicies(_) => "ar_too_many_policies",
        }
    }
}

impl LineAr {
    /// A line just billed: nothing posted; the cursor at Ins1 (Patient with no policy), or
    /// settled when the charge is zero.
    pub fn open(charge: Decimal, policies: usize) -> Result<LineAr, ArError> {
        if policies > MAX_POLICIES {
            return Err(ArError::TooManyPolicies(policies));
        }
        if charge < Decimal::ZERO {
            return Err(ArError::InvalidAmount(format!(
                "the charge {charge} is negative"
            )));
        }
        let current_payer = if charge.is_zero() {
            CurrentPayer::Settled
        } else if policies == 0 {
            CurrentPayer::Patient
        } else {
            CurrentPayer::Ins1
        };
        // Zero with two places, so sums print as money ("0.00").
        let zero = Decimal::new(0, 2);
        Ok(LineAr {
            charge,
            balance: charge,
            paid: zero,
            written_off: zero,
            deductible: zero,
            current_payer,
            status: SubmissionStatus::Pending,
            submissions: 0,
            payments: 0,
            policies,
            last_posted_on: None,
        })
    }

    /// The payer after `slot` in the cursor's order for this invoice.
    fn after(&self, slot: PayerSlot) -> CurrentPayer {
        match slot.rank() {
            Some(r) if r < self.policies => PayerSlot::of_rank(r + 1)
                .map(CurrentPayer::from_slot)
                .unwrap_or(CurrentPayer::Patient),
            Some(_) => CurrentPayer::Patient,
            None => CurrentPayer::Patient,
        }
    }

    /// The line after one more entry, or why the entry is refused (the line is unchanged).
    pub fn apply(&self, e: &ArEntry) -> Result<LineAr, ArError> {
        if self.current_payer == CurrentPayer::Settled {
            return Err(ArError::Settled);
        }
        if let Some(rank) = e.payer.rank()
            && rank > self.policies
        {
            return Err(ArError::PayerNotOnInvoice {
                payer: e.payer,
                policies: self.policies,
            });
        }
        if e.amount < Decimal::ZERO {
            return Err(ArError::InvalidAmount(format!(
                "the amount {} is negative",
                e.amount
            )));
        }
        if e.amount.normalize().scale() > 2 {
            return Err(ArError::InvalidAmount(format!(
                "the amount {} has more than two decimal places",
                e.amount
            )));
        }
        for (name, v) in [("allowed", e.allowed), ("deductible", e.deductible)] {
            if let Some(v) = v
                && v < Decimal::ZERO
            {
                return Err(ArError::InvalidAmount(format!("{name} {v} is negative")));
            }
        }
        let current = self.current_payer.slot();
        let mut next = self.clone();
        next.last_posted_on = Some(e.posted_on);
        if e.kind.is_money() {
            if e.kind.is_writeoff() && e.amount.is_zero() {
                return Err(ArError::InvalidAmount(
                    "a write-off must be more than zero".into(),
                ));
            }
            if e.amount > self.balance {
                return Err(ArError::ExceedsBalance {
                    amount: e.amount,
                    balance: self.balance,
                });
            }
            next.balance -= e.amount;
        } else if !e.amount.is_zero() {
            return Err(ArError::InvalidAmount(format!(
                "a {} carries no amount",
                e.kind
            )));
        }
        if (e.kind.is_submission() || matches!(e.kind, ArKind::Payment | ArKind::Denial))
            && Some(e.payer) != current
        {
            return Err(ArError::PayerNotCurrent {
                payer: e.payer,
                current: self.current_payer,
            });
        }
        match e.kind {
            ArKind::Submit | ArKind::AutoSubmit => {
                next.submissions += 1;
                next.status = SubmissionStatus::Submitted;
            }
            ArKind::PendingSubmission | ArKind::VoidedSubmission => {
                next.status = SubmissionStatus::Pending;
            }
            ArKind::Payment => {
                next.paid += e.amount;
                next.payments += 1;
                next.deductible += e.deductible.unwrap_or_default();
                next.status = if next.balance.is_zero() {
                    SubmissionStatus::Paid
                } else {
                    SubmissionStatus::PartiallyPaid
                };
                next.current_payer = self.after(e.payer);
            }
            ArKind::Denial => {
                next.status = SubmissionStatus::Denied;
                next.current_payer = self.after(e.payer);
            }
            ArKind::ContractualWriteoff
            | ArKind::HardshipWriteoff
            | ArKind::BalanceWriteoff
            | ArKind::SequestrationWriteoff => {
                next.written_off += e.amount;
            }
        }
        if next.balance.is_zero() {
            next.current_payer = CurrentPayer::Settled;
        }
        Ok(next)
    }
}

/// A line's receivable: `charge` (billable + tax) less its entries in order, for an invoice that
/// bills `policies` policies. The first refused entry is the error.
pub fn fold(charge: Decimal, policies: usize, entries: &[ArEntry]) -> Result<LineAr, ArError> {
    entries
        .iter()
        .try_fold(LineAr::open(charge, policies)?, |ar, e| ar.apply(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use proptest::prelude::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap_or_default()
    }

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, 1).unwrap_or_default()
    }

    fn e(kind: ArKind, payer: PayerSlot, amount: &str) -> ArEntry {
        ArEntry {
            kind,
            payer,
            amount: d(amount),
            allowed: None,
            deductible: None,
            posted_on: day(),
        }
    }

    use ArKind::*;
    use PayerSlot::{Ins1, Ins2, Patient};

    #[test]
    fn names_round_trip() {
        for k in ArKind::ALL {
            assert_eq!(k.as_str().parse::<ArKind>(), Ok(*k));
            assert_eq!(
                serde_json::to_value(k).ok(),
                Some(serde_json::Value::from(k.as_str()))
            );
        }
        for p in CurrentPayer::ALL {
            assert_eq!(p.as_str().parse::<CurrentPayer>(), Ok(*p));
        }
        assert!("paid".parse::<ArKind>().is_err());
    }

    /// (charge, policies, entries, expected balance, paid, written off, payer, status) or the
    /// code of the first refused entry.
    type Row = (
        &'static str,
        usize,
        Vec<ArEntry>,
        Result<
            (
                &'static str,
                &'static str,
                &'static str,
                CurrentPayer,
                SubmissionStatus,
            ),
            &'static str,
        >,
    );

    #[test]
    fn table() {
        let rows: Vec<Row> = vec![
            (
                "100.00",
                2,
                vec![],
                Ok((
                    "100.00",
                    "0",
                    "0",
                    CurrentPayer::Ins1,
                    SubmissionStatus::Pending,
                )),
            ),
            (
                "100.00",
                0,
                vec![],
                Ok((
                    "100.00",
                    "0",
                    "0",
                    CurrentPayer::Patient,
                    SubmissionStatus::Pending,
                )),
            ),
            (
                "0.00",
                1,
                vec![],
                Ok((
                    "0.00",
                    "0",
                    "0",
                    CurrentPayer::Settled,
                    SubmissionStatus::Pending,
                )),
            ),
            (
                "100.00",
                2,
                vec![e(Submit, Ins1, "0")],
                Ok((
                    "100.00",
                    "0",
                    "0",
                    CurrentPayer::Ins1,
                    SubmissionStatus::Submitted,
                )),
            ),
            // Ins1 pays 80 → Ins2; Ins2 pays 15 → Patient; patient pays 5 → settled.
            (
                "100.00",
                2,
                vec![
                    e(Submit, Ins1, "0"),
                    e(Payment, Ins1, "80.00"),
                    e(Submit, Ins2, "0"),
                    e(Payment, Ins2, "15.00"),
                    e(Payment, Patient, "5.00"),
                ],
                Ok((
                    "0.00",
                    "100.00",
                    "0",
                    CurrentPayer::Settled,
                    SubmissionStatus::Paid,
                )),
            ),
            (
                "100.00",
                2,
                vec![e(Payment, Ins1, "80.00")],
                Ok((
                    "20.00",
                    "80.00",
                    "0",
                    CurrentPayer::Ins2,
                    SubmissionStatus::PartiallyPaid,
                )),
            ),
            // One policy: after Ins1 comes the patient.
            (
                "100.00",
                1,
                vec![e(Payment, Ins1, "80.00")],
                Ok((
                    "20.00",
                    "80.00",
                    "0",
                    CurrentPayer::Patient,
                    SubmissionStatus::PartiallyPaid,
                )),
            ),
            // A denial hands on without money.
            (
                "100.00",
                3,
                vec![e(Denial, Ins1, "0"), e(Denial, Ins2, "0")],
                Ok((
                    "100.00",
                    "0",
                    "0",
                    CurrentPayer::Ins3,
                    SubmissionStatus::Denied,
                )),
            ),
            // A zero payment hands on too.
            (
                "100.00",
                2,
                vec![e(Payment, Ins1, "0")],
                Ok((
                    "100.00",
                    "0",
                    "0",
                    CurrentPayer::Ins2,
                    SubmissionStatus::PartiallyPaid,
                )),
            ),
            // A write-off does not move the cursor; one that zeroes the balance settles.
            (
                "100.00",
                2,
                vec![e(ContractualWriteoff, Ins1, "30.00")],
                Ok((
                    "70.00",
                    "0",
                    "30.00",
                    CurrentPayer::Ins1,
                    SubmissionStatus::Pending,
                )),
            ),
            (
                "100.00",
                2,
                vec![
                    e(Payment, Ins1, "70.00"),
                    e(ContractualWriteoff, Ins1, "20.00"),
                    e(SequestrationWriteoff, Ins2, "10.00"),
                ],
                Ok((
                    "0.00",
                    "70.00",
                    "30.00",
                    CurrentPayer::Settled,
                    SubmissionStatus::PartiallyPaid,
                )),
            ),
            // Full payment by Ins1 settles at once.
            (
                "125.40",
                2,
                vec![e(Payment, Ins1, "125.40")],
                Ok((
                    "0.00",
                    "125.40",
                    "0",
                    CurrentPayer::Settled,
                    SubmissionStatus::Paid,
                )),
            ),
            (
                "100.00",
                2,
                vec![
                    e(PendingSubmission, Ins1, "0"),
                    e(Submit, Ins1, "0"),
                    e(VoidedSubmission, Ins1, "0"),
                ],
                Ok((
                    "100.00",
                    "0",
                    "0",
                    CurrentPayer::Ins1,
                    SubmissionStatus::Pending,
                )),
            ),
            // Refusals.
            (
                "100.00",
                2,
                vec![e(Payment, Ins2, "10.00")],
                Err("ar_payer_not_current"),
            ),
            (
                "100.00",
                2,
                vec![e(Denial, Patient, "0")],
                Err("ar_payer_not_current"),
            ),
            (
                "100.00",
                2,
                vec![e(Submit, Ins2, "0")],
                Err("ar_payer_not_current"),
            ),
            (
                "100.00",
                2,
                vec![e(Payment, Ins1, "50.00"), e(Payment, Ins1, "10.00")],
                Err("ar_payer_not_current"),
            ),
            (
                "100.00",
                1,
                vec![e(Payment, Ins1, "100.01")],
                Err("ar_overpayment"),
            ),
            (
                "100.00",
                1,
                vec![e(HardshipWriteoff, Patient, "100.01")],
                Err("ar_overpayment"),
            ),
            (
                "100.00",
                1,
                vec![e(BalanceWriteoff, Ins2, "1.00")],
                Err("ar_payer_not_on_invoice"),
            ),
            (
                "100.00",
                0,
                vec![e(Payment, Ins1, "1.00")],
                Err("ar_payer_not_on_invoice"),
            ),
            (
                "100.00",
                1,
                vec![e(Payment, Ins1, "100.00"), e(Submit, Patient, "0")],
                Err("ar_line_settled"),
            ),
            (
                "0.00",
                1,
                vec![e(Submit, Ins1, "0")],
                Err("ar_line_settled"),
            ),
            (
                "100.00",
                1,
                vec![e(Payment, Ins1, "-1.00")],
                Err("ar_amount_invalid"),
            ),
            (
                "100.00",
                1,
                vec![e(Denial, Ins1, "1.00")],
                Err("ar_amount_invalid"),
            ),
            (
                "100.00",
                1,
                vec![e(BalanceWriteoff, Ins1, "0")],
                Err("ar_amount_invalid"),
            ),
            (
                "100.00",
                1,
                vec![e(Payment, Ins1, "1.005")],
                Err("ar_amount_invalid"),
            ),
            ("100.00", 5, vec![], Err("ar_too_many_policies")),
        ];
        for (i, (charge, policies, entries, want)) in rows.into_iter().enumerate() {
            let got = fold(d(charge), policies, &entries);
            match want {
                Ok((balance, paid, written_off, payer, status)) => {
                    let ar = got.unwrap_or_else(|err| panic!("row {i}: {err}"));
                    assert_eq!(ar.balance, d(balance), "row {i} balance");
                    assert_eq!(ar.paid, d(paid), "row {i} paid");
                    assert_eq!(ar.written_off, d(written_off), "row {i} written off");
                    assert_eq!(ar.current_payer, payer, "row {i} payer");
                    assert_eq!(ar.status, status, "row {i} status");
                }
                Err(code) => match got {
                    Err(err) => assert_eq!(err.code(), code, "row {i}"),
                    Ok(ar) => panic!("row {i}: accepted {ar:?}, wanted {code}"),
                },
            }
        }
    }

    #[test]
    fn counters_and_deductible() {
        let mut pay = e(Payment, Ins1, "60.00");
        pay.allowed = Some(d("90.00"));
        pay.deductible = Some(d("25.00"));
        let ar = fold(
            d("100.00"),
            2,
            &[e(Submit, Ins1, "0"), pay, e(AutoSubmit, Ins2, "0")],
        )
        .unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(ar.submissions, 2);
        assert_eq!(ar.payments, 1);
        assert_eq!(ar.deductible, d("25.00"));
        assert_eq!(ar.last_posted_on, Some(day()));
        assert_eq!(ar.current_payer, CurrentPayer::Ins2);
    }

    fn any_entry() -> impl Strategy<Value = ArEntry> {
        (
            prop::sample::select(ArKind::ALL.to_vec()),
            prop::sample::select(PayerSlot::ALL.to_vec()),
            0i64..6000,
        )
            .prop_map(|(kind, payer, cents)| ArEntry {
                kind,
                payer,
                amount: if kind.is_money() {
                    Decimal::new(cents, 2)
                } else {
                    Decimal::ZERO
                },
                allowed: None,
                deductible: None,
                posted_on: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default(),
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Feeding candidates one at a time, keeping those accepted: the balance is always the
        /// charge less the money entries, never negative; the cursor only moves forward; the line
        /// is settled iff its balance is zero; a refused entry leaves the fold unchanged.
        #[test]
        fn invariants(charge_cents in 0i64..20000, policies in 0usize..=4,
                      candidates in proptest::collection::vec(any_entry(), 0..40)) {
            let charge = Decimal::new(charge_cents, 2);
            let mut accepted: Vec<ArEntry> = Vec::new();
            let mut ar = fold(charge, policies, &[]).map_err(|e| TestCaseError::fail(e.to_string()))?;
            for c in candidates {
                let mut with = accepted.clone();
                with.push(c.clone());
                match fold(charge, policies, &with) {
                    Ok(next) => {
                        prop_assert!(next.current_payer.order() >= ar.current_payer.order());
                        accepted.push(c);
                        ar = next;
                    }
                    Err(err) => {
                        prop_assert_eq!(ar.apply(&c), Err(err));
                    }
                }
                let money: Decimal = accepted.iter().filter(|e| e.kind.is_money()).map(|e| e.amount).sum();
                prop_assert_eq!(ar.balance, charge - money);
                prop_assert_eq!(ar.paid + ar.written_off, money);
                prop_assert!(ar.balance >= Decimal::ZERO);
                prop_assert_eq!(ar.current_payer == CurrentPayer::Settled, ar.balance.is_zero());
                if let Some(slot) = ar.current_payer.slot() && let Some(rank) = slot.rank() {
                    prop_assert!(rank <= policies);
                }
            }
        }
    }
}
