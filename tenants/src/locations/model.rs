//! Location input and resource types, and the rules that turn one into the other.

use crate::ids::LocationId;
use crate::npi::is_valid_npi;
use crate::validation::ValidationErrors;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// US postal abbreviations accepted for `address.state` (states, DC and the territories CMS bills).
pub(crate) const US_STATES: &[&str] = &[
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL", "IN", "IA",
    "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM",
    "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA",
    "WV", "WI", "WY", "AS", "GU", "MP", "PR", "VI",
];

/// Address as sent by a client. Unknown fields are rejected so a typo never silently drops data.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressInput {
    /// Street line (number and street); required, at most 200 characters.
    pub line1: String,
    /// Second line (suite, unit, floor); optional, at most 200 characters. Blank counts as absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    /// City; required, at most 100 characters.
    pub city: String,
    /// Two-letter US postal abbreviation (`TX`).
    pub state: String,
    /// ZIP or ZIP+4 (`78701`, `78701-1234`).
    pub postal_code: String,
}

/// The writable fields of a location, as JSON. `POST` takes it whole; `PATCH` takes a JSON merge
/// patch (RFC 7396) of it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationInput {
    /// Short code unique within the tenant, letters, digits, `-` and `_`; stored upper-case (`MAIN`).
    pub code: String,
    /// Display name of the branch; required, at most 200 characters.
    pub name: String,
    /// The branch's US postal address.
    pub address: AddressInput,
    /// The branch's phone: 7 to 15 digits, optionally with `+ - ( ) .` and spaces (at most 32
    /// characters). Blank counts as absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// The branch's own NPI (ten digits, check digit validated), when it bills under one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub npi: Option<String>,
    /// CMS place-of-service code; `12` (home) by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pos_type: Option<String>,
    /// Inactive locations stay for history but take no new orders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// The branch's sales tax rate in percent as a decimal string (`"8.25"`), at most four
    /// decimal places, 0 ≤ rate < 100; billing taxes taxable lines of the branch's orders with it.
    /// Default `"0"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_rate: Option<String>,
}

/// A validated address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Address {
    /// Street line (number and street), trimmed.
    pub line1: String,
    /// Second line (suite, unit, floor); absent when none was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    /// City, trimmed.
    pub city: String,
    /// Two-letter US postal abbreviation, upper-case (`TX`).
    pub state: String,
    /// ZIP or ZIP+4 (`78701`, `78701-1234`).
    pub postal_code: String,
}

/// Validated writable fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationFields {
    /// Trimmed and upper-cased; unique within the tenant (`location_code_key`), so a clash is a
    /// 409, not a 500.
    pub code: String,
    /// Trimmed display name.
    pub name: String,
    /// Trimmed address, state upper-cased; stored as flat `address_*` columns.
    pub address: Address,
    /// `None` when absent or blank, so the column holds `NULL` rather than an empty string.
    pub phone: Option<String>,
    /// `None` when absent or blank; otherwise ten digits with a valid check digit.
    pub npi: Option<String>,
    /// Never absent here: `12` (home) fills in when the input gave none.
    pub pos_type: String,
    /// `true` when the input gave none: a new location takes orders unless told otherwise.
    pub active: bool,
    /// Percent, normalised (`8.25`); zero when the input gave none.
    pub tax_rate: Decimal,
}

impl LocationInput {
    /// Checks every rule and returns all violations at once.
    pub fn parse(&self) -> Result<LocationFields, ValidationErrors> {
        let mut errs = ValidationErrors::default();
        let code = self.code.trim().to_ascii_uppercase();
        if code.is_empty() {
            errs.push("code", "required", "must not be blank");
        } else if code.len() > 32
            || !code
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            errs.push(
                "code",
                "invalid_format",
                "1 to 32 letters, digits, '-' or '_'",
            );
        }
        let name = errs.text("name", &self.name, 200);
        let a = &self.address;
        let line1 = errs.text("address.line1", &a.line1, 200);
        let line2 = errs.optional_text("address.line2", a.line2.as_deref(), 200);
        let city = errs.text("address.city", &a.city, 100);
        let state = a.state.trim().to_ascii_uppercase();
        if !US_STATES.contains(&state.as_str()) {
            errs.push(
                "address.state",
                "invalid_state",
                "a two-letter US postal abbreviation such as TX",
            );
        }
        let postal_code = a.postal_code.trim().to_owned();
        if !is_zip(&postal_code) {
            errs.push(
                "address.postal_code",
                "invalid_format",
                "a ZIP code: 12345 or 12345-6789",
            );
        }
        let phone = errs.optional_text("phone", self.phone.as_deref(), 32);
        if let Some(p) = &phone {
            let digits = p.chars().filter(char::is_ascii_digit).count();
            if !(7..=15).contains(&digits)
                || !p
                    .chars()
                    .all(|c| c.is_ascii_digit() || " +-().".contains(c))
            {
                errs.push(
                    "phone",
                    "invalid_format",
                    "7 to 15 digits, optionally with + - ( ) . and spaces",
                );
            }
        }
        let npi = self
            .npi
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        if let Some(n) = &npi
            && !is_valid_npi(n)
        {
            errs.push(
                "npi",
                "invalid_npi",
                "ten digits with a valid NPI check digit",
            );
        }
        let pos_type = self
            .pos_type
            .as_deref()
            .map(str::trim)
            .unwrap_or("12")
            .to_owned();
        if pos_type.len() != 2 || !pos_type.chars().all(|c| c.is_ascii_digit()) {
            errs.push(
                "pos_type",
                "invalid_format",
                "a two-digit CMS place-of-service code such as 12",
            );
        }
        let tax_rate = match self.tax_rate.as_deref().map(str::trim) {
            None | Some("") => normalise_rate(Decimal::ZERO),
            Some(raw) => match raw.parse::<Decimal>() {
                Ok(v)
                    if v >= Decimal::ZERO
                        && v < Decimal::from(100)
                        && v.normalize().scale() <= 4
                        && !raw.contains(['e', 'E']) =>
                {
                    normalise_rate(v)
                }
                _ => {
                    errs.push(
                        "tax_rate",
                        "invalid_format",
                        "a percentage as a decimal string from 0 to less than 100, at most four decimal places (\"8.25\")",
                    );
                    Decimal::ZERO
                }
            },
        };
        errs.finish(LocationFields {
            code,
            name,
            address: Address {
                line1,
                line2,
                city,
                state,
                postal_code,
            },
            phone,
            npi,
            pos_type,
            active: self.active.unwrap_or(true),
            tax_rate,
        })
    }
}

/// A rate as the API shows it: no trailing zeros beyond two places (`8.25`, `8.375`, `0.00`).
pub(crate) fn normalise_rate(v: Decimal) -> Decimal {
    let mut v = v.normalize();
    if v.scale() < 2 {
        v.rescale(2);
    }
    v
}

fn is_zip(s: &str) -> bool {
    let b = s.as_bytes();
    let five = |x: &[u8]| x.iter().all(u8::is_ascii_digit);
    match b.len() {
        5 => five(b),
        10 => five(&b[..5]) && b[5] == b'-' && five(&b[6..]),
        _ => false,
    }
}

/// A stored location, as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Location {
    /// Identifier of the location (a UUIDv7); lists are ordered by it, which is creation order.
    #[schema(value_type = String, format = Uuid)]
    pub id: LocationId,
    /// Short code unique within the tenant, upper-case (`MAIN`).
    pub code: String,
    /// Display name of the branch.
    pub name: String,
    /// Postal address of the branch.
    pub address: Address,
    /// The branch's phone as entered (trimmed); absent when none was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// The branch's own NPI, when it bills under one; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub npi: Option<String>,
    /// CMS place-of-service code (two digits; `12` is home).
    pub pos_type: String,
    /// Whether the location takes new orders; inactive ones are kept for history.
    pub active: bool,
    /// The branch's sales tax rate in percent (`"8.25"`); the rate of its orders' invoices.
    #[schema(value_type = String)]
    pub tax_rate: Decimal,
    /// Bumped on every change; sent as the `ETag` and checked against `If-Match`.
    pub version: i64,
    /// When the location was created (UTC).
    pub created_at: DateTime<Utc>,
    /// When the location last changed (UTC); a patch that changes nothing leaves it as it was.
    pub updated_at: DateTime<Utc>,
}

impl Location {
    /// The writable fields in input form: the document a merge patch applies to.
    pub fn to_input(&self) -> LocationInput {
        LocationInput {
            code: self.code.clone(),
            name: self.name.clone(),
            address: AddressInput {
                line1: self.address.line1.clone(),
                line2: self.address.line2.clone(),
                city: self.address.city.clone(),
                state: self.address.state.clone(),
                postal_code: self.address.postal_code.clone(),
            },
            phone: self.phone.clone(),
            npi: self.npi.clone(),
            pos_type: Some(self.pos_type.clone()),
            active: Some(self.active),
            tax_rate: Some(self.tax_rate.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> LocationInput {
        LocationInput {
            code: " main ".into(),
            name: "Main branch".into(),
            address: AddressInput {
                line1: "1 Main St".into(),
                line2: None,
                city: "Austin".into(),
                state: "tx".into(),
                postal_code: "78701".into(),
            },
            phone: Some("+1 (512) 555-0100".into()),
            npi: Some("1234567893".into()),
            pos_type: None,
            active: None,
            tax_rate: None,
        }
    }

    #[test]
    fn tax_rate_is_a_percentage_string() {
        let rate = |raw: Option<&str>| {
            let mut i = valid();
            i.tax_rate = raw.map(str::to_owned);
            i.parse()
                .map(|f| f.tax_rate.to_string())
                .map_err(|e| e.0.iter().map(|f| f.field.clone()).collect::<Vec<_>>())
        };
        assert_eq!(rate(None), Ok("0.00".into()));
        assert_eq!(rate(Some("8.25")), Ok("8.25".into()));
        assert_eq!(rate(Some("8.2500")), Ok("8.25".into()));
        assert_eq!(rate(Some("7")), Ok("7.00".into()));
        assert_eq!(rate(Some("8.3755")), Ok("8.3755".into()));
        for bad in ["-1", "100", "8.12345", "abc", "1e1"] {
            assert_eq!(rate(Some(bad)), Err(vec!["tax_rate".to_owned()]), "{bad}");
        }
    }

    #[test]
    fn normalises_valid_input() {
        let f = valid().parse().ok();
        let f = f.as_ref();
        assert_eq!(f.map(|f| f.code.as_str()), Some("MAIN"));
        assert_eq!(f.map(|f| f.address.state.as_str()), Some("TX"));
        assert_eq!(f.map(|f| f.pos_type.as_str()), Some("12"));
        assert_eq!(f.map(|f| f.active), Some(true));
    }

    #[test]
    fn reports_every_bad_field_with_its_path() {
        let mut input = valid();
        input.code = "no spaces".into();
        input.name = "  ".into();
        input.address.state = "XX".into();
        input.address.postal_code = "7870".into();
        input.npi = Some("1234567890".into());
        input.phone = Some("call me".into());
        input.pos_type = Some("1".into());
        let errs = input.parse().err().map(|e| e.0).unwrap_or_default();
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "code",
                "name",
                "address.state",
                "address.postal_code",
                "phone",
                "npi",
                "pos_type"
            ]
        );
    }

    #[test]
    fn zip_forms() {
        assert!(is_zip("78701"));
        assert!(is_zip("78701-1234"));
        assert!(!is_zip("78701-123"));
        assert!(!is_zip("7870a"));
    }
}
