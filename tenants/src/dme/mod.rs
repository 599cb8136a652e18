//! The DME domain's rules as plain functions over plain types (DOMAIN.md §3–§5), unit-tested
//! without a database.
//!
//! - [`ar`]: an invoice line's receivable (balance, payer cursor, status) as the fold of its
//!   AR transactions.
//! - [`billing`]: recurring billing: an order line's next charge (dates of service, invoice date,
//!   units, modifiers, amounts, tax) and when it closes, versioned by date of service (§3.2).
//! - [`codes`]: HCPCS Level II codes, pricing modifiers and ICD-10-CM diagnosis codes.
//! - [`fee_schedule`]: reading the CMS DMEPOS fee-schedule file and choosing each code's rent and
//!   sale allowables for a state (DOMAIN.md §3.6), and the diff against a price list.
//! - [`stock`]: stock counters as the replay of the movement ledger.
//! - [`serials`]: the serial-number state machine; status is the fold of the serial's events.
//! - [`orders`]: order and line state machines, and the missing-information check that gates
//!   approval and billing.
//! - [`terms`]: the shared vocabulary of price lists, orders and billing (sale/rent types,
//!   billing frequencies, invoice dating).

pub mod ar;
pub mod billing;
pub mod codes;
pub mod fee_schedule;
pub mod orders;
pub mod serials;
pub mod stock;
pub mod terms;
