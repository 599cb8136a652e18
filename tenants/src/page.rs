//! Cursor pagination. Lists are ordered by id (UUIDv7, so creation order); the cursor is the last id
//! of the page, base64url-encoded so clients treat it as opaque and we can change its content later.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use uuid::Uuid;

/// Default page size when the client gives none.
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest page a client may ask for.
pub const MAX_LIMIT: u32 = 500;

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// Rows to return (1..=MAX_LIMIT).
    pub limit: u32,
    /// Return rows with an id strictly greater than this one.
    pub after: Option<Uuid>,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            limit: DEFAULT_LIMIT,
            after: None,
        }
    }
}

/// The cursor is not one this server issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the cursor is not one this API returned")]
pub struct InvalidCursor;

pub fn encode_cursor(last: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(last.as_bytes())
}

pub fn decode_cursor(cursor: &str) -> Result<Uuid, InvalidCursor> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| InvalidCursor)?;
    Uuid::from_slice(&bytes).map_err(|_| InvalidCursor)
}

/// One page of a list: `{"data": [...], "next_cursor": "…"}`, `next_cursor` absent on the last page.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    /// This page's rows in id (creation) order; at most the requested limit.
    pub data: Vec<T>,
    /// Opaque cursor to pass as `cursor` for the next page; `None` (and absent from the JSON) on
    /// the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched in id order: the extra row only tells that
    /// another page exists.
    pub fn from_rows(mut rows: Vec<T>, limit: u32, id_of: impl Fn(&T) -> Uuid) -> Self {
        let limit = limit as usize;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = if more {
            rows.last().map(|r| encode_cursor(id_of(r)))
        } else {
            None
        };
        Self {
            data: rows,
            next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_rejects_garbage() {
        let id = Uuid::now_v7();
        assert_eq!(decode_cursor(&encode_cursor(id)), Ok(id));
        assert_eq!(decode_cursor("!!"), Err(InvalidCursor));
        assert_eq!(decode_cursor("AAAA"), Err(InvalidCursor));
    }

    #[test]
    fn page_from_rows() {
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let p = Page::from_rows(ids.clone(), 2, |u| *u);
        assert_eq!(p.data.len(), 2);
        assert_eq!(p.next_cursor, Some(encode_cursor(ids[1])));
        let last = Page::from_rows(ids[..2].to_vec(), 2, |u| *u);
        assert_eq!(last.next_cursor, None);
    }
}
