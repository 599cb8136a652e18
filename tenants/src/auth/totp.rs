//! TOTP (RFC 6238) for operators and tenant users: secrets, otpauth URIs, and code checks that
//! report the time step matched so the caller can refuse a code used before.

use totp_rs::{Secret, Totp};

/// Issuer shown by authenticator apps.
pub const ISSUER: &str = "AriesOne";
/// Recovery codes issued when TOTP is confirmed.
pub const RECOVERY_CODES: usize = 10;

fn totp(secret_base32: &str, account: &str) -> Result<Totp, String> {
    let secret =
        Secret::try_from_base32(secret_base32).map_err(|e| format!("stored TOTP secret: {e:?}"))?;
    totp_rs::Builder::new()
        .with_secret(secret)
        .with_account_name(account)
        .with_issuer(Some(ISSUER))
        .build()
        .map_err(|e| format!("TOTP: {e:?}"))
}

/// A new secret (base32) and its otpauth URI for `account`.
pub fn enrol(account: &str) -> Result<(String, String), String> {
    let secret = Secret::generate().to_base32();
    let uri = totp(&secret, account)?
        .to_url()
        .map_err(|e| format!("otpauth: {e:?}"))?;
    Ok((secret, uri))
}

/// The time step `code` is valid for now (one step of skew either way), if any.
pub fn check(secret_base32: &str, account: &str, code: &str) -> Option<u64> {
    totp(secret_base32, account)
        .ok()?
        .check_current(code.trim())
}

/// Fresh recovery codes (`rc-` and 16 characters each).
pub fn recovery_codes() -> Vec<String> {
    (0..RECOVERY_CODES)
        .map(|_| {
            crate::auth::secrets::generate("rc-")
                .chars()
                .take(19)
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enrol_and_check() -> Result<(), String> {
        let (secret, uri) = enrol("a@b.co")?;
        assert!(uri.starts_with("otpauth://totp/AriesOne:a%40b.co?"));
        let t = Totp::from_url(&uri).map_err(|e| format!("{e:?}"))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs();
        assert!(check(&secret, "a@b.co", &t.generate(now).to_string()).is_some());
        assert_eq!(check(&secret, "a@b.co", "12345"), None);
        assert_eq!(recovery_codes().len(), 10);
        Ok(())
    }
}
