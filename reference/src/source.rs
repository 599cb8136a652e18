//! The [`ReferenceSource`] trait (fetch one page of flat records for a query), what a query and
//! a page are, and the HTTP plumbing both implementations share: one GET with a timeout,
//! retried with exponential backoff on 429, 5xx, timeouts and connection failures (bounded),
//! and error bodies turned into errors that say what the server said.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

/// One record as the source sent it: column name → value. SODA sends every value as a string;
/// numbers and booleans from other sources are turned into their text, nulls are left out.
pub type Record = BTreeMap<String, String>;

/// What to fetch, independent of paging.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Socrata's 4x4 dataset id (`abcd-1234`) or the CMS dataset UUID.
    pub dataset: String,
    /// Columns to fetch (`$select`); empty fetches every column. Only Socrata can select.
    pub select: Vec<String>,
    /// A SoQL boolean expression (`$where`); Socrata only.
    pub soql_where: Option<String>,
    /// Column = value equality filters (SODA `col=value`, CMS `filter[col]=value`).
    pub filters: Vec<(String, String)>,
}

/// Which slice of the result a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSpec {
    /// Rows to skip.
    pub offset: u64,
    /// Rows to return at most.
    pub limit: u32,
}

impl PageSpec {
    /// The first page of `limit` rows.
    pub fn first(limit: u32) -> Self {
        Self { offset: 0, limit }
    }

    /// The page after this one given that `got` rows came back, or `None` when this page was the
    /// last (a short or empty page: a source never sends more than asked, so fewer means the end).
    pub fn next(self, got: usize) -> Option<Self> {
        if got == 0 || got < self.limit as usize {
            return None;
        }
        Some(Self {
            offset: self.offset + got as u64,
            limit: self.limit,
        })
    }
}

/// A public reference-data API.
pub trait ReferenceSource: Send + Sync {
    /// `socrata` or `cms`: recorded with each run and each row.
    fn name(&self) -> &'static str;
    /// Largest page the API serves.
    fn max_page_size(&self) -> u32;
    /// Checks `query` and the page size can be sent at all (dataset id, SoQL support, limits),
    /// before a run is opened for it.
    fn check(&self, query: &Query, page: PageSpec) -> Result<(), SourceError>;
    /// Fetches one page of `query`, in a stable order.
    fn fetch_page(
        &self,
        query: &Query,
        page: PageSpec,
    ) -> impl Future<Output = Result<Vec<Record>, SourceError>> + Send;
}

/// Why a page could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The server refused the request for good (4xx other than 429): its own code and message.
    #[error("{source_name} answered {status} {code}: {message}{hint}")]
    Refused {
        source_name: &'static str,
        status: u16,
        code: String,
        message: String,
        /// A word on what to check (the app token for 401/403).
        hint: &'static str,
    },
    /// Transient failures (429, 5xx, timeouts, connection errors) outlasted the retries.
    #[error("{source_name} still failing after {attempts} attempts: {last}")]
    Exhausted {
        source_name: &'static str,
        attempts: u32,
        last: String,
    },
    /// The answer was not a JSON array of flat objects.
    #[error("{source_name} sent a body that is not a JSON array of records: {message}")]
    Body {
        source_name: &'static str,
        message: String,
    },
    /// The request could not be built (a base URL that is not a URL, a bad parameter).
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// How hard to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so `max_retries + 1` attempts at most).
    pub max_retries: u32,
    /// Delay before the first retry; doubled for each further one.
    pub base_delay: Duration,
    /// No delay (computed or asked for by `Retry-After`) is longer than this.
    pub max_delay: Duration,
    /// Limit on each request, connection to last byte.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `retry` (0 for the first), honouring a server's
    /// `Retry-After` when it asks for longer; never more than `max_delay`.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let backoff = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(retry.min(16)));
        backoff
            .max(retry_after.unwrap_or_default())
            .min(self.max_delay)
    }
}

/// The error body Socrata (and many JSON APIs) send: `{"code": "...", "message": "..."}`.
#[derive(Debug, serde::Deserialize)]
struct ErrorBody {
    code: Option<String>,
    message: Option<String>,
    #[serde(rename = "errorCode")]
    error_code: Option<String>,
}

/// `(code, message)` from an error body: the JSON members when present, else the text itself
/// (cut to 300 characters).
pub(crate) fn describe_error_body(status: u16, body: &str) -> (String, String) {
    let parsed = serde_json::from_str::<ErrorBody>(body).ok();
    let code = parsed
        .as_ref()
        .and_then(|b| b.code.clone().or_else(|| b.error_code.clone()))
        .unwrap_or_else(|| format!("http_{status}"));
    let message = parsed
        .and_then(|b| b.message)
        .unwrap_or_else(|| body.chars().take(300).collect::<String>());
    let message = if message.trim().is_empty() {
        "(no message)".to_owned()
    } else {
        message
    };
    (code, message)
}

/// Turns a JSON array of flat objects into records.
pub(crate) fn parse_records(
    source_name: &'static str,
    body: &[u8],
) -> Result<Vec<Record>, SourceError> {
    let bad = |message: String| SourceError::Body {
        source_name,
        message,
    };
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("not JSON: {e}")))?;
    let rows = value
        .as_array()
        .ok_or_else(|| bad("the top level is not an array".into()))?;
    rows.iter()
        .enumerate()
        .map(|(i, row)| {
            let obj = row
                .as_object()
                .ok_or_else(|| bad(format!("element {i} is not an object")))?;
            Ok(obj
                .iter()
                .filter_map(|(k, v)| {
                    let text = match v {
                        serde_json::Value::Null => return None,
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    Some((k.clone(), text))
                })
                .collect())
        })
        .collect()
}

/// An HTTP client with a retry policy, shared by the sources.
#[derive(Debug, Clone)]
pub struct HttpFetcher {
    client: reqwest::Client,
    policy: RetryPolicy,
}

impl HttpFetcher {
    pub fn new(policy: RetryPolicy) -> Result<Self, SourceError> {
        let client = reqwest::Client::builder()
            .timeout(policy.timeout)
            .connect_timeout(policy.timeout)
            .user_agent(concat!("aries-reference/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SourceError::Invalid(format!("building the HTTP client: {e}")))?;
        Ok(Self { client, policy })
    }

    /// GETs `url` with `headers`, retrying transient failures; returns the body of a 2xx answer.
    pub(crate) async fn get(
        &self,
        source_name: &'static str,
        url: &url::Url,
        headers: &[(&'static str, String)],
    ) -> Result<Vec<u8>, SourceError> {
        let mut retry = 0;
        loop {
            let mut req = self.client.get(url.clone());
            for (name, value) in headers {
                req = req.header(*name, value);
            }
            // (what went wrong, the server's Retry-After) for a failure worth retrying.
            let transient: (String, Option<Duration>) = match req.send().await {
                Ok(res) => {
                    let status = res.status().as_u16();
                    let retry_after = res
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    match res.bytes().await {
                        Ok(body) if (200..300).contains(&status) => return Ok(body.to_vec()),
                        Ok(body) => {
                            let (code, message) =
                                describe_error_body(status, &String::from_utf8_lossy(&body));
                            if status == 429 || status >= 500 {
                                (format!("{status} {code}: {message}"), retry_after)
                            } else {
                                let hint = if status == 401 || status == 403 {
                                    " (check the app token: --app-token-env or reference.socrata_app_token)"
                                } else {
                                    ""
                                };
                                return Err(SourceError::Refused {
                                    source_name,
                                    status,
                                    code,
                                    message,
                                    hint,
                                });
                            }
                        }
                        Err(e) => (format!("reading the body: {e}"), None),
                    }
                }
                Err(e) => (
                    if e.is_timeout() {
                        format!("timed out after {:?}", self.policy.timeout)
                    } else {
                        format!("{e}")
                    },
                    None,
                ),
            };
            if retry >= self.policy.max_retries {
                return Err(SourceError::Exhausted {
                    source_name,
                    attempts: retry + 1,
                    last: transient.0,
                });
            }
            let delay = self.policy.delay(retry, transient.1);
            tracing::warn!(source = source_name, %url, error = %transient.0, ?delay, "transient failure; retrying");
            tokio::time::sleep(delay).await;
            retry += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_stops_at_a_short_or_empty_page() {
        let p = PageSpec::first(1000);
        let p2 = p.next(1000);
        assert_eq!(
            p2,
            Some(PageSpec {
                offset: 1000,
                limit: 1000
            })
        );
        assert_eq!(
            p2.and_then(|p| p.next(1000)),
            Some(PageSpec {
                offset: 2000,
                limit: 1000
            })
        );
        assert_eq!(p.next(345), None);
        assert_eq!(p.next(0), None);
        // 2,345 rows in pages of 1,000: offsets 0, 1000, 2000, and the third page is short.
        let mut offsets = vec![];
        let mut page = Some(PageSpec::first(1000));
        let mut remaining = 2345usize;
        while let Some(p) = page {
            offsets.push(p.offset);
            let got = remaining.min(p.limit as usize);
            remaining -= got;
            page = p.next(got);
        }
        assert_eq!(offsets, vec![0, 1000, 2000]);
        // An exact multiple needs one more (empty) request to know it is the end.
        let mut requests = 0;
        let mut page = Some(PageSpec::first(500));
        let mut remaining = 1000usize;
        while let Some(p) = page {
            requests += 1;
            let got = remaining.min(p.limit as usize);
            remaining -= got;
            page = p.next(got);
        }
        assert_eq!(requests, 3);
    }

    #[test]
    fn backoff_doubles_honours_retry_after_and_is_capped() {
        let p = RetryPolicy {
            max_retries: 4,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
        };
        assert_eq!(p.delay(0, None), Duration::from_millis(100));
        assert_eq!(p.delay(1, None), Duration::from_millis(200));
        assert_eq!(p.delay(3, None), Duration::from_millis(800));
        assert_eq!(p.delay(10, None), Duration::from_secs(2));
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(1))),
            Duration::from_secs(1)
        );
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(3600))),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn error_bodies_keep_the_servers_code_and_message() {
        assert_eq!(
            describe_error_body(
                403,
                r#"{"code":"invalid_app_token","error":true,"message":"Invalid app_token specified"}"#
            ),
            (
                "invalid_app_token".to_owned(),
                "Invalid app_token specified".to_owned()
            )
        );
        assert_eq!(
            describe_error_body(502, "Bad gateway"),
            ("http_502".to_owned(), "Bad gateway".to_owned())
        );
        assert_eq!(
            describe_error_body(500, ""),
            ("http_500".to_owned(), "(no message)".to_owned())
        );
    }

    #[test]
    fn records_are_flat_strings() -> Result<(), SourceError> {
        let rows = parse_records(
            "socrata",
            br#"[{"hcpcs":"E0601","fee":"80.10","n":3,"ok":true,"gone":null}]"#,
        )?;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].get("hcpcs").map(String::as_str), Some("E0601"));
        assert_eq!(rows[0].get("n").map(String::as_str), Some("3"));
        assert_eq!(rows[0].get("ok").map(String::as_str), Some("true"));
        assert!(!rows[0].contains_key("gone"));
        assert!(parse_records("socrata", br#"{"a":1}"#).is_err());
        assert!(parse_records("socrata", br#"[1]"#).is_err());
        assert!(parse_records("socrata", b"<html>").is_err());
        Ok(())
    }
}
