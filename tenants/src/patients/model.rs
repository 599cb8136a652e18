//! Patient and policy input types, the rules that validate them (every malformed identifier is a
//! field error naming its JSON path), and the stored resources as the API returns them.

use crate::dme::codes::Icd10;
use crate::ids::{LocationId, PatientId, PayerId, PolicyId, PrescriberId};
use crate::locations::model::US_STATES;
use crate::validation::ValidationErrors;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Genders accepted (administrative sex as claims carry it, plus `other`).
pub const GENDERS: &[&str] = &["female", "male", "other", "unknown"];
/// The patient's relationship to the insured of a policy.
pub const RELATIONSHIPS: &[&str] = &["self", "spouse", "child", "other"];
/// At most this many diagnosis codes on a patient (a claim carries twelve).
pub const MAX_DIAGNOSES: usize = 12;

/// `prefix.name`, or `name` at the top level.
fn path(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// A postal address block: the home address, or the bill-to / ship-to blocks that may name
/// someone else (a guardian, a facility). The same shape on input and output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostalAddress {
    /// Addressee when it is not the patient (bill-to and ship-to blocks); at most 200 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Street line; required, at most 200 characters.
    pub line1: String,
    /// Suite, unit, floor; optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    /// City; required, at most 100 characters.
    pub city: String,
    /// Two-letter US postal abbreviation (`TX`), stored upper-case.
    pub state: String,
    /// ZIP (5 digits) or ZIP+4 (9 digits, `787011234` or `78701-1234`), stored as `78701-1234`.
    pub postal_code: String,
}

impl PostalAddress {
    fn parse(&self, errs: &mut ValidationErrors, prefix: &str) -> PostalAddress {
        let name = errs.optional_text(&path(prefix, "name"), self.name.as_deref(), 200);
        let line1 = errs.text(&path(prefix, "line1"), &self.line1, 200);
        let line2 = errs.optional_text(&path(prefix, "line2"), self.line2.as_deref(), 200);
        let city = errs.text(&path(prefix, "city"), &self.city, 100);
        let state = self.state.trim().to_ascii_uppercase();
        if !US_STATES.contains(&state.as_str()) {
            errs.push(
                path(prefix, "state"),
                "invalid_state",
                "a two-letter US postal abbreviation such as TX",
            );
        }
        let postal_code = match normalize_zip(&self.postal_code) {
            Some(z) => z,
            None => {
                errs.push(
                    path(prefix, "postal_code"),
                    "invalid_format",
                    "a ZIP code of 5 or 9 digits: 78701, 787011234 or 78701-1234",
                );
                self.postal_code.trim().to_owned()
            }
        };
        PostalAddress {
            name,
            line1,
            line2,
            city,
            state,
            postal_code,
        }
    }
}

/// `78701` stays, `787011234` and `78701-1234` become `78701-1234`; anything else is `None`.
pub fn normalize_zip(raw: &str) -> Option<String> {
    let s = raw.trim();
    let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
    match s.len() {
        5 if digits(s) => Some(s.to_owned()),
        9 if digits(s) => Some(format!("{}-{}", &s[..5], &s[5..])),
        10 if digits(&s[..5]) && &s[5..6] == "-" && digits(&s[6..]) => Some(s.to_owned()),
        _ => None,
    }
}

/// A calendar date `YYYY-MM-DD` (exactly that spelling).
pub fn parse_date(
    errs: &mut ValidationErrors,
    field: &str,
    raw: Option<&str>,
) -> Option<NaiveDate> {
    let s = raw.map(str::trim).filter(|s| !s.is_empty())?;
    let ok = s.len() == 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-';
    match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        Ok(d) if ok => Some(d),
        _ => {
            errs.push(field, "invalid_date", "a calendar date YYYY-MM-DD");
            None
        }
    }
}

/// An id in the body: a hyphenated UUID, else `invalid_uuid` on the field.
pub fn parse_id<T: std::str::FromStr>(
    errs: &mut ValidationErrors,
    field: &str,
    raw: Option<&str>,
) -> Option<T> {
    let s = raw.map(str::trim).filter(|s| !s.is_empty())?;
    match s.parse() {
        Ok(id) => Some(id),
        Err(_) => {
            errs.push(
                field,
                "invalid_uuid",
                "not a UUID in its hyphenated form (8-4-4-4-12 hex digits)",
            );
            None
        }
    }
}

fn phone(errs: &mut ValidationErrors, field: &str, value: Option<&str>) -> Option<String> {
    let p = errs.optional_text(field, value, 32)?;
    let digits = p.chars().filter(char::is_ascii_digit).count();
    if !(7..=15).contains(&digits)
        || !p
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c))
    {
        errs.push(
            field,
            "invalid_format",
            "7 to 15 digits, optionally with + - ( ) . and spaces",
        );
    }
    Some(p)
}

fn email(errs: &mut ValidationErrors, field: &str, value: Option<&str>) -> Option<String> {
    let e = errs.optional_text(field, value, 254)?;
    let valid = match e.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains("..")
                && !e.chars().any(char::is_whitespace)
        }
        None => false,
    };
    if !valid {
        errs.push(
            field,
            "invalid_email",
            "an e-mail address such as ann@example.com",
        );
    }
    Some(e)
}

fn one_of(
    errs: &mut ValidationErrors,
    field: &str,
    value: Option<&str>,
    allowed: &[&str],
    default: &str,
) -> String {
    let v = value.unwrap_or(default).trim().to_ascii_lowercase();
    if !allowed.contains(&v.as_str()) {
        errs.push(
            field,
            "invalid_value",
            format!("one of {}", allowed.join(", ")),
        );
    }
    v
}

/// The writable fields of a patient (`POST` whole; `PATCH` as a JSON merge patch, without
/// `policies`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatientInput {
    /// Unique within the tenant: 1 to 20 letters, digits or `-`, stored upper-case. Generated from
    /// the tenant's counter (`P000123`) when absent on create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_number: Option<String>,
    /// Given name; required.
    pub first_name: String,
    /// Middle name or initial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    /// Family name; required.
    pub last_name: String,
    /// `YYYY-MM-DD`, not in the future and not before 1900-01-01.
    #[schema(format = Date)]
    pub date_of_birth: String,
    /// `female`, `male`, `other` or `unknown` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    /// 7 to 15 digits, optionally with `+ - ( ) .` and spaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// E-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Home address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<PostalAddress>,
    /// Where statements go, when not the home address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bill_to: Option<PostalAddress>,
    /// Where equipment is delivered, when not the home address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ship_to: Option<PostalAddress>,
    /// Free text for the delivery driver; at most 2000 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_directions: Option<String>,
    /// The branch serving the patient (an existing location of the tenant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = Uuid)]
    pub location_id: Option<String>,
    /// The patient's usual ordering prescriber (an existing prescriber of the tenant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = Uuid)]
    pub primary_prescriber_id: Option<String>,
    /// A second prescriber (an existing prescriber of the tenant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = Uuid)]
    pub secondary_prescriber_id: Option<String>,
    /// ICD-10-CM codes in pointer order: at most 12, no duplicates; stored upper-case.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnosis_codes: Vec<String>,
    /// Financial hardship on file (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardship: Option<bool>,
    /// A signed release / assignment of benefits is on file (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_on_file: Option<bool>,
    /// From this day the patient is inactive (`YYYY-MM-DD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = Date)]
    pub inactive_date: Option<String>,
    /// Date of death (`YYYY-MM-DD`), not in the future nor before the birth date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = Date)]
    pub deceased_date: Option<String>,
    /// Create only: policies to attach in the same transaction, in this order (at most 4); each
    /// as `POST …/policies` takes it. Refused in a `PATCH` (use the policies sub-resource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Vec<PolicyInput>>,
}

/// Validated patient fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientFields {
    /// Upper-cased; `None` asks for a generated number (create only).
    pub account_number: Option<String>,
    /// Trimmed.
    pub first_name: String,
    /// Trimmed; `None` when blank.
    pub middle_name: Option<String>,
    /// Trimmed.
    pub last_name: String,
    /// Between 1900-01-01 and today.
    pub date_of_birth: NaiveDate,
    /// One of [`GENDERS`].
    pub gender: String,
    /// As entered, trimmed.
    pub phone: Option<String>,
    /// As entered, trimmed.
    pub email: Option<String>,
    /// Normalized (state upper-case, ZIP+4 with a dash).
    pub address: Option<PostalAddress>,
    /// Normalized.
    pub bill_to: Option<PostalAddress>,
    /// Normalized.
    pub ship_to: Option<PostalAddress>,
    /// Trimmed.
    pub delivery_directions: Option<String>,
    /// Checked against `location` by its foreign key.
    pub location_id: Option<LocationId>,
    /// Checked against `prescriber` by its foreign key.
    pub primary_prescriber_id: Option<PrescriberId>,
    /// Checked against `prescriber` by its foreign key.
    pub secondary_prescriber_id: Option<PrescriberId>,
    /// Valid ICD-10-CM shapes, upper-case, distinct, in the given order.
    pub diagnosis_codes: Vec<String>,
    /// Default false.
    pub hardship: bool,
    /// Default false.
    pub signature_on_file: bool,
    /// Any date.
    pub inactive_date: Option<NaiveDate>,
    /// Not after today nor before the birth date.
    pub deceased_date: Option<NaiveDate>,
}

impl PatientInput {
    /// Validates against today's date (UTC).
    pub fn parse(&self) -> Result<PatientFields, ValidationErrors> {
        self.parse_on(Utc::now().date_naive())
    }

    /// Validates with `today` as the latest birth or death date; every problem at once.
    pub fn parse_on(&self, today: NaiveDate) -> Result<PatientFields, ValidationErrors> {
        let mut errs = ValidationErrors::default();
        let account_number = self
            .account_number
            .as_deref()
            .map(|a| a.trim().to_ascii_uppercase())
            .filter(|a| !a.is_empty());
        if let Some(a) = &account_number
            && (a.len() > 20 || !a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        {
            errs.push(
                "account_number",
                "invalid_format",
                "1 to 20 letters, digits or '-'",
            );
        }
        let first_name = errs.text("first_name", &self.first_name, 100);
        let middle_name = errs.optional_text("middle_name", self.middle_name.as_deref(), 100);
        let last_name = errs.text("last_name", &self.last_name, 100);
        let earliest = NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or(NaiveDate::MIN);
        let dob = if self.date_of_birth.trim().is_empty() {
            errs.push("date_of_birth", "required", "must not be blank");
            None
        } else {
            parse_date(&mut errs, "date_of_birth", Some(&self.date_of_birth))
        };
        if let Some(d) = dob
            && (d > today || d < earliest)
        {
            errs.push(
                "date_of_birth",
                "out_of_range",
                "not in the future and not before 1900-01-01",
            );
        }
        let gender = one_of(
            &mut errs,
            "gender",
            self.gender.as_deref(),
            GENDERS,
            "unknown",
        );
        let phone = phone(&mut errs, "phone", self.phone.as_deref());
        let email = email(&mut errs, "email", self.email.as_deref());
        let address = self.address.as_ref().map(|a| a.parse(&mut errs, "address"));
        let bill_to = self.bill_to.as_ref().map(|a| a.parse(&mut errs, "bill_to"));
        let ship_to = self.ship_to.as_ref().map(|a| a.parse(&mut errs, "ship_to"));
        let delivery_directions = errs.optional_text(
            "delivery_directions",
            self.delivery_directions.as_deref(),
            2000,
        );
        let location_id = parse_id(&mut errs, "location_id", self.location_id.as_deref());
        let primary_prescriber_id = parse_id(
            &mut errs,
            "primary_prescriber_id",
            self.primary_prescriber_id.as_deref(),
        );
        let secondary_prescriber_id = parse_id(
            &mut errs,
            "secondary_prescriber_id",
            self.secondary_prescriber_id.as_deref(),
        );
        if self.diagnosis_codes.len() > MAX_DIAGNOSES {
            errs.push(
                "diagnosis_codes",
                "too_many",
                format!("at most {MAX_DIAGNOSES} diagnosis codes"),
            );
        }
        let mut diagnosis_codes: Vec<String> = Vec::with_capacity(self.diagnosis_codes.len());
        for (i, raw) in self.diagnosis_codes.iter().enumerate() {
            let field = format!("diagnosis_codes[{i}]");
            match Icd10::parse(raw) {
                Ok(code) if diagnosis_codes.iter().any(|c| c == code.as_str()) => {
                    errs.push(field, "duplicate", format!("{code} appears twice"));
                }
                Ok(code) => diagnosis_codes.push(code.to_string()),
                Err(msg) => errs.push(field, "invalid_icd10", msg),
            }
        }
        let inactive_date = parse_date(&mut errs, "inactive_date", self.inactive_date.as_deref());
        let deceased_date = parse_date(&mut errs, "deceased_date", self.deceased_date.as_deref());
        if let Some(d) = deceased_date
            && (d > today || dob.is_some_and(|b| d < b))
        {
            errs.push(
                "deceased_date",
                "out_of_range",
                "not in the future and not before the date of birth",
            );
        }
        if let Some(p) = &self.policies
            && p.len() > crate::patients::ranking::MAX_POLICIES
        {
            errs.push(
                "policies",
                "too_many",
                format!(
                    "at most {} policies",
                    crate::patients::ranking::MAX_POLICIES
                ),
            );
        }
        for (i, p) in self.policies.iter().flatten().enumerate() {
            if let Err(e) = p.parse_at(&format!("policies[{i}]")) {
                errs.0.extend(e.0);
            }
        }
        errs.finish(PatientFields {
            account_number,
            first_name,
            middle_name,
            last_name,
            date_of_birth: dob.unwrap_or(earliest),
            gender,
            phone,
            email,
            address,
            bill_to,
            ship_to,
            delivery_directions,
            location_id,
            primary_prescriber_id,
            secondary_prescriber_id,
            diagnosis_codes,
            hardship: self.hardship.unwrap_or(false),
            signature_on_file: self.signature_on_file.unwrap_or(false),
            inactive_date,
            deceased_date,
        })
    }
}

/// A stored patient, as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Patient {
    /// UUIDv7; lists are ordered by it (creation order).
    #[schema(value_type = String, format = Uuid)]
    pub id: PatientId,
    /// The provider's reference, unique within the tenant (`P000123` when generated).
    pub account_number: String,
    /// Given name.
    pub first_name: String,
    /// Middle name or initial, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    /// Family name.
    pub last_name: String,
    /// `YYYY-MM-DD`.
    #[schema(value_type = String, format = Date)]
    pub date_of_birth: NaiveDate,
    /// `female`, `male`, `other` or `unknown`.
    pub gender: String,
    /// Contact phone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Contact e-mail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Home address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<PostalAddress>,
    /// Where statements go, when not home.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bill_to: Option<PostalAddress>,
    /// Where equipment is delivered, when not home.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ship_to: Option<PostalAddress>,
    /// Free text for the delivery driver.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_directions: Option<String>,
    /// The serving branch.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub location_id: Option<LocationId>,
    /// The usual ordering prescriber.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub primary_prescriber_id: Option<PrescriberId>,
    /// A second prescriber.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub secondary_prescriber_id: Option<PrescriberId>,
    /// ICD-10-CM codes in pointer order (always present, possibly empty).
    pub diagnosis_codes: Vec<String>,
    /// Financial hardship on file.
    pub hardship: bool,
    /// Signed release on file.
    pub signature_on_file: bool,
    /// Inactive from this day.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Date)]
    pub inactive_date: Option<NaiveDate>,
    /// Date of death.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Date)]
    pub deceased_date: Option<NaiveDate>,
    /// Computed: no inactive date on or before today, and not deceased.
    pub active: bool,
    /// Bumped on every change to the patient's own fields; the `ETag`.
    pub version: i64,
    /// When the patient was created (UTC).
    pub created_at: DateTime<Utc>,
    /// When the patient's own fields last changed (UTC).
    pub updated_at: DateTime<Utc>,
    /// The policies in rank order: present on single-patient responses (create, get, patch),
    /// absent from lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Vec<Policy>>,
}

impl Patient {
    /// The writable fields as an input, for merge patches.
    pub(crate) fn to_input(&self) -> PatientInput {
        let date = |d: Option<NaiveDate>| d.map(|d| d.to_string());
        let id = |d: Option<uuid::Uuid>| d.map(|d| d.to_string());
        PatientInput {
            account_number: Some(self.account_number.clone()),
            first_name: self.first_name.clone(),
            middle_name: self.middle_name.clone(),
            last_name: self.last_name.clone(),
            date_of_birth: self.date_of_birth.to_string(),
            gender: Some(self.gender.clone()),
            phone: self.phone.clone(),
            email: self.email.clone(),
            address: self.address.clone(),
            bill_to: self.bill_to.clone(),
            ship_to: self.ship_to.clone(),
            delivery_directions: self.delivery_directions.clone(),
            location_id: id(self.location_id.map(|i| i.as_uuid())),
            primary_prescriber_id: id(self.primary_prescriber_id.map(|i| i.as_uuid())),
            secondary_prescriber_id: id(self.secondary_prescriber_id.map(|i| i.as_uuid())),
            diagnosis_codes: self.diagnosis_codes.clone(),
            hardship: Some(self.hardship),
            signature_on_file: Some(self.signature_on_file),
            inactive_date: date(self.inactive_date),
            deceased_date: date(self.deceased_date),
            policies: None,
        }
    }
}

/// The writable fields of a policy (`POST …/policies` whole, `PATCH` as a JSON merge patch).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyInput {
    /// The payer (an existing, active payer of the tenant).
    #[schema(format = Uuid)]
    pub payer_id: String,
    /// `POST` only: insert at this rank (1–4; the policies from it on move down one). Absent: the
    /// next free rank. A `PATCH` cannot change it: use `POST …/policies/rank`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<i64>,
    /// The member / subscriber id on the card; required, at most 50 characters.
    pub policy_number: String,
    /// Group number, when the plan has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_number: Option<String>,
    /// The patient's relationship to the insured: `self` (default), `spouse`, `child`, `other`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relationship: Option<String>,
    /// Insured's given name: required unless `relationship` is `self`, refused when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insured_first_name: Option<String>,
    /// Insured's family name: required unless `relationship` is `self`, refused when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insured_last_name: Option<String>,
    /// Insured's birth date `YYYY-MM-DD`: required unless `relationship` is `self`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = Date)]
    pub insured_date_of_birth: Option<String>,
    /// Share this payer is expected to pay: a decimal string from `"0"` to `"100"`, at most two
    /// decimal places.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub payment_percent: Option<Decimal>,
    /// Coverage starts (`YYYY-MM-DD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = Date)]
    pub effective_date: Option<String>,
    /// Coverage ends: from this day the policy is inactive (`YYYY-MM-DD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = Date)]
    pub inactive_date: Option<String>,
}

/// Validated policy fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyFields {
    /// Existence and activity are checked against `payer` in the write's transaction.
    pub payer_id: PayerId,
    /// 1–4 when given; contiguity is checked against the patient's policies.
    pub rank: Option<usize>,
    /// Trimmed.
    pub policy_number: String,
    /// Trimmed.
    pub group_number: Option<String>,
    /// One of [`RELATIONSHIPS`].
    pub relationship: String,
    /// Present exactly when `relationship` is not `self`.
    pub insured_first_name: Option<String>,
    /// Present exactly when `relationship` is not `self`.
    pub insured_last_name: Option<String>,
    /// Present exactly when `relationship` is not `self`.
    pub insured_date_of_birth: Option<NaiveDate>,
    /// 0–100, at most two decimal places.
    pub payment_percent: Option<Decimal>,
    /// Coverage start.
    pub effective_date: Option<NaiveDate>,
    /// Coverage end (after the start when both are given).
    pub inactive_date: Option<NaiveDate>,
}

impl PolicyInput {
    /// Validates a policy given on its own (fields named from the body's top level).
    pub fn parse(&self) -> Result<PolicyFields, ValidationErrors> {
        self.parse_at("")
    }

    /// Validates, naming fields under `prefix` (`policies[0]` inside a patient).
    pub fn parse_at(&self, prefix: &str) -> Result<PolicyFields, ValidationErrors> {
        let mut errs = ValidationErrors::default();
        let f = |name: &str| path(prefix, name);
        let payer_id = if self.payer_id.trim().is_empty() {
            errs.push(f("payer_id"), "required", "must not be blank");
            None
        } else {
            parse_id::<PayerId>(&mut errs, &f("payer_id"), Some(&self.payer_id))
        };
        let rank = match self.rank {
            None => None,
            Some(r @ 1..=4) => usize::try_from(r).ok(),
            Some(_) => {
                errs.push(f("rank"), "out_of_range", "from 1 to 4");
                None
            }
        };
        let policy_number = errs.text(&f("policy_number"), &self.policy_number, 50);
        let group_number = errs.optional_text(&f("group_number"), self.group_number.as_deref(), 50);
        let relationship = one_of(
            &mut errs,
            &f("relationship"),
            self.relationship.as_deref(),
            RELATIONSHIPS,
            "self",
        );
        let insured_first_name = errs.optional_text(
            &f("insured_first_name"),
            self.insured_first_name.as_deref(),
            100,
        );
        let insured_last_name = errs.optional_text(
            &f("insured_last_name"),
            self.insured_last_name.as_deref(),
            100,
        );
        let insured_date_of_birth = parse_date(
            &mut errs,
            &f("insured_date_of_birth"),
            self.insured_date_of_birth.as_deref(),
        );
        let insured = [
            ("insured_first_name", insured_first_name.is_some()),
            ("insured_last_name", insured_last_name.is_some()),
            (
                "insured_date_of_birth",
                self.insured_date_of_birth
                    .as_deref()
                    .is_some_and(|s| !s.trim().is_empty()),
            ),
        ];
        for (name, present) in insured {
            if relationship == "self" && present {
                errs.push(
                    f(name),
                    "not_allowed",
                    "only when the patient is not the insured (relationship other than self)",
                );
            } else if relationship != "self"
                && RELATIONSHIPS.contains(&relationship.as_str())
                && !present
            {
                errs.push(
                    f(name),
                    "required",
                    "required when the patient is not the insured",
                );
            }
        }
        if let Some(p) = self.payment_percent
            && (p < Decimal::ZERO || p > Decimal::ONE_HUNDRED || p.normalize().scale() > 2)
        {
            errs.push(
                f("payment_percent"),
                "out_of_range",
                "a decimal from 0 to 100 with at most two decimal places",
            );
        }
        let effective_date = parse_date(
            &mut errs,
            &f("effective_date"),
            self.effective_date.as_deref(),
        );
        let inactive_date = parse_date(
            &mut errs,
            &f("inactive_date"),
            self.inactive_date.as_deref(),
        );
        if let (Some(e), Some(i)) = (effective_date, inactive_date)
            && i <= e
        {
            errs.push(
                f("inactive_date"),
                "out_of_range",
                "after the effective date",
            );
        }
        errs.finish(PolicyFields {
            // Never the nil id: a missing or malformed payer id recorded an error above.
            payer_id: payer_id.unwrap_or(PayerId(uuid::Uuid::nil())),
            rank,
            policy_number,
            group_number,
            relationship,
            insured_first_name,
            insured_last_name,
            insured_date_of_birth,
            payment_percent: self.payment_percent.map(|p| p.round_dp(2)),
            effective_date,
            inactive_date,
        })
    }
}

/// A stored policy, as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Policy {
    /// UUIDv7.
    #[schema(value_type = String, format = Uuid)]
    pub id: PolicyId,
    /// The insured patient.
    #[schema(value_type = String, format = Uuid)]
    pub patient_id: PatientId,
    /// The payer billed under this policy.
    #[schema(value_type = String, format = Uuid)]
    pub payer_id: PayerId,
    /// Billing order, 1..n contiguous among the patient's policies.
    pub rank: i16,
    /// Member / subscriber id.
    pub policy_number: String,
    /// Group number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_number: Option<String>,
    /// `self`, `spouse`, `child` or `other`.
    pub relationship: String,
    /// Insured's given name (not self).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insured_first_name: Option<String>,
    /// Insured's family name (not self).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insured_last_name: Option<String>,
    /// Insured's birth date (not self).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Date)]
    pub insured_date_of_birth: Option<NaiveDate>,
    /// Expected share paid, a decimal string with two places (`"80.00"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub payment_percent: Option<Decimal>,
    /// Coverage start.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Date)]
    pub effective_date: Option<NaiveDate>,
    /// Coverage end.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Date)]
    pub inactive_date: Option<NaiveDate>,
    /// Computed: in force today (started, not ended).
    pub active: bool,
    /// Bumped on every change, including a change of rank; the `ETag`.
    pub version: i64,
    /// When the policy was added (UTC).
    pub created_at: DateTime<Utc>,
    /// When it last changed (UTC).
    pub updated_at: DateTime<Utc>,
}

impl Policy {
    /// The writable fields as an input, for merge patches.
    pub(crate) fn to_input(&self) -> PolicyInput {
        let date = |d: Option<NaiveDate>| d.map(|d| d.to_string());
        PolicyInput {
            payer_id: self.payer_id.to_string(),
            rank: Some(i64::from(self.rank)),
            policy_number: self.policy_number.clone(),
            group_number: self.group_number.clone(),
            relationship: Some(self.relationship.clone()),
            insured_first_name: self.insured_first_name.clone(),
            insured_last_name: self.insured_last_name.clone(),
            insured_date_of_birth: date(self.insured_date_of_birth),
            payment_percent: self.payment_percent,
            effective_date: date(self.effective_date),
            inactive_date: date(self.inactive_date),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 2).unwrap_or_default()
    }

    fn valid() -> PatientInput {
        PatientInput {
            first_name: "Ann".into(),
            last_name: "Lee".into(),
            date_of_birth: "1950-03-04".into(),
            address: Some(PostalAddress {
                line1: "1 Main St".into(),
                city: "Austin".into(),
                state: "tx".into(),
                postal_code: "787011234".into(),
                ..Default::default()
            }),
            diagnosis_codes: vec!["g47.33".into(), "J44.9".into()],
            ..Default::default()
        }
    }

    fn errors_of(input: &PatientInput) -> Vec<(String, String)> {
        match input.parse_on(today()) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.into_iter().map(|e| (e.field, e.code)).collect(),
        }
    }

    #[test]
    fn a_valid_patient_is_normalized() {
        let f = valid().parse_on(today());
        assert!(f.is_ok(), "{f:?}");
        let Ok(f) = f else { return };
        assert_eq!(f.diagnosis_codes, ["G47.33", "J44.9"]);
        assert_eq!(f.gender, "unknown");
        let a = f.address.unwrap_or_default();
        assert_eq!(
            (a.state.as_str(), a.postal_code.as_str()),
            ("TX", "78701-1234")
        );
        assert_eq!(f.account_number, None);
    }

    #[test]
    fn each_malformed_identifier_names_its_field() {
        type Mutation = fn(&mut PatientInput);
        let cases: Vec<(Mutation, &str, &str)> = vec![
            (
                |p| p.date_of_birth = "1950-02-30".into(),
                "date_of_birth",
                "invalid_date",
            ),
            (
                |p| p.date_of_birth = "03/04/1950".into(),
                "date_of_birth",
                "invalid_date",
            ),
            (
                |p| p.date_of_birth = "1950-3-4".into(),
                "date_of_birth",
                "invalid_date",
            ),
            (
                |p| p.date_of_birth = "2027-01-01".into(),
                "date_of_birth",
                "out_of_range",
            ),
            (
                |p| p.date_of_birth = "1899-12-31".into(),
                "date_of_birth",
                "out_of_range",
            ),
            (
                |p| p.date_of_birth = " ".into(),
                "date_of_birth",
                "required",
            ),
            (
                |p| p.diagnosis_codes = vec!["G47.33".into(), "447.33".into()],
                "diagnosis_codes[1]",
                "invalid_icd10",
            ),
            (
                |p| p.diagnosis_codes = vec!["J44.9".into(), "j44.9".into()],
                "diagnosis_codes[1]",
                "duplicate",
            ),
            (
                |p| p.diagnosis_codes = (0..13).map(|i| format!("J44.{i}")).collect(),
                "diagnosis_codes",
                "too_many",
            ),
            (
                |p| {
                    if let Some(a) = p.address.as_mut() {
                        a.state = "XX".into()
                    }
                },
                "address.state",
                "invalid_state",
            ),
            (
                |p| {
                    if let Some(a) = p.address.as_mut() {
                        a.postal_code = "7870".into()
                    }
                },
                "address.postal_code",
                "invalid_format",
            ),
            (
                |p| {
                    if let Some(a) = p.address.as_mut() {
                        a.postal_code = "78701-12345".into()
                    }
                },
                "address.postal_code",
                "invalid_format",
            ),
            (
                |p| {
                    p.ship_to = Some(PostalAddress {
                        line1: "2 Oak".into(),
                        city: "Waco".into(),
                        state: "Texas".into(),
                        postal_code: "76701".into(),
                        ..Default::default()
                    })
                },
                "ship_to.state",
                "invalid_state",
            ),
            (
                |p| {
                    p.bill_to = Some(PostalAddress {
                        line1: "2 Oak".into(),
                        city: "Waco".into(),
                        state: "TX".into(),
                        postal_code: "7670A".into(),
                        ..Default::default()
                    })
                },
                "bill_to.postal_code",
                "invalid_format",
            ),
            (
                |p| p.phone = Some("call me".into()),
                "phone",
                "invalid_format",
            ),
            (|p| p.phone = Some("123".into()), "phone", "invalid_format"),
            (
                |p| p.email = Some("ann.example.com".into()),
                "email",
                "invalid_email",
            ),
            (
                |p| p.email = Some("ann@example".into()),
                "email",
                "invalid_email",
            ),
            (
                |p| p.email = Some("a b@example.com".into()),
                "email",
                "invalid_email",
            ),
            (
                |p| p.location_id = Some("not-a-uuid".into()),
                "location_id",
                "invalid_uuid",
            ),
            (
                |p| p.primary_prescriber_id = Some("0190a1b2c3d4e5f6a7b8c9d0e1f2a3b4".into()),
                "primary_prescriber_id",
                "invalid_uuid",
            ),
            (
                |p| p.secondary_prescriber_id = Some("x".into()),
                "secondary_prescriber_id",
                "invalid_uuid",
            ),
            (
                |p| p.account_number = Some("P 1".into()),
                "account_number",
                "invalid_format",
            ),
            (
                |p| p.gender = Some("robot".into()),
                "gender",
                "invalid_value",
            ),
            (
                |p| p.inactive_date = Some("2026-13-01".into()),
                "inactive_date",
                "invalid_date",
            ),
            (
                |p| p.deceased_date = Some("1940-01-01".into()),
                "deceased_date",
                "out_of_range",
            ),
            (|p| p.first_name = " ".into(), "first_name", "required"),
        ];
        for (mutate, field, code) in cases {
            let mut input = valid();
            mutate(&mut input);
            assert_eq!(
                errors_of(&input),
                vec![(field.to_owned(), code.to_owned())],
                "{field} {code}"
            );
        }
    }

    fn policy() -> PolicyInput {
        PolicyInput {
            payer_id: PayerId::new().to_string(),
            policy_number: "1EG4-TE5-MK72".into(),
            ..Default::default()
        }
    }

    #[test]
    fn each_malformed_policy_field_is_named() {
        type Mutation = fn(&mut PolicyInput);
        let cases: Vec<(Mutation, &str, &str)> = vec![
            (|p| p.payer_id = "nope".into(), "payer_id", "invalid_uuid"),
            (|p| p.payer_id = String::new(), "payer_id", "required"),
            (|p| p.rank = Some(5), "rank", "out_of_range"),
            (|p| p.rank = Some(0), "rank", "out_of_range"),
            (
                |p| p.policy_number = " ".into(),
                "policy_number",
                "required",
            ),
            (
                |p| p.relationship = Some("cousin".into()),
                "relationship",
                "invalid_value",
            ),
            (
                |p| p.payment_percent = Some(Decimal::new(10001, 2)),
                "payment_percent",
                "out_of_range",
            ),
            (
                |p| p.payment_percent = Some(Decimal::new(-1, 0)),
                "payment_percent",
                "out_of_range",
            ),
            (
                |p| p.payment_percent = Some(Decimal::new(80125, 3)),
                "payment_percent",
                "out_of_range",
            ),
            (
                |p| p.effective_date = Some("2026-02-30".into()),
                "effective_date",
                "invalid_date",
            ),
            (
                |p| {
                    p.effective_date = Some("2026-02-01".into());
                    p.inactive_date = Some("2026-01-01".into())
                },
                "inactive_date",
                "out_of_range",
            ),
            (
                |p| p.insured_first_name = Some("Bob".into()),
                "insured_first_name",
                "not_allowed",
            ),
            (
                |p| {
                    p.relationship = Some("spouse".into());
                    p.insured_first_name = Some("Bob".into());
                    p.insured_last_name = Some("Lee".into())
                },
                "insured_date_of_birth",
                "required",
            ),
            (
                |p| {
                    p.relationship = Some("child".into());
                    p.insured_first_name = Some("Bob".into());
                    p.insured_last_name = Some("Lee".into());
                    p.insured_date_of_birth = Some("1960-1-1".into())
                },
                "insured_date_of_birth",
                "invalid_date",
            ),
        ];
        for (mutate, field, code) in cases {
            let mut input = policy();
            mutate(&mut input);
            let got: Vec<(String, String)> = match input.parse() {
                Ok(_) => Vec::new(),
                Err(e) => e.0.into_iter().map(|e| (e.field, e.code)).collect(),
            };
            assert_eq!(
                got,
                vec![(field.to_owned(), code.to_owned())],
                "{field} {code}"
            );
        }
        let mut spouse = policy();
        spouse.relationship = Some("spouse".into());
        spouse.insured_first_name = Some("Bob".into());
        spouse.insured_last_name = Some("Lee".into());
        spouse.insured_date_of_birth = Some("1948-05-06".into());
        spouse.payment_percent = Some(Decimal::new(80, 0));
        assert!(spouse.parse().is_ok());
    }

    #[test]
    fn embedded_policies_are_named_by_index() {
        let mut p = valid();
        let mut bad = policy();
        bad.payer_id = "x".into();
        p.policies = Some(vec![policy(), bad]);
        assert_eq!(
            errors_of(&p),
            vec![("policies[1].payer_id".to_owned(), "invalid_uuid".to_owned())]
        );
        p.policies = Some(vec![policy(); 5]);
        assert_eq!(
            errors_of(&p),
            vec![("policies".to_owned(), "too_many".to_owned())]
        );
    }
}
