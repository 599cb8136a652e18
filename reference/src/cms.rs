//! The data.cms.gov data API: `GET {base}/data-api/v1/dataset/{uuid}/data?size=N&offset=M&filter[Col]=value`.
//! No token, no SoQL: conditions are equality filters only. Rows come in the dataset's stored
//! order, which is fixed for a published dataset version, so `offset` paging is stable.

use crate::socrata::{encode_query_value, parse_base};
use crate::source::{HttpFetcher, PageSpec, Query, Record, ReferenceSource, SourceError};

/// The data API serves at most this many rows per request.
pub const MAX_SIZE: u32 = 5_000;

/// A CMS data-API host.
#[derive(Debug, Clone)]
pub struct CmsDataApi {
    /// `https://data.cms.gov` (a path prefix is kept).
    base: url::Url,
    /// The client and its retry policy.
    http: HttpFetcher,
}

impl CmsDataApi {
    pub fn new(base: &str, http: HttpFetcher) -> Result<Self, SourceError> {
        Ok(Self {
            base: parse_base(base)?,
            http,
        })
    }

    /// The request URL for one page of `query`.
    pub fn page_url(&self, query: &Query, page: PageSpec) -> Result<url::Url, SourceError> {
        let dataset = uuid::Uuid::parse_str(&query.dataset).map_err(|_| {
            SourceError::Invalid(format!(
                "`{}` is not a CMS dataset id (a UUID)",
                query.dataset
            ))
        })?;
        if query.soql_where.is_some() {
            return Err(SourceError::Invalid(
                "the CMS data API takes no SoQL `$where`; use equality filters".into(),
            ));
        }
        if page.limit == 0 || page.limit > MAX_SIZE {
            return Err(SourceError::Invalid(format!(
                "the page size must be 1 to {MAX_SIZE}"
            )));
        }
        let mut query_string = format!("size={}&offset={}", page.limit, page.offset);
        for (column, value) in &query.filters {
            if column.is_empty() || column.contains(['[', ']']) {
                return Err(SourceError::Invalid(format!(
                    "`{column}` is not a column name"
                )));
            }
            query_string.push_str(&format!(
                "&filter[{}]={}",
                encode_query_value(column),
                encode_query_value(value)
            ));
        }
        let path = format!(
            "{}/data-api/v1/dataset/{dataset}/data",
            self.base.path().trim_end_matches('/')
        );
        let mut url = self.base.clone();
        url.set_path(&path);
        url.set_query(Some(&query_string));
        Ok(url)
    }
}

impl ReferenceSource for CmsDataApi {
    fn name(&self) -> &'static str {
        "cms"
    }

    fn max_page_size(&self) -> u32 {
        MAX_SIZE
    }

    fn check(&self, query: &Query, page: PageSpec) -> Result<(), SourceError> {
        self.page_url(query, page).map(|_| ())
    }

    async fn fetch_page(&self, query: &Query, page: PageSpec) -> Result<Vec<Record>, SourceError> {
        let url = self.page_url(query, page)?;
        let body = self.http.get(self.name(), &url, &[]).await?;
        crate::source::parse_records(self.name(), &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::RetryPolicy;

    #[test]
    fn page_urls_follow_the_data_api_shape() -> Result<(), SourceError> {
        let api = CmsDataApi::new(
            "https://data.cms.gov/",
            HttpFetcher::new(RetryPolicy::default())?,
        )?;
        let q = Query {
            dataset: "5d0b7a5e-7c5a-4d2f-9d0b-0e6a1f0f4e11".into(),
            select: vec![],
            soql_where: None,
            filters: vec![("CATG".into(), "CR".into()), ("TX (NR)".into(), "1".into())],
        };
        let url = api.page_url(
            &q,
            PageSpec {
                offset: 200,
                limit: 100,
            },
        )?;
        assert_eq!(
            url.as_str(),
            "https://data.cms.gov/data-api/v1/dataset/5d0b7a5e-7c5a-4d2f-9d0b-0e6a1f0f4e11/data\
             ?size=100&offset=200&filter[CATG]=CR&filter[TX%20%28NR%29]=1"
        );
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(pairs[3], ("filter[TX (NR)]".into(), "1".into()));

        let mut bad = q.clone();
        bad.dataset = "abcd-1234".into();
        assert!(api.page_url(&bad, PageSpec::first(10)).is_err());
        let mut bad = q.clone();
        bad.soql_where = Some("a = 'b'".into());
        assert!(api.page_url(&bad, PageSpec::first(10)).is_err());
        assert!(api.page_url(&q, PageSpec::first(5_001)).is_err());
        Ok(())
    }
}
