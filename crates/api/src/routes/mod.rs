//! One module per resource; each returns an `OpenApiRouter` so a route cannot
//! exist without its OpenAPI description.

pub(crate) mod api_keys;
pub(crate) mod audit;
pub(crate) mod callbacks;
pub(crate) mod events;
pub(crate) mod health;
pub(crate) mod holdings;
pub(crate) mod investors;
pub(crate) mod jobs;
pub(crate) mod metrics;
pub(crate) mod notifications;
pub(crate) mod operations;
pub(crate) mod org;
pub(crate) mod rule_sets;
pub(crate) mod sessions;
#[cfg(feature = "test-hooks")]
pub(crate) mod test_hooks;
pub(crate) mod tokens;
pub(crate) mod transfers;
pub(crate) mod users;
pub(crate) mod watched_contracts;
pub(crate) mod webhooks;

use rwa_domain::page::Page;
use serde::Serialize;
use utoipa::ToSchema;

/// Every list: `{items, next_cursor}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct ListView<T> {
    items: Vec<T>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<String>,
}

impl<T> ListView<T> {
    pub(crate) fn from_page<U: Into<T>>(page: Page<U>) -> Self {
        Self {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        }
    }
}
