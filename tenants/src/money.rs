//! Money and percentages as the API carries them: decimal strings (`"125.40"`), never floats;
//! `numeric(12,2)` in SQL; `rust_decimal::Decimal` with exactly two places in Rust, rounded half-up
//! to the cent where the domain says so (API.md). Every resource parses its amounts here, so the
//! same input gets the same answer (and the same error code) everywhere.

use rust_decimal::{Decimal, RoundingStrategy};
use std::str::FromStr;

/// The largest amount `numeric(12,2)` holds.
pub const MAX_AMOUNT: Decimal = Decimal::from_parts(3_567_587_327, 232, 0, false, 2);

// ---- money and percentages ----

/// Checks the text of an amount: digits with an optional decimal point and at most two places,
/// not negative, within `numeric(12,2)`. Returns the amount with exactly two places.
pub fn parse_amount(raw: &str) -> Result<Decimal, (&'static str, String)> {
    let s = raw.trim();
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let well_formed = !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
        && !(digits.contains('.') && frac.is_empty());
    if !well_formed {
        return Err((
            "invalid_amount",
            format!("`{s}` is not an amount: a decimal string such as \"125.40\""),
        ));
    }
    if frac.len() > 2 {
        return Err(("too_many_decimals", "at most two decimal places".into()));
    }
    let value = Decimal::from_str(digits).map_err(|_| ("out_of_range", too_large()))?;
    if negative && !value.is_zero() {
        return Err(("negative", "must not be negative".into()));
    }
    if value > MAX_AMOUNT {
        return Err(("out_of_range", too_large()));
    }
    Ok(cents(value))
}

fn too_large() -> String {
    format!("at most {MAX_AMOUNT}")
}

/// `value` with exactly two decimal places, rounding half-up (away from zero) if it had more.
pub fn cents(value: Decimal) -> Decimal {
    let mut v = value.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    v.rescale(2);
    v
}

/// Checks a percentage: a decimal string with at most four places, above -100 and at most 1000.
pub fn parse_percent(raw: &str) -> Result<Decimal, (&'static str, String)> {
    let s = raw.trim();
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let well_formed = !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
        && !(digits.ends_with('.'));
    if !well_formed {
        return Err((
            "invalid_percent",
            format!("`{s}` is not a percentage: a decimal string such as \"5.00\" or \"-3.333\""),
        ));
    }
    if frac.len() > 4 {
        return Err(("too_many_decimals", "at most four decimal places".into()));
    }
    let p = Decimal::from_str(s).map_err(|_| ("invalid_percent", "not a number".into()))?;
    if p <= -Decimal::ONE_HUNDRED || p > Decimal::ONE_THOUSAND {
        return Err(("out_of_range", "above -100 and at most 1000".into()));
    }
    Ok(p)
}

/// Checks an amount already read as a number (a JSON number, a computed value): not negative, at
/// most two decimal places, within `numeric(12,2)`. Returns it with exactly two places.
pub fn check_amount(value: Decimal) -> Result<Decimal, (&'static str, String)> {
    if value.is_sign_negative() && !value.is_zero() {
        return Err(("negative", "must not be negative".into()));
    }
    if value.normalize().scale() > 2 {
        return Err(("too_many_decimals", "at most two decimal places".into()));
    }
    if value > MAX_AMOUNT {
        return Err(("out_of_range", too_large()));
    }
    Ok(cents(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap_or_default()
    }

    #[test]
    fn amounts() {
        assert_eq!(
            parse_amount("125.4").map(|v| v.to_string()),
            Ok("125.40".into())
        );
        assert_eq!(
            parse_amount(" 0 ").map(|v| v.to_string()),
            Ok("0.00".into())
        );
        assert_eq!(
            parse_amount("9999999999.99").map(|v| v.to_string()),
            Ok("9999999999.99".into())
        );
        assert_eq!(MAX_AMOUNT.to_string(), "9999999999.99");
        for (bad, code) in [
            ("-1.00", "negative"),
            ("1.005", "too_many_decimals"),
            ("10000000000.00", "out_of_range"),
            ("", "invalid_amount"),
            ("1e3", "invalid_amount"),
            ("1_000", "invalid_amount"),
            ("12.", "invalid_amount"),
            (".5", "invalid_amount"),
            ("1.2.3", "invalid_amount"),
            ("abc", "invalid_amount"),
            ("+1", "invalid_amount"),
        ] {
            assert_eq!(parse_amount(bad).map_err(|e| e.0), Err(code), "{bad}");
        }
    }

    #[test]
    fn percentages() {
        assert_eq!(parse_percent("5.00"), Ok(d("5")));
        assert_eq!(parse_percent("-3.333"), Ok(d("-3.333")));
        assert_eq!(parse_percent("1000"), Ok(d("1000")));
        for (bad, code) in [
            ("-100", "out_of_range"),
            ("-150", "out_of_range"),
            ("1000.01", "out_of_range"),
            ("5.12345", "too_many_decimals"),
            ("five", "invalid_percent"),
            ("", "invalid_percent"),
            ("5%", "invalid_percent"),
            ("1e2", "invalid_percent"),
        ] {
            assert_eq!(parse_percent(bad).map_err(|e| e.0), Err(code), "{bad}");
        }
    }

    #[test]
    fn checked_numbers_follow_the_text_rules() {
        assert_eq!(
            check_amount(d("80.1")).map(|v| v.to_string()),
            Ok("80.10".into())
        );
        assert_eq!(check_amount(d("-0.01")).map_err(|e| e.0), Err("negative"));
        assert_eq!(
            check_amount(d("1.005")).map_err(|e| e.0),
            Err("too_many_decimals")
        );
        assert_eq!(
            check_amount(d("1.500")).map(|v| v.to_string()),
            Ok("1.50".into())
        );
        assert_eq!(
            check_amount(d("10000000000")).map_err(|e| e.0),
            Err("out_of_range")
        );
        assert_eq!(cents(d("0.285")).to_string(), "0.29");
        assert_eq!(cents(d("-0.285")).to_string(), "-0.29");
    }
}
