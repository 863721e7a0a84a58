//! The OpenAPI 3.1 description. Routes contribute their own paths; this module
//! adds what every operation shares, so it cannot be forgotten on one of them:
//! the bearer scheme (its scopes list the roles allowed), and the problem
//! responses each kind of operation can return.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Spec, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::error::{FieldError, PROBLEM_JSON, Problem};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "rwa",
        description = "Digital transfer agent for tokenized real-world assets. Errors are \
            `application/problem+json`; credentials are `Authorization: Bearer …` API keys (`rwa_…`) or \
            users' access tokens, whose role must be among the operation's security scopes.",
    ),
    components(schemas(Problem, FieldError)),
    modifiers(&SharedResponses),
)]
pub(crate) struct ApiDoc;

/// Name of the bearer security scheme.
pub const SECURITY_SCHEME: &str = "api_key";

struct SharedResponses;

impl Modify for SharedResponses {
    fn modify(&self, spec: &mut Spec) {
        let components = spec.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            SECURITY_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key (`rwa_` followed by 40 characters) or a user's access token \
                         from `POST /v1/auth/login` (a JWT, 15 minutes by default)",
                    ))
                    .build(),
            ),
        );
    }
}

/// Adds the shared problem responses; called once the routes' paths are merged.
pub(crate) fn add_problem_responses(spec: &mut Spec) {
    for (path, item) in spec.paths.paths.iter_mut() {
        let has_id = path.contains('{');
        let limited = !path.starts_with("/health");
        let ops = [
            item.get.as_mut(),
            item.post.as_mut(),
            item.put.as_mut(),
            item.patch.as_mut(),
            item.delete.as_mut(),
        ];
        for op in ops.into_iter().flatten() {
            add_to_operation(op, has_id, limited);
        }
    }
}

fn add_to_operation(op: &mut Operation, has_id: bool, limited: bool) {
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let mut add = |code: &str, what: &str| {
        op.responses
            .responses
            .entry(code.to_owned())
            .or_insert_with(|| {
                ResponseBuilder::new()
                    .description(what)
                    .content(
                        PROBLEM_JSON,
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("Problem")))
                            .build(),
                    )
                    .build()
                    .into()
            });
    };
    if secured {
        add(
            "401",
            "`/problems/unauthorized`: missing, unknown or revoked API key, or an expired or \
             invalid access token, or its session ended (the detail says which)",
        );
        add(
            "403",
            "`/problems/forbidden`: the credential's role is not among this operation's scopes",
        );
        add(
            "503",
            "`/problems/unavailable`: a dependency is down; retry later",
        );
        add(
            "504",
            "`/problems/timeout`: the request took longer than the configured timeout",
        );
    }
    if has_id {
        add(
            "404",
            "`/problems/not-found`: no such resource in the caller's organization",
        );
    }
    if op.request_body.is_some() {
        add(
            "400",
            "`/problems/bad-request`: malformed or too deeply nested JSON",
        );
        add(
            "413",
            "`/problems/payload-too-large`: body over the configured limit",
        );
        add(
            "415",
            "`/problems/unsupported-media-type`: body is not JSON",
        );
    }
    if op.request_body.is_some() || op.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
        add(
            "422",
            "`/problems/validation`: `errors` names each field to fix",
        );
    }
    if limited {
        add(
            "429",
            "`/problems/rate-limited`: too many requests from this address or with this \
             credential; `Retry-After` says when to retry, `RateLimit-Limit`, \
             `RateLimit-Remaining` and `RateLimit-Reset` describe the bucket",
        );
    }
    add(
        "500",
        "`/problems/internal`: an internal error; quote `request_id`",
    );
}
