//! The organization's notification preferences (`/v1/org/notifications`):
//! which event types are mailed or sent by WhatsApp, and to whom (admin;
//! auditors read).

use axum::extract::State;
use chrono::{DateTime, Utc};
use rwa_domain::notification::{
    EmailPreferences, NotificationSettings, WhatsAppPreferences, parse_language, parse_phone,
    parse_recipients, parse_template,
};
use rwa_domain::webhook::EventSelector;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Authorized, roles};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::Json;
use crate::routes::webhooks::EventPattern;
use crate::state::ApiState;

pub(crate) fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(get_notifications, put_notifications))
}

/// An e-mail address such as `ops@example.com`.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(transparent)]
#[schema(
    max_length = 254,
    pattern = r"^[^@\s\x00-\x1f\x7f-\x9f]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"
)]
pub(crate) struct Recipient(String);

/// E-mail: recipients and the event types mailed. A webhook turned off for
/// failing is always mailed.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EmailBody {
    /// 1 to 20 addresses.
    #[schema(min_items = 1, max_items = 20)]
    to: Vec<Recipient>,
    /// 1 to 50 event type patterns (`*`, `<noun>.*`, `<noun>.<state>`).
    #[schema(min_items = 1, max_items = 50)]
    events: Vec<EventPattern>,
}

/// A phone number in international form: `+` (optional), then 8 to 15
/// digits starting with the country code.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(transparent)]
#[schema(pattern = r"^\s*\+?[1-9][0-9]{7,14}\s*$")]
pub(crate) struct PhoneText(String);

/// WhatsApp: recipients, the approved template (it gets three body
/// parameters: the organization, the event type, a one-line summary), its
/// language, and the event types sent.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WhatsAppBody {
    /// 1 to 20 numbers.
    #[schema(min_items = 1, max_items = 20)]
    to: Vec<PhoneText>,
    /// The template's name: lower-case letters, digits and `_`.
    #[schema(min_length = 1, max_length = 512, pattern = "^[a-z0-9_]+$")]
    template: String,
    /// `en`, `en_US`, ….
    #[schema(pattern = "^[a-z]{2,3}(_[A-Z]{2})?$")]
    language: String,
    /// 1 to 50 event type patterns.
    #[schema(min_items = 1, max_items = 50)]
    events: Vec<EventPattern>,
}

/// Body of `PUT /v1/org/notifications`: the whole preferences (a channel
/// absent or null is off).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NotificationsBody {
    #[serde(default)]
    #[schema(nullable)]
    email: Option<EmailBody>,
    #[serde(default)]
    #[schema(nullable)]
    whatsapp: Option<WhatsAppBody>,
}

/// The organization's notification preferences.
#[derive(Serialize, ToSchema)]
pub(crate) struct NotificationsView {
    /// E-mail (absent: off).
    email: Option<EmailBody>,
    /// WhatsApp (absent: off).
    whatsapp: Option<WhatsAppBody>,
    updated_at: Option<DateTime<Utc>>,
}

impl From<NotificationSettings> for NotificationsView {
    fn from(s: NotificationSettings) -> Self {
        Self {
            email: s.email.map(|e| EmailBody {
                to: e.to.into_iter().map(Recipient).collect(),
                events: e
                    .events
                    .to_strings()
                    .into_iter()
                    .map(EventPattern)
                    .collect(),
            }),
            whatsapp: s.whatsapp.map(|w| WhatsAppBody {
                to: w.to.iter().map(|p| PhoneText(p.e164())).collect(),
                template: w.template,
                language: w.language,
                events: w
                    .events
                    .to_strings()
                    .into_iter()
                    .map(EventPattern)
                    .collect(),
            }),
            updated_at: s.updated_at,
        }
    }
}

fn whatsapp_preferences(
    w: &WhatsAppBody,
    errors: &mut Vec<FieldError>,
) -> Option<WhatsAppPreferences> {
    if w.to.is_empty() || w.to.len() > 20 {
        errors.push(FieldError {
            field: "whatsapp.to".into(),
            message: "must list 1 to 20 numbers".into(),
        });
    }
    let to: Vec<_> =
        w.to.iter()
            .enumerate()
            .filter_map(|(i, p)| {
                parse_phone(&p.0, &format!("whatsapp.to[{i}]"))
                    .map_err(|e| errors.push(e.into()))
                    .ok()
            })
            .collect();
    let template = parse_template("whatsapp.template", &w.template)
        .map_err(|e| errors.push(e.into()))
        .ok();
    let language = parse_language("whatsapp.language", &w.language)
        .map_err(|e| errors.push(e.into()))
        .ok();
    let events: Vec<String> = w.events.iter().map(|p| p.0.clone()).collect();
    let events = EventSelector::parse("whatsapp.events", &events)
        .map_err(|e| errors.push(e.into()))
        .ok();
    let (Some(template), Some(language), Some(events)) = (template, language, events) else {
        return None;
    };
    Some(WhatsAppPreferences {
        to,
        template,
        language,
        events,
    })
}

/// The preferences.
#[utoipa::path(get, path = "/v1/org/notifications", tag = "organization",
    security(("api_key" = ["admin", "auditor"])),
    responses((status = 200, body = NotificationsView)))]
async fn get_notifications(
    caller: Authorized<roles::AdminOrAuditor>,
    State(state): State<ApiState>,
) -> ApiResult<axum::Json<NotificationsView>> {
    Ok(axum::Json(
        state.notifications.get(caller.org_id).await?.into(),
    ))
}

/// Replaces the preferences. A channel turned on starts after the newest
/// event; it needs a server configured for it (`RWA_SMTP_URL`,
/// `RWA_WHATSAPP_URL`), or 422.
#[utoipa::path(put, path = "/v1/org/notifications", tag = "organization",
    security(("api_key" = ["admin"])),
    request_body = NotificationsBody,
    responses((status = 200, body = NotificationsView)))]
async fn put_notifications(
    caller: Authorized<roles::Admin>,
    State(state): State<ApiState>,
    Json(body): Json<NotificationsBody>,
) -> ApiResult<axum::Json<NotificationsView>> {
    let mut errors: Vec<FieldError> = Vec::new();
    let email = match &body.email {
        None => None,
        Some(_) if !state.settings.email_configured => {
            errors.push(FieldError {
                field: "email".into(),
                message: "this server sends no e-mail (RWA_SMTP_URL is not set)".into(),
            });
            None
        }
        Some(e) => {
            let to: Vec<String> = e.to.iter().map(|r| r.0.clone()).collect();
            let to = parse_recipients("email.to", &to)
                .map_err(|e| errors.push(e.into()))
                .ok();
            let events: Vec<String> = e.events.iter().map(|p| p.0.clone()).collect();
            let events = EventSelector::parse("email.events", &events)
                .map_err(|e| errors.push(e.into()))
                .ok();
            to.zip(events)
                .map(|(to, events)| EmailPreferences { to, events })
        }
    };
    let whatsapp = match &body.whatsapp {
        None => None,
        Some(_) if !state.settings.whatsapp_configured => {
            errors.push(FieldError {
                field: "whatsapp".into(),
                message: "this server sends no WhatsApp messages (RWA_WHATSAPP_URL is not set)"
                    .into(),
            });
            None
        }
        Some(w) => whatsapp_preferences(w, &mut errors),
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let settings = NotificationSettings {
        email,
        whatsapp,
        updated_at: None,
    };
    let saved = state
        .notifications
        .put(caller.org_id, &settings, &caller.actor())
        .await?;
    Ok(axum::Json(saved.into()))
}
