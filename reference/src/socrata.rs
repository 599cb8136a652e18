//! Socrata's SODA 2.x query API: `GET {base}/resource/{4x4}.json?$select=…&$where=…&$order=:id&$limit=N&$offset=M`
//! with the app token in the `X-App-Token` header (never in the URL, so it stays out of logs).
//!
//! Equality filters are folded into `$where` as SoQL comparisons with quoted string literals
//! (`state = 'TX'`), so one expression carries every condition. The order is always `:id`, the
//! row id, which keeps `$offset` paging stable while the dataset is not being replaced.

use crate::source::{HttpFetcher, PageSpec, Query, Record, ReferenceSource, SourceError};

/// SODA 2.x refuses a `$limit` above this.
pub const MAX_LIMIT: u32 = 50_000;

/// A Socrata domain.
#[derive(Clone)]
pub struct Socrata {
    /// `https://data.example.gov` (a path prefix is kept).
    base: url::Url,
    /// Sent as `X-App-Token` when set.
    app_token: Option<String>,
    /// The client and its retry policy.
    http: HttpFetcher,
}

impl std::fmt::Debug for Socrata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socrata")
            .field("base", &self.base.as_str())
            .field("app_token", &self.app_token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// A SoQL string literal: single quotes, an inner quote doubled (`O'Brien` → `'O''Brien'`).
pub fn soql_string(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Whether `name` is a plain SoQL column name (`hcpcs`, `short_description`).
pub fn is_column_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `id` is a Socrata 4x4 (`abcd-1234`).
pub fn is_four_by_four(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() == 9
        && b[4] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// Percent-encodes a query value: everything but RFC 3986 unreserved characters and `:` `,`
/// (which SoQL uses and query strings allow) is escaped, spaces as `%20`.
pub fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':' | b',') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `$where` expression of `query`: its SoQL, parenthesised, and each equality filter as
/// `column = 'value'`, joined with `AND`.
pub fn where_clause(query: &Query) -> Result<Option<String>, SourceError> {
    let mut parts = Vec::new();
    if let Some(w) = query.soql_where.as_deref().map(str::trim)
        && !w.is_empty()
    {
        parts.push(if query.filters.is_empty() {
            w.to_owned()
        } else {
            format!("({w})")
        });
    }
    for (column, value) in &query.filters {
        if !is_column_name(column) {
            return Err(SourceError::Invalid(format!(
                "`{column}` is not a SoQL column name"
            )));
        }
        parts.push(format!("{column} = {}", soql_string(value)));
    }
    Ok((!parts.is_empty()).then(|| parts.join(" AND ")))
}

/// `base` as a URL, without a trailing slash in its path.
pub(crate) fn parse_base(base: &str) -> Result<url::Url, SourceError> {
    let url = url::Url::parse(base.trim_end_matches('/'))
        .map_err(|e| SourceError::Invalid(format!("base URL `{base}`: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.query().is_some() {
        return Err(SourceError::Invalid(format!(
            "base URL `{base}` must be http(s) without a query"
        )));
    }
    Ok(url)
}

impl Socrata {
    pub fn new(
        base: &str,
        app_token: Option<String>,
        http: HttpFetcher,
    ) -> Result<Self, SourceError> {
        Ok(Self {
            base: parse_base(base)?,
            app_token: app_token.filter(|t| !t.is_empty()),
            http,
        })
    }

    /// The request URL for one page of `query`.
    pub fn page_url(&self, query: &Query, page: PageSpec) -> Result<url::Url, SourceError> {
        if !is_four_by_four(&query.dataset) {
            return Err(SourceError::Invalid(format!(
                "`{}` is not a Socrata dataset id (four lowercase letters or digits, a hyphen, four more)",
                query.dataset
            )));
        }
        if page.limit == 0 || page.limit > MAX_LIMIT {
            return Err(SourceError::Invalid(format!(
                "the page size must be 1 to {MAX_LIMIT}"
            )));
        }
        let mut params = Vec::new();
        if !query.select.is_empty() {
            if let Some(bad) = query.select.iter().find(|c| !is_column_name(c)) {
                return Err(SourceError::Invalid(format!(
                    "`{bad}` is not a SoQL column name"
                )));
            }
            params.push(("$select", query.select.join(",")));
        }
        if let Some(w) = where_clause(query)? {
            params.push(("$where", w));
        }
        params.push(("$order", ":id".to_owned()));
        params.push(("$limit", page.limit.to_string()));
        params.push(("$offset", page.offset.to_string()));
        let query_string = params
            .iter()
            .map(|(k, v)| format!("{k}={}", encode_query_value(v)))
            .collect::<Vec<_>>()
            .join("&");
        let path = format!(
            "{}/resource/{}.json",
            self.base.path().trim_end_matches('/'),
            query.dataset
        );
        let mut url = self.base.clone();
        url.set_path(&path);
        url.set_query(Some(&query_string));
        Ok(url)
    }
}

impl ReferenceSource for Socrata {
    fn name(&self) -> &'static str {
        "socrata"
    }

    fn max_page_size(&self) -> u32 {
        MAX_LIMIT
    }

    fn check(&self, query: &Query, page: PageSpec) -> Result<(), SourceError> {
        self.page_url(query, page).map(|_| ())
    }

    async fn fetch_page(&self, query: &Query, page: PageSpec) -> Result<Vec<Record>, SourceError> {
        let url = self.page_url(query, page)?;
        let headers: Vec<(&'static str, String)> = self
            .app_token
            .iter()
            .map(|t| ("X-App-Token", t.clone()))
            .collect();
        let body = self.http.get(self.name(), &url, &headers).await?;
        crate::source::parse_records(self.name(), &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::RetryPolicy;

    fn socrata(base: &str) -> Result<Socrata, SourceError> {
        Socrata::new(
            base,
            Some("tok".into()),
            HttpFetcher::new(RetryPolicy::default())?,
        )
    }

    #[test]
    fn soql_literals_double_quotes() {
        assert_eq!(soql_string("TX"), "'TX'");
        assert_eq!(soql_string("O'Brien"), "'O''Brien'");
        assert_eq!(soql_string(""), "''");
    }

    #[test]
    fn where_combines_soql_and_filters() -> Result<(), SourceError> {
        let mut q = Query {
            dataset: "abcd-1234".into(),
            ..Default::default()
        };
        assert_eq!(where_clause(&q)?, None);
        q.soql_where = Some("year >= 2026 OR year = 2025".into());
        assert_eq!(
            where_clause(&q)?.as_deref(),
            Some("year >= 2026 OR year = 2025")
        );
        q.filters = vec![
            ("state".into(), "TX".into()),
            ("note".into(), "it's".into()),
        ];
        assert_eq!(
            where_clause(&q)?.as_deref(),
            Some("(year >= 2026 OR year = 2025) AND state = 'TX' AND note = 'it''s'")
        );
        q.filters = vec![("drop table".into(), "x".into())];
        assert!(where_clause(&q).is_err());
        Ok(())
    }

    #[test]
    fn page_urls_carry_the_soql_parameters_encoded() -> Result<(), SourceError> {
        let s = socrata("https://data.example.gov/")?;
        let q = Query {
            dataset: "abcd-1234".into(),
            select: vec!["hcpcs".into(), "short_description".into()],
            soql_where: Some("state = 'TX' AND fee > 10".into()),
            filters: vec![],
        };
        let url = s.page_url(
            &q,
            PageSpec {
                offset: 2000,
                limit: 1000,
            },
        )?;
        assert_eq!(
            url.as_str(),
            "https://data.example.gov/resource/abcd-1234.json?$select=hcpcs,short_description\
             &$where=state%20%3D%20%27TX%27%20AND%20fee%20%3E%2010&$order=:id&$limit=1000&$offset=2000"
        );
        // What a server decodes is exactly the SoQL that was meant.
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(
            pairs,
            vec![
                ("$select".into(), "hcpcs,short_description".into()),
                ("$where".into(), "state = 'TX' AND fee > 10".into()),
                ("$order".into(), ":id".into()),
                ("$limit".into(), "1000".into()),
                ("$offset".into(), "2000".into()),
            ]
        );
        // A base with a path prefix keeps it; `&`, `+` and `#` in values cannot break the query.
        let s = socrata("http://127.0.0.1:8080/soda")?;
        let q = Query {
            dataset: "zz99-aa11".into(),
            select: vec![],
            soql_where: Some("name = 'A&B+C#1'".into()),
            filters: vec![],
        };
        let url = s.page_url(&q, PageSpec::first(10))?;
        assert_eq!(url.path(), "/soda/resource/zz99-aa11.json");
        assert!(url.as_str().contains("%26B%2BC%231"), "{url}");
        let w: Vec<String> = url
            .query_pairs()
            .filter(|(k, _)| k == "$where")
            .map(|(_, v)| v.into_owned())
            .collect();
        assert_eq!(w, vec!["name = 'A&B+C#1'".to_owned()]);
        Ok(())
    }

    #[test]
    fn bad_requests_are_refused_before_sending() -> Result<(), SourceError> {
        let s = socrata("https://data.example.gov")?;
        let q = |d: &str| Query {
            dataset: d.into(),
            ..Default::default()
        };
        assert!(s.page_url(&q("ABCD-1234"), PageSpec::first(10)).is_err());
        assert!(s.page_url(&q("abcd1234"), PageSpec::first(10)).is_err());
        assert!(s.page_url(&q("../x-1234"), PageSpec::first(10)).is_err());
        assert!(s.page_url(&q("abcd-1234"), PageSpec::first(0)).is_err());
        assert!(
            s.page_url(&q("abcd-1234"), PageSpec::first(50_001))
                .is_err()
        );
        assert!(s.page_url(&q("abcd-1234"), PageSpec::first(50_000)).is_ok());
        assert!(socrata("ftp://x").is_err());
        assert!(socrata("not a url").is_err());
        Ok(())
    }

    #[test]
    fn debug_hides_the_token() -> Result<(), SourceError> {
        let s = socrata("https://data.example.gov")?;
        let d = format!("{s:?}");
        assert!(!d.contains("tok\"") && d.contains("[redacted]"), "{d}");
        Ok(())
    }
}
