//! Cursor pagination shared by every list: `?limit=&cursor=` → `{items, next_cursor}`.
//! Cursors are the id of the last item returned; ids are UUIDv7, so "after this id"
//! is stable under concurrent inserts.

use uuid::Uuid;

use crate::ValidationError;

/// Largest page a caller may ask for.
pub const MAX_LIMIT: u32 = 200;
/// The pattern of a cursor: empty, or a hyphenated UUID.
pub const CURSOR_PATTERN: &str =
    "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})?$";
/// Page size when the caller names none.
pub const DEFAULT_LIMIT: u32 = 50;

/// A validated page request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// At most this many items.
    pub limit: u32,
    /// Items strictly after this id.
    pub after: Option<Uuid>,
}

impl PageRequest {
    /// Validates raw query values; errors name `limit` or `cursor`.
    pub fn parse(limit: Option<u32>, cursor: Option<&str>) -> Result<Self, ValidationError> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(ValidationError::new(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let after = match cursor {
            None | Some("") => None,
            // Only the hyphenated form this API returns (the declared pattern),
            // not every spelling a UUID parser would take.
            Some(c) => Some(
                Some(c)
                    .filter(|c| c.len() == 36)
                    .and_then(|c| Uuid::parse_str(c).ok())
                    .ok_or_else(|| {
                        ValidationError::new("cursor", "is not a cursor returned by this list")
                    })?,
            ),
        };
        Ok(Self { limit, after })
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            limit: DEFAULT_LIMIT,
            after: None,
        }
    }
}

/// One page of results.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, in id order.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` fetched rows: the extra row only proves
    /// that another page exists.
    pub fn from_overfetch(mut rows: Vec<T>, limit: u32, id_of: impl Fn(&T) -> Uuid) -> Self {
        let has_more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = if has_more {
            rows.last().map(|r| id_of(r).to_string())
        } else {
            None
        };
        Self {
            items: rows,
            next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_cursors_are_validated_by_field() {
        assert_eq!(PageRequest::parse(None, None).unwrap().limit, DEFAULT_LIMIT);
        assert_eq!(
            PageRequest::parse(Some(0), None).unwrap_err().field,
            "limit"
        );
        assert_eq!(
            PageRequest::parse(Some(201), None).unwrap_err().field,
            "limit"
        );
        assert_eq!(
            PageRequest::parse(None, Some("x")).unwrap_err().field,
            "cursor"
        );
    }

    #[test]
    fn overfetch_sets_cursor_only_when_more_exist() {
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let page = Page::from_overfetch(ids.clone(), 2, |u| *u);
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.next_cursor, Some(ids[1].to_string()));
        let last = Page::from_overfetch(ids[..2].to_vec(), 2, |u| *u);
        assert_eq!(last.next_cursor, None);
    }
}
