//! The CMS DMEPOS fee schedule: reading the public CSV layout and choosing, for one state and
//! rural flag, each HCPCS code's rent and sale allowables (DOMAIN.md §3.6, §5).
//!
//! Rules, per code, over the rows that count (a row with `Mod2` set, or with `Mod` = `UE` (used
//! equipment), never counts):
//! - rent: the `RR` row; for oxygen (`OX`) and capped-rental (`CR`) codes a blank-modifier row is
//!   a rental price too (the legacy importer put it in the sale price; DOMAIN.md §5 asks us not to);
//! - sale: the `NU` row; otherwise a blank-modifier row (other categories); otherwise any other
//!   modifier's row (e.g. `KL`), except for oxygen;
//! - no purchase price at all: sale = 10 × rent, except for oxygen, which is rented only.
//!
//! An amount that is empty or not positive means "no price in this state".

use super::codes::Hcpcs;
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::BTreeMap;
use std::str::FromStr;

/// A code's allowables from the schedule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Allowables {
    /// Monthly rental allowable.
    pub rent: Option<Decimal>,
    /// Purchase allowable.
    pub sale: Option<Decimal>,
}

/// A schedule read for one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeSchedule {
    /// Two-letter state the amounts are for.
    pub state: String,
    /// Whether the rural column was read.
    pub rural: bool,
    /// Per code.
    pub entries: BTreeMap<Hcpcs, Allowables>,
    /// Data rows read.
    pub rows: usize,
    /// Rows that did not count (Mod2 set, UE, no amount for the state).
    pub ignored: usize,
}

/// Why a file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("no header row with HCPCS, Mod and Mod2 columns in the first 20 lines")]
    NoHeader,
    #[error("the file has no column for state {state} ({kind}); it has: {available}")]
    UnknownState {
        state: String,
        kind: &'static str,
        available: String,
    },
    #[error("line {line}: {message}")]
    Row { line: u64, message: String },
}

/// One row of the file that counts, as read.
struct Row {
    hcpcs: Hcpcs,
    modifier: String,
    category: String,
    amount: Decimal,
}

/// Reads `bytes` (the CSV file) for `state` and `rural`.
pub fn read(bytes: &[u8], state: &str, rural: bool) -> Result<FeeSchedule, ImportError> {
    let state = state.trim().to_ascii_uppercase();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut records = reader.records();
    let err = |line: u64, message: String| ImportError::Row { line, message };
    // The header: the first row whose first cell is HCPCS (the public file has six lines before it).
    let header = loop {
        match records.next() {
            Some(Ok(r))
                if r.get(0)
                    .is_some_and(|c| c.trim().eq_ignore_ascii_case("HCPCS")) =>
            {
                break r;
            }
            Some(Ok(r)) if r.position().is_some_and(|p| p.line() > 20) => {
                return Err(ImportError::NoHeader);
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(err(e.position().map_or(0, |p| p.line()), e.to_string())),
            None => return Err(ImportError::NoHeader),
        }
    };
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let (Some(c_code), Some(c_mod), Some(c_mod2)) =
        (column("HCPCS"), column("Mod"), column("Mod2"))
    else {
        return Err(ImportError::NoHeader);
    };
    let c_catg = column("CATG");
    let kind = if rural { "R" } else { "NR" };
    let wanted = format!("{state} ({kind})");
    let c_amount = column(&wanted).ok_or_else(|| ImportError::UnknownState {
        state: state.clone(),
        kind: if rural { "rural" } else { "non-rural" },
        available: header
            .iter()
            .filter(|h| h.trim().ends_with(')'))
            .collect::<Vec<_>>()
            .join(", "),
    })?;

    let mut rows = Vec::new();
    let (mut read, mut ignored) = (0usize, 0usize);
    for record in records {
        let record =
            record.map_err(|e| err(e.position().map_or(0, |p| p.line()), e.to_string()))?;
        let line = record.position().map_or(0, |p| p.line());
        let cell = |i: usize| record.get(i).unwrap_or("").trim();
        if record.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        read += 1;
        let hcpcs = Hcpcs::parse(cell(c_code)).map_err(|e| err(line, e))?;
        let modifier = cell(c_mod).to_ascii_uppercase();
        let amount_text = cell(c_amount);
        if !cell(c_mod2).is_empty() || modifier == "UE" || amount_text.is_empty() {
            ignored += 1;
            continue;
        }
        let amount = Decimal::from_str(amount_text)
            .map_err(|_| err(line, format!("`{amount_text}` is not an amount")))?;
        if amount <= Decimal::ZERO {
            ignored += 1;
            continue;
        }
        let category = c_catg
            .map(|c| cell(c).to_ascii_uppercase())
            .unwrap_or_default();
        rows.push(Row {
            hcpcs,
            modifier,
            category,
            amount,
        });
    }

    let mut by_code: BTreeMap<Hcpcs, Vec<Row>> = BTreeMap::new();
    for r in rows {
        by_code.entry(r.hcpcs.clone()).or_default().push(r);
    }
    let entries = by_code
        .into_iter()
        .map(|(code, rows)| (code, choose(&rows)))
        .collect();
    Ok(FeeSchedule {
        state,
        rural,
        entries,
        rows: read,
        ignored,
    })
}

fn choose(rows: &[Row]) -> Allowables {
    let amount = |m: &str| rows.iter().find(|r| r.modifier == m).map(|r| r.amount);
    let oxygen = rows.iter().any(|r| r.category == "OX");
    let rental_category = rows
        .iter()
        .any(|r| r.category == "OX" || r.category == "CR");
    let blank = amount("");
    let rent = amount("RR").or(if rental_category { blank } else { None });
    let other = rows
        .iter()
        .find(|r| !matches!(r.modifier.as_str(), "" | "RR" | "NU"))
        .map(|r| r.amount);
    let sale = amount("NU")
        .or(if rental_category { None } else { blank })
        .or(if oxygen { None } else { other })
        .or(if oxygen {
            None
        } else {
            rent.and_then(|r| r.checked_mul(Decimal::TEN))
        });
    Allowables { rent, sale }
}

/// A price-list row as the import sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedAllowables {
    /// The price-list item's id (opaque here).
    pub item: String,
    /// Its billing code.
    pub hcpcs: Hcpcs,
    /// Current rental allowable.
    pub rent: Option<Decimal>,
    /// Current purchase allowable.
    pub sale: Option<Decimal>,
}

/// One change the import makes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AllowableChange {
    /// The price-list item.
    pub item: String,
    /// Its billing code.
    pub hcpcs: String,
    /// Rental allowable before and after (equal when unchanged).
    pub rent_before: Option<Decimal>,
    pub rent_after: Option<Decimal>,
    /// Purchase allowable before and after.
    pub sale_before: Option<Decimal>,
    pub sale_after: Option<Decimal>,
}

/// The changes importing `schedule` makes to a list: for every row whose code the schedule prices,
/// the schedule's amounts replace the allowables it has (one it lacks is left as it was). Rows that
/// would not change are left out.
pub fn diff(list: &[ListedAllowables], schedule: &FeeSchedule) -> Vec<AllowableChange> {
    list.iter()
        .filter_map(|row| {
            let new = schedule.entries.get(&row.hcpcs)?;
            let rent_after = new.rent.or(row.rent);
            let sale_after = new.sale.or(row.sale);
            (rent_after != row.rent || sale_after != row.sale).then(|| AllowableChange {
                item: row.item.clone(),
                hcpcs: row.hcpcs.to_string(),
                rent_before: row.rent,
                rent_after,
                sale_before: row.sale,
                sale_after,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &[u8] = include_bytes!("../../../fixtures/dmepos_fee_schedule_sample.csv");

    fn d(s: &str) -> Option<Decimal> {
        Decimal::from_str(s).ok()
    }

    fn code(s: &str) -> Hcpcs {
        Hcpcs::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_fixture_gives_the_expected_tx_non_rural_allowables() -> Result<(), ImportError> {
        let s = read(FIXTURE, "tx", false)?;
        let expected = [
            ("E0601", d("80.10"), d("801.00")),
            ("E0260", d("125.40"), d("1254.00")),
            ("E1390", d("150.20"), None),
            ("E0431", d("22.75"), None),
            ("K0001", d("52.55"), d("525.50")),
            ("A7030", None, d("143.55")),
            ("E0143", d("10.38"), d("103.75")),
        ];
        assert_eq!(s.entries.len(), expected.len());
        for (c, rent, sale) in expected {
            assert_eq!(
                s.entries.get(&code(c)),
                Some(&Allowables { rent, sale }),
                "{c}"
            );
        }
        assert_eq!(
            (s.rows, s.ignored),
            (14, 3),
            "the two UE rows and the Mod2 row are ignored"
        );
        Ok(())
    }

    #[test]
    fn rural_and_other_states_read_their_own_column() -> Result<(), ImportError> {
        let s = read(FIXTURE, "TX", true)?;
        assert_eq!(
            s.entries.get(&code("E0601")),
            Some(&Allowables {
                rent: d("84.30"),
                sale: d("843.00")
            })
        );
        let ca = read(FIXTURE, "CA", false)?;
        assert_eq!(
            ca.entries.get(&code("E0260")).and_then(|a| a.sale),
            d("1339.00")
        );
        Ok(())
    }

    #[test]
    fn bad_files_are_explained() {
        assert!(matches!(
            read(FIXTURE, "ZZ", false),
            Err(ImportError::UnknownState { .. })
        ));
        assert_eq!(read(b"a,b\n1,2\n", "TX", false), Err(ImportError::NoHeader));
        let bad_code = b"HCPCS,Mod,Mod2,CATG,TX (NR)\nX9999,RR,,CR,1.00\n";
        assert!(matches!(
            read(bad_code, "TX", false),
            Err(ImportError::Row { line: 2, .. })
        ));
        let bad_amount = b"HCPCS,Mod,Mod2,CATG,TX (NR)\nE0601,RR,,CR,abc\n";
        assert!(matches!(
            read(bad_amount, "TX", false),
            Err(ImportError::Row { .. })
        ));
    }

    #[test]
    fn diff_changes_only_what_the_schedule_prices() -> Result<(), ImportError> {
        let s = read(FIXTURE, "TX", false)?;
        let list = vec![
            ListedAllowables {
                item: "cpap".into(),
                hcpcs: code("E0601"),
                rent: d("70.00"),
                sale: d("801.00"),
            },
            ListedAllowables {
                item: "o2".into(),
                hcpcs: code("E1390"),
                rent: None,
                sale: d("999.00"),
            },
            ListedAllowables {
                item: "same".into(),
                hcpcs: code("A7030"),
                rent: None,
                sale: d("143.55"),
            },
            ListedAllowables {
                item: "other".into(),
                hcpcs: code("E9999"),
                rent: d("1.00"),
                sale: None,
            },
        ];
        let changes = diff(&list, &s);
        assert_eq!(changes.len(), 2);
        assert_eq!(
            (
                changes[0].item.as_str(),
                changes[0].rent_after,
                changes[0].sale_after
            ),
            ("cpap", d("80.10"), d("801.00"))
        );
        // Oxygen has no purchase price in the schedule: the list's sale allowable stays.
        assert_eq!(
            (
                changes[1].item.as_str(),
                changes[1].rent_after,
                changes[1].sale_after
            ),
            ("o2", d("150.20"), d("999.00"))
        );
        Ok(())
    }
}
