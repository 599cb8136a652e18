//! National Provider Identifier: ten digits whose last is a Luhn check digit computed over the
//! nine leading digits prefixed with the constant 80840 (the NPI's ISO card-issuer prefix).

/// True when `npi` is ten ASCII digits with a valid check digit.
pub fn is_valid_npi(npi: &str) -> bool {
    let bytes = npi.as_bytes();
    if bytes.len() != 10 || !bytes.iter().all(u8::is_ascii_digit) {
        return false;
    }
    // The prefix 80840 contributes a constant 24 to the Luhn sum.
    let mut sum = 24u32;
    for (i, b) in bytes[..9].iter().rev().enumerate() {
        let mut d = u32::from(b - b'0');
        if i % 2 == 0 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    let check = (10 - (sum % 10)) % 10;
    check == u32::from(bytes[9] - b'0')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_numbers() {
        // The CMS example NPI.
        assert!(is_valid_npi("1234567893"));
        assert!(!is_valid_npi("1234567890"));
        assert!(!is_valid_npi("123456789"));
        assert!(!is_valid_npi("12345678930"));
        assert!(!is_valid_npi("12345a7893"));
    }

    proptest! {
        /// Exactly one check digit makes any nine-digit stem valid.
        #[test]
        fn one_check_digit_per_stem(stem in "[0-9]{9}") {
            let valid = (0..10).filter(|d| is_valid_npi(&format!("{stem}{d}"))).count();
            prop_assert_eq!(valid, 1);
        }
    }
}
