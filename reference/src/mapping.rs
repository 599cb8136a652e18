//! From a source's flat records to catalogue rows: which column holds which field, per source,
//! and the checks every value passes. A record that fails a check is rejected with a reason; it
//! never stops the run.
//!
//! One realistic shape per source (override any column with `--map field=column`; an optional
//! field mapped to the empty string is not read):
//!
//! | dataset | source | shape | default columns |
//! |---|---|---|---|
//! | HCPCS | socrata | one row per code | `hcpcs`, `short_description`, `long_description`, `effective_date`, `termination_date` |
//! | HCPCS | cms | one row per code | `HCPCS_Cd`, `HCPCS_Short_Desc`, `HCPCS_Long_Desc`, `HCPCS_Efctv_Dt`, `HCPCS_Trmntn_Dt` |
//! | fee schedule | socrata | long: one row per (code, modifiers, state, rural) | `year`, `quarter`, `hcpcs`, `mod`, `mod2`, `state`, `rural`, `fee`, `catg` |
//! | fee schedule | cms | wide, as the DMEPOS file: one row per (code, modifiers), one column per state and area | `HCPCS`, `Mod`, `Mod2`, `CATG`, `TX (NR)`, `TX (R)`, …; year and quarter from the command line |
//!
//! Checks: HCPCS `^[A-V][0-9]{4}$` (upper-cased); modifiers blank or two letters/digits; state two
//! letters; rural `Y`/`N`, `R`/`NR`, `true`/`false`, `1`/`0`; amount a non-negative decimal with
//! at most two places below 10¹⁰; year 2000–2100, quarter 1–4 (`Q1` accepted); dates
//! `YYYY-MM-DD`, SODA's `YYYY-MM-DDThh:mm:ss[.fff]`, `YYYYMMDD` or `MM/DD/YYYY`. In the wide shape
//! an empty state cell means "no fee there" and is skipped; a bad one rejects that one entry.

use crate::source::Record;
use aries_tenants::dme::codes::{Hcpcs, Modifier};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use std::str::FromStr;

/// Which catalogue a sync fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetKind {
    /// `hcpcs_code`.
    Hcpcs,
    /// `fee_schedule_entry`.
    FeeSchedule,
}

impl DatasetKind {
    /// As stored in `reference_sync.dataset_kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetKind::Hcpcs => "hcpcs",
            DatasetKind::FeeSchedule => "fee_schedule",
        }
    }
}

/// A HCPCS Level II code as the catalogue keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HcpcsRow {
    /// The key.
    pub code: Hcpcs,
    /// CMS's short description (28 characters in the CMS file).
    pub short_description: String,
    /// The long description, when the source has one.
    pub long_description: Option<String>,
    /// When the code took effect, when the source says.
    pub effective_date: Option<NaiveDate>,
    /// When the code ended, when it did.
    pub termination_date: Option<NaiveDate>,
}

/// One fee: a code's allowable for a period, modifiers, state and area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeRow {
    /// Calendar year of the schedule.
    pub year: i16,
    /// Quarter (1-4) of the schedule.
    pub quarter: i16,
    /// The code.
    pub hcpcs: Hcpcs,
    /// Pricing modifier (`RR`, `NU`, `UE`…), empty when blank.
    pub modifier: String,
    /// Second modifier, empty when blank.
    pub modifier2: String,
    /// Two-letter state or territory.
    pub state: String,
    /// The rural (`R`) rather than the non-rural (`NR`) fee.
    pub rural: bool,
    /// The fee, two decimal places.
    pub amount: Decimal,
    /// CMS payment category (`CR`, `OX`, `IN`…), when given.
    pub category: Option<String>,
}

impl FeeRow {
    /// The natural key (the table's primary key).
    pub fn key(&self) -> (i16, i16, &str, &str, &str, &str, bool) {
        (
            self.year,
            self.quarter,
            self.hcpcs.as_str(),
            &self.modifier,
            &self.modifier2,
            &self.state,
            self.rural,
        )
    }
}

/// Where the HCPCS fields are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HcpcsColumns {
    /// Column of the code.
    pub code: String,
    /// Column of the short description.
    pub short_description: String,
    /// Column of the long description; empty: not read.
    pub long_description: String,
    /// Column of the effective date; empty: not read.
    pub effective_date: String,
    /// Column of the termination date; empty: not read.
    pub termination_date: String,
}

/// Column names of the long fee-schedule shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LongFeeColumns {
    /// Column of the year; empty: `--year` for every row.
    pub year: String,
    /// Column of the quarter; empty: `--quarter` for every row.
    pub quarter: String,
    /// Column of the HCPCS code.
    pub hcpcs: String,
    /// Column of the pricing modifier (blank allowed).
    pub modifier: String,
    /// Column of the second modifier (blank allowed).
    pub modifier2: String,
    /// Column of the two-letter state.
    pub state: String,
    /// Column of the rural flag.
    pub rural: String,
    /// Column of the fee.
    pub amount: String,
    /// Column of the category; empty: not read.
    pub category: String,
}

/// Column names of the wide fee-schedule shape (state columns are found by their names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WideFeeColumns {
    /// Column of the HCPCS code.
    pub hcpcs: String,
    /// Column of the pricing modifier (blank allowed).
    pub modifier: String,
    /// Column of the second modifier (blank allowed).
    pub modifier2: String,
    /// Column of the category; empty: not read.
    pub category: String,
}

/// How a fee-schedule dataset is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeeShape {
    /// One fee per record.
    Long(LongFeeColumns),
    /// One record per code and modifiers; a `ST (NR)` and `ST (R)` column per state.
    Wide(WideFeeColumns),
}

/// How to read a fee-schedule dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeMapping {
    /// The layout and its columns.
    pub shape: FeeShape,
    /// The year when no column gives it (the wide shape always takes it from here).
    pub year: Option<i16>,
    /// The quarter when no column gives it.
    pub quarter: Option<i16>,
}

/// How to read a dataset: its kind and columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapping {
    /// Fills `hcpcs_code`.
    Hcpcs(HcpcsColumns),
    /// Fills `fee_schedule_entry`.
    FeeSchedule(FeeMapping),
}

/// One catalogue row made from a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapped {
    /// A `hcpcs_code` row.
    Hcpcs(HcpcsRow),
    /// A `fee_schedule_entry` row.
    Fee(FeeRow),
}

fn s(v: &str) -> String {
    v.to_owned()
}

impl Mapping {
    /// The shape `source` (`socrata` or `cms`) serves `kind` in, with its default columns.
    pub fn default_for(kind: DatasetKind, source: &str) -> Mapping {
        match (kind, source) {
            (DatasetKind::Hcpcs, "cms") => Mapping::Hcpcs(HcpcsColumns {
                code: s("HCPCS_Cd"),
                short_description: s("HCPCS_Short_Desc"),
                long_description: s("HCPCS_Long_Desc"),
                effective_date: s("HCPCS_Efctv_Dt"),
                termination_date: s("HCPCS_Trmntn_Dt"),
            }),
            (DatasetKind::Hcpcs, _) => Mapping::Hcpcs(HcpcsColumns {
                code: s("hcpcs"),
                short_description: s("short_description"),
                long_description: s("long_description"),
                effective_date: s("effective_date"),
                termination_date: s("termination_date"),
            }),
            (DatasetKind::FeeSchedule, "cms") => Mapping::FeeSchedule(FeeMapping {
                shape: FeeShape::Wide(WideFeeColumns {
                    hcpcs: s("HCPCS"),
                    modifier: s("Mod"),
                    modifier2: s("Mod2"),
                    category: s("CATG"),
                }),
                year: None,
                quarter: None,
            }),
            (DatasetKind::FeeSchedule, _) => Mapping::FeeSchedule(FeeMapping {
                shape: FeeShape::Long(LongFeeColumns {
                    year: s("year"),
                    quarter: s("quarter"),
                    hcpcs: s("hcpcs"),
                    modifier: s("mod"),
                    modifier2: s("mod2"),
                    state: s("state"),
                    rural: s("rural"),
                    amount: s("fee"),
                    category: s("catg"),
                }),
                year: None,
                quarter: None,
            }),
        }
    }

    pub fn kind(&self) -> DatasetKind {
        match self {
            Mapping::Hcpcs(_) => DatasetKind::Hcpcs,
            Mapping::FeeSchedule(_) => DatasetKind::FeeSchedule,
        }
    }

    /// Maps `field` to `column` (`--map field=column`); an unknown field is an error naming the
    /// fields there are.
    pub fn set_column(&mut self, field: &str, column: &str) -> Result<(), String> {
        let column = column.trim().to_owned();
        let required = |c: &str| -> Result<(), String> {
            if c.is_empty() {
                Err(format!("`{field}` is required and cannot be unmapped"))
            } else {
                Ok(())
            }
        };
        let slot: &mut String = match self {
            Mapping::Hcpcs(c) => match field {
                "code" => {
                    required(&column)?;
                    &mut c.code
                }
                "short_description" => {
                    required(&column)?;
                    &mut c.short_description
                }
                "long_description" => &mut c.long_description,
                "effective_date" => &mut c.effective_date,
                "termination_date" => &mut c.termination_date,
                _ => {
                    return Err(format!(
                        "unknown HCPCS field `{field}` (code, short_description, long_description, effective_date, termination_date)"
                    ));
                }
            },
            Mapping::FeeSchedule(FeeMapping {
                shape: FeeShape::Long(c),
                ..
            }) => match field {
                "year" => &mut c.year,
                "quarter" => &mut c.quarter,
                "category" => &mut c.category,
                "hcpcs" | "modifier" | "modifier2" | "state" | "rural" | "amount" => {
                    required(&column)?;
                    match field {
                        "hcpcs" => &mut c.hcpcs,
                        "modifier" => &mut c.modifier,
                        "modifier2" => &mut c.modifier2,
                        "state" => &mut c.state,
                        "rural" => &mut c.rural,
                        _ => &mut c.amount,
                    }
                }
                _ => {
                    return Err(format!(
                        "unknown fee-schedule field `{field}` (year, quarter, hcpcs, modifier, modifier2, state, rural, amount, category)"
                    ));
                }
            },
            Mapping::FeeSchedule(FeeMapping {
                shape: FeeShape::Wide(c),
                ..
            }) => match field {
                "category" => &mut c.category,
                "hcpcs" | "modifier" | "modifier2" => {
                    required(&column)?;
                    match field {
                        "hcpcs" => &mut c.hcpcs,
                        "modifier" => &mut c.modifier,
                        _ => &mut c.modifier2,
                    }
                }
                _ => {
                    return Err(format!(
                        "unknown wide fee-schedule field `{field}` (hcpcs, modifier, modifier2, category; states are the `ST (NR)`/`ST (R)` columns)"
                    ));
                }
            },
        };
        *slot = column;
        Ok(())
    }

    /// The columns to ask for (`$select`); empty when the shape needs every column (wide).
    pub fn select(&self) -> Vec<String> {
        let cols: Vec<&String> = match self {
            Mapping::Hcpcs(c) => vec![
                &c.code,
                &c.short_description,
                &c.long_description,
                &c.effective_date,
                &c.termination_date,
            ],
            Mapping::FeeSchedule(FeeMapping {
                shape: FeeShape::Long(c),
                ..
            }) => vec![
                &c.year,
                &c.quarter,
                &c.hcpcs,
                &c.modifier,
                &c.modifier2,
                &c.state,
                &c.rural,
                &c.amount,
                &c.category,
            ],
            Mapping::FeeSchedule(FeeMapping {
                shape: FeeShape::Wide(_),
                ..
            }) => vec![],
        };
        cols.into_iter()
            .filter(|c| !c.is_empty())
            .cloned()
            .collect()
    }

    /// Checks what the mapping needs before anything is fetched (the wide shape's period).
    pub fn check(&self) -> Result<(), String> {
        if let Mapping::FeeSchedule(m) = self {
            let fixed = matches!(m.shape, FeeShape::Wide(_));
            let (year_col, quarter_col) = match &m.shape {
                FeeShape::Long(c) => (c.year.as_str(), c.quarter.as_str()),
                FeeShape::Wide(_) => ("", ""),
            };
            if (fixed || year_col.is_empty()) && m.year.is_none() {
                return Err("this fee-schedule shape takes the year from --year".into());
            }
            if (fixed || quarter_col.is_empty()) && m.quarter.is_none() {
                return Err("this fee-schedule shape takes the quarter from --quarter".into());
            }
        }
        Ok(())
    }

    /// The rows `record` gives, each either valid or the reason it is rejected. A HCPCS or long
    /// fee record gives one; a wide fee record one per non-empty state cell (or one rejection when
    /// the code or a modifier is bad).
    pub fn map(&self, record: &Record) -> Vec<Result<Mapped, String>> {
        match self {
            Mapping::Hcpcs(c) => vec![map_hcpcs(c, record).map(Mapped::Hcpcs)],
            Mapping::FeeSchedule(m) => match &m.shape {
                FeeShape::Long(c) => vec![map_long_fee(c, m, record).map(Mapped::Fee)],
                FeeShape::Wide(c) => map_wide_fee(c, m, record)
                    .into_iter()
                    .map(|r| r.map(Mapped::Fee))
                    .collect(),
            },
        }
    }
}

/// The trimmed value of `column`, `None` when the column is unmapped, absent or blank.
fn field<'r>(record: &'r Record, column: &str) -> Option<&'r str> {
    if column.is_empty() {
        return None;
    }
    record
        .get(column)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
}

fn hcpcs(record: &Record, column: &str) -> Result<Hcpcs, String> {
    let raw = field(record, column).ok_or_else(|| format!("no HCPCS code in `{column}`"))?;
    Hcpcs::parse(raw).map_err(|e| format!("bad HCPCS: {e}"))
}

/// A modifier cell: blank gives "".
pub fn modifier(raw: Option<&str>) -> Result<String, String> {
    match raw {
        None => Ok(String::new()),
        Some(m) => Modifier::parse(m)
            .map(String::from)
            .map_err(|e| format!("bad modifier: {e}")),
    }
}

/// A calendar date in one of the forms public datasets use.
pub fn date(raw: &str) -> Result<NaiveDate, String> {
    let raw = raw.trim();
    let day = raw.split('T').next().unwrap_or(raw);
    NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(day, "%Y%m%d"))
        .or_else(|_| NaiveDate::parse_from_str(day, "%m/%d/%Y"))
        .map_err(|_| format!("bad date `{raw}`"))
}

/// A fee: non-negative, at most two decimal places, fits `numeric(12,2)`; `$` and thousands
/// separators are tolerated.
pub fn amount(raw: &str) -> Result<Decimal, String> {
    let cleaned: String = raw
        .trim()
        .trim_start_matches('$')
        .chars()
        .filter(|c| *c != ',')
        .collect();
    let bad = || format!("bad amount `{}`", raw.trim());
    // Plain decimal notation only (no exponent): what fee schedules publish.
    if !cleaned
        .trim_start_matches(['-', '+'])
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'.')
    {
        return Err(bad());
    }
    let mut d = Decimal::from_str(&cleaned).map_err(|_| bad())?;
    if d.is_sign_negative() && !d.is_zero() {
        return Err(format!("negative amount `{}`", raw.trim()));
    }
    if d.normalize().scale() > 2 {
        return Err(format!(
            "amount `{}` has more than two decimal places",
            raw.trim()
        ));
    }
    if d >= Decimal::new(10_000_000_000, 0) {
        return Err(format!("amount `{}` is too large", raw.trim()));
    }
    d.rescale(2);
    Ok(d.abs())
}

/// The rural flag.
pub fn rural(raw: &str) -> Result<bool, String> {
    match raw.trim().to_ascii_uppercase().as_str() {
        "Y" | "YES" | "R" | "RURAL" | "TRUE" | "1" => Ok(true),
        "N" | "NO" | "NR" | "NON-RURAL" | "FALSE" | "0" => Ok(false),
        other => Err(format!("bad rural flag `{other}`")),
    }
}

/// A two-letter state.
pub fn state(raw: &str) -> Result<String, String> {
    let st = raw.trim().to_ascii_uppercase();
    if st.len() == 2 && st.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(st)
    } else {
        Err(format!("bad state `{}`", raw.trim()))
    }
}

/// A schedule year (2000–2100).
pub fn year(raw: &str) -> Result<i16, String> {
    raw.trim()
        .parse::<i16>()
        .ok()
        .filter(|y| (2000..=2100).contains(y))
        .ok_or_else(|| format!("bad year `{}`", raw.trim()))
}

/// A quarter (1–4, `Q1` accepted).
pub fn quarter(raw: &str) -> Result<i16, String> {
    let t = raw.trim();
    let t = t.strip_prefix(['Q', 'q']).unwrap_or(t);
    t.parse::<i16>()
        .ok()
        .filter(|q| (1..=4).contains(q))
        .ok_or_else(|| format!("bad quarter `{}`", raw.trim()))
}

fn category(record: &Record, column: &str) -> Option<String> {
    field(record, column).map(|c| c.to_ascii_uppercase())
}

fn map_hcpcs(c: &HcpcsColumns, r: &Record) -> Result<HcpcsRow, String> {
    let code = hcpcs(r, &c.code)?;
    let short_description = field(r, &c.short_description)
        .ok_or_else(|| format!("{code}: no short description in `{}`", c.short_description))?
        .to_owned();
    let opt_date = |col: &str| field(r, col).map(date).transpose();
    Ok(HcpcsRow {
        long_description: field(r, &c.long_description).map(str::to_owned),
        effective_date: opt_date(&c.effective_date).map_err(|e| format!("{code}: {e}"))?,
        termination_date: opt_date(&c.termination_date).map_err(|e| format!("{code}: {e}"))?,
        code,
        short_description,
    })
}

fn period(
    record: &Record,
    column: &str,
    fixed: Option<i16>,
    parse: fn(&str) -> Result<i16, String>,
    what: &str,
) -> Result<i16, String> {
    match field(record, column) {
        Some(v) => parse(v),
        None => fixed.ok_or_else(|| format!("no {what}")),
    }
}

fn map_long_fee(c: &LongFeeColumns, m: &FeeMapping, r: &Record) -> Result<FeeRow, String> {
    let code = hcpcs(r, &c.hcpcs)?;
    let ctx = |e: String| format!("{code}: {e}");
    Ok(FeeRow {
        year: period(r, &c.year, m.year, year, "year").map_err(ctx)?,
        quarter: period(r, &c.quarter, m.quarter, quarter, "quarter").map_err(ctx)?,
        modifier: modifier(field(r, &c.modifier)).map_err(ctx)?,
        modifier2: modifier(field(r, &c.modifier2)).map_err(ctx)?,
        state: state(field(r, &c.state).unwrap_or_default()).map_err(ctx)?,
        rural: rural(field(r, &c.rural).unwrap_or_default()).map_err(ctx)?,
        amount: amount(field(r, &c.amount).unwrap_or_default()).map_err(ctx)?,
        category: category(r, &c.category),
        hcpcs: code,
    })
}

/// `("TX", false)` for a column named `TX (NR)`, `("TX", true)` for `TX (R)`.
pub fn state_column(name: &str) -> Option<(String, bool)> {
    let (st, area) = name.trim().split_once(' ')?;
    let rural = match area.trim() {
        "(NR)" => false,
        "(R)" => true,
        _ => return None,
    };
    state(st).ok().map(|s| (s, rural))
}

fn map_wide_fee(c: &WideFeeColumns, m: &FeeMapping, r: &Record) -> Vec<Result<FeeRow, String>> {
    let head = (|| {
        let code = hcpcs(r, &c.hcpcs)?;
        let m1 = modifier(field(r, &c.modifier)).map_err(|e| format!("{code}: {e}"))?;
        let m2 = modifier(field(r, &c.modifier2)).map_err(|e| format!("{code}: {e}"))?;
        let (Some(y), Some(q)) = (m.year, m.quarter) else {
            return Err("no year and quarter for the wide shape".to_owned());
        };
        Ok((code, m1, m2, y, q))
    })();
    let (code, m1, m2, y, q) = match head {
        Ok(h) => h,
        Err(e) => return vec![Err(e)],
    };
    let cat = category(r, &c.category);
    r.iter()
        .filter_map(|(col, value)| {
            let (st, is_rural) = state_column(col)?;
            let value = value.trim();
            if value.is_empty() {
                return None;
            }
            Some(
                amount(value)
                    .map(|a| FeeRow {
                        year: y,
                        quarter: q,
                        hcpcs: code.clone(),
                        modifier: m1.clone(),
                        modifier2: m2.clone(),
                        state: st,
                        rural: is_rural,
                        amount: a,
                        category: cat.clone(),
                    })
                    .map_err(|e| format!("{code} {col}: {e}")),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(pairs: &[(&str, &str)]) -> Record {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap_or_default()
    }

    #[test]
    fn value_checks() {
        assert_eq!(amount("80.1").map(|d| d.to_string()), Ok("80.10".into()));
        assert_eq!(amount(" 801 ").map(|d| d.to_string()), Ok("801.00".into()));
        assert_eq!(
            amount("$1,254.00").map(|d| d.to_string()),
            Ok("1254.00".into())
        );
        assert_eq!(amount("0").map(|d| d.to_string()), Ok("0.00".into()));
        assert_eq!(amount("12.500").map(|d| d.to_string()), Ok("12.50".into()));
        for bad in ["", "abc", "-1.00", "1.005", "10000000000", "1e3"] {
            assert!(amount(bad).is_err(), "{bad}");
        }
        assert_eq!(rural("NR"), Ok(false));
        assert_eq!(rural("y"), Ok(true));
        assert!(rural("maybe").is_err());
        assert_eq!(state("tx"), Ok("TX".into()));
        assert!(state("Texas").is_err());
        assert_eq!(quarter("Q3"), Ok(3));
        assert!(quarter("5").is_err());
        assert_eq!(year("2026"), Ok(2026));
        assert!(year("26").is_err());
        let d = NaiveDate::from_ymd_opt(2026, 1, 1);
        for ok in [
            "2026-01-01",
            "2026-01-01T00:00:00.000",
            "20260101",
            "01/01/2026",
        ] {
            assert_eq!(date(ok).ok(), d, "{ok}");
        }
        assert!(date("2026-13-01").is_err());
        assert_eq!(modifier(None), Ok(String::new()));
        assert_eq!(modifier(Some("rr")), Ok("RR".into()));
        assert!(modifier(Some("RRR")).is_err());
        assert_eq!(state_column("TX (NR)"), Some(("TX".into(), false)));
        assert_eq!(state_column("PR (R)"), Some(("PR".into(), true)));
        assert_eq!(state_column("Ceiling"), None);
        assert_eq!(state_column("TXX (R)"), None);
    }

    #[test]
    fn hcpcs_records_map_or_are_rejected_with_a_reason() {
        let m = Mapping::default_for(DatasetKind::Hcpcs, "socrata");
        let got = m.map(&rec(&[
            ("hcpcs", "e0601"),
            ("short_description", "Cpap device"),
            ("effective_date", "2026-01-01T00:00:00.000"),
        ]));
        assert_eq!(
            got,
            vec![Ok(Mapped::Hcpcs(HcpcsRow {
                code: Hcpcs::parse("E0601").unwrap_or_else(|e| panic!("{e}")),
                short_description: "Cpap device".into(),
                long_description: None,
                effective_date: NaiveDate::from_ymd_opt(2026, 1, 1),
                termination_date: None,
            }))]
        );
        let bad = m.map(&rec(&[("hcpcs", "W0601"), ("short_description", "x")]));
        assert!(
            matches!(&bad[..], [Err(e)] if e.starts_with("bad HCPCS")),
            "{bad:?}"
        );
        let bad = m.map(&rec(&[("hcpcs", "E0601")]));
        assert!(
            matches!(&bad[..], [Err(e)] if e.contains("no short description")),
            "{bad:?}"
        );
        let bad = m.map(&rec(&[
            ("hcpcs", "E0601"),
            ("short_description", "x"),
            ("termination_date", "soon"),
        ]));
        assert!(
            matches!(&bad[..], [Err(e)] if e == "E0601: bad date `soon`"),
            "{bad:?}"
        );
        assert_eq!(
            m.select(),
            vec![
                "hcpcs",
                "short_description",
                "long_description",
                "effective_date",
                "termination_date"
            ]
        );
    }

    #[test]
    fn columns_can_be_remapped_or_unmapped() {
        let mut m = Mapping::default_for(DatasetKind::Hcpcs, "socrata");
        assert!(m.set_column("code", "hcpcs_cd").is_ok());
        assert!(m.set_column("long_description", "").is_ok());
        assert!(m.set_column("code", "").is_err());
        assert!(m.set_column("amount", "x").is_err());
        assert_eq!(
            m.select(),
            vec![
                "hcpcs_cd",
                "short_description",
                "effective_date",
                "termination_date"
            ]
        );
        let mut f = Mapping::default_for(DatasetKind::FeeSchedule, "socrata");
        assert!(f.set_column("amount", "tx_nr").is_ok());
        assert!(f.set_column("code", "x").is_err());
    }

    #[test]
    fn long_fee_records() {
        let mut m = Mapping::default_for(DatasetKind::FeeSchedule, "socrata");
        assert_eq!(m.check(), Ok(()));
        let r = rec(&[
            ("year", "2026"),
            ("quarter", "1"),
            ("hcpcs", "E0601"),
            ("mod", "RR"),
            ("state", "TX"),
            ("rural", "N"),
            ("fee", "80.10"),
            ("catg", "cr"),
        ]);
        let got = m.map(&r);
        let Some(Ok(Mapped::Fee(f))) = got.first() else {
            panic!("{got:?}")
        };
        assert_eq!(f.key(), (2026, 1, "E0601", "RR", "", "TX", false), "{f:?}");
        assert_eq!(f.amount, dec("80.10"));
        assert_eq!(f.category.as_deref(), Some("CR"));
        let mut bad = r.clone();
        bad.insert("fee".into(), "12,3x".into());
        assert!(matches!(&m.map(&bad)[..], [Err(e)] if e.contains("bad amount")));
        // The year column unmapped: --year is needed and used.
        assert!(m.set_column("year", "").is_ok());
        assert!(m.check().is_err());
        if let Mapping::FeeSchedule(fm) = &mut m {
            fm.year = Some(2025);
        }
        assert_eq!(m.check(), Ok(()));
        let got = m.map(&r);
        assert!(matches!(&got[..], [Ok(Mapped::Fee(f))] if f.year == 2025));
    }

    #[test]
    fn wide_fee_records_give_one_entry_per_state_cell() {
        let mut m = Mapping::default_for(DatasetKind::FeeSchedule, "cms");
        assert!(m.check().is_err(), "the wide shape needs --year/--quarter");
        if let Mapping::FeeSchedule(fm) = &mut m {
            fm.year = Some(2026);
            fm.quarter = Some(1);
        }
        assert_eq!(m.check(), Ok(()));
        assert!(m.select().is_empty());
        let r = rec(&[
            ("HCPCS", "E0601"),
            ("Mod", "NU"),
            ("Mod2", ""),
            ("JURIS", "D"),
            ("CATG", "CR"),
            ("Ceiling", "900.00"),
            ("Floor", "700.00"),
            ("TX (NR)", "801.00"),
            ("TX (R)", "843.00"),
            ("FL (NR)", ""),
            ("FL (R)", "oops"),
            ("Description", "CPAP device"),
        ]);
        let got = m.map(&r);
        let ok: Vec<(String, bool, Decimal)> = got
            .iter()
            .filter_map(|g| match g {
                Ok(Mapped::Fee(f)) => Some((f.state.clone(), f.rural, f.amount)),
                _ => None,
            })
            .collect();
        assert_eq!(
            ok,
            vec![
                ("TX".into(), false, dec("801.00")),
                ("TX".into(), true, dec("843.00"))
            ]
        );
        let errs: Vec<&String> = got.iter().filter_map(|g| g.as_ref().err()).collect();
        assert_eq!(errs, vec!["E0601 FL (R): bad amount `oops`"]);
        let bad = m.map(&rec(&[("HCPCS", "99213"), ("TX (NR)", "1.00")]));
        assert!(matches!(&bad[..], [Err(e)] if e.starts_with("bad HCPCS")));
    }
}
