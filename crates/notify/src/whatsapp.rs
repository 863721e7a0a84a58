//! The WhatsApp Business Cloud API connector (`RWA_WHATSAPP_URL`,
//! `RWA_WHATSAPP_TOKEN`, `RWA_WHATSAPP_PHONE_ID`): template messages sent with
//! `POST {base_url}/{version}/{phone_number_id}/messages` under the bearer
//! token, each attempt bounded by a timeout. Transient failures (unreachable,
//! timeout, 429, 5xx) are retried, waiting what `Retry-After` asks when that is
//! short and with jittered exponential backoff otherwise; a longer
//! `Retry-After` is handed back to the caller ([`WhatsAppError::RetryAfter`])
//! so a worker reschedules instead of sleeping. Other 4xx answers are
//! permanent. A circuit breaker stops calling a dead API; its state is
//! `checks.whatsapp` in `/health/detailed`.
//!
//! Counted in `rwa_notify_whatsapp_messages_total{outcome}` (`sent`,
//! `rejected`, `malformed`, `failed`, `deferred`, `unavailable`) and
//! `rwa_notify_whatsapp_breaker_transitions_total{to}`.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use rand::Rng;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use rwa_chain::rpc::Breaker;
use rwa_domain::health::{CheckReport, HealthCheck, HealthStatus};
use rwa_domain::notification::Phone;
use serde::Deserialize;
use serde_json::{Value, json};

/// The breaker's state, as [`WhatsApp::breaker_state`] reports it.
pub use rwa_chain::rpc::BreakerState;

/// The longest API error message kept (in errors, logs and health details).
const MAX_MESSAGE_CHARS: usize = 200;

/// How to reach the Cloud API and how hard to try.
#[derive(Clone)]
pub struct WhatsAppSettings {
    /// Scheme, host and optional path prefix, without a trailing `/`
    /// (`https://graph.facebook.com`).
    pub base_url: String,
    /// The access token; private so that only [`WhatsAppSettings::parse`]
    /// sets it, and never printed (see the `Debug` impl).
    token: String,
    /// The sending phone number's ID (digits), not the number itself.
    pub phone_number_id: String,
    /// Graph API version in the path (`v21.0`).
    pub api_version: String,
    /// Deadline of one attempt, connecting included (10 s).
    pub timeout: Duration,
    /// Attempts per message, the first included (3).
    pub max_attempts: u32,
    /// The longest `Retry-After` waited for inline (30 s); a longer one ends
    /// the call with [`WhatsAppError::RetryAfter`].
    pub max_retry_wait: Duration,
    /// Wait before the first retry without `Retry-After` (500 ms), doubled
    /// before each next one, with jitter.
    pub retry_backoff: Duration,
    /// Consecutive failed messages that open the breaker (5).
    pub breaker_threshold: u32,
    /// How long an open breaker refuses before letting one probe through (30 s).
    pub breaker_cool_down: Duration,
}

impl fmt::Debug for WhatsAppSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WhatsAppSettings")
            .field("base_url", &self.base_url)
            .field("token", &"[redacted]")
            .field("phone_number_id", &self.phone_number_id)
            .field("api_version", &self.api_version)
            .field("timeout", &self.timeout)
            .field("max_attempts", &self.max_attempts)
            .field("max_retry_wait", &self.max_retry_wait)
            .field("retry_backoff", &self.retry_backoff)
            .field("breaker_threshold", &self.breaker_threshold)
            .field("breaker_cool_down", &self.breaker_cool_down)
            .finish()
    }
}

impl WhatsAppSettings {
    /// Settings from the three variables, with the defaults above. Each
    /// problem is one sentence naming its variable; none repeats the token
    /// or the URL (which could carry credentials).
    pub fn parse(
        url: &str,
        token: &str,
        phone_id: &str,
        production: bool,
    ) -> Result<Self, Vec<String>> {
        let mut errors = Vec::new();

        let base_url = match check_url(url.trim(), production) {
            Ok(base) => base,
            Err(e) => {
                errors.push(e);
                String::new()
            }
        };

        if token.is_empty() {
            errors.push("RWA_WHATSAPP_TOKEN must be set to the Cloud API access token.".into());
        } else if token.chars().any(char::is_whitespace) {
            errors.push(
                "RWA_WHATSAPP_TOKEN must not contain spaces or line breaks; check how it was copied."
                    .into(),
            );
        } else if !token.chars().all(|c| c.is_ascii_graphic()) {
            // It travels in an HTTP header, which takes visible ASCII only.
            errors.push("RWA_WHATSAPP_TOKEN must contain printable ASCII characters only.".into());
        }

        let phone_id = phone_id.trim();
        if phone_id.is_empty() {
            errors.push(
                "RWA_WHATSAPP_PHONE_ID must be set to the phone number ID of the WhatsApp Business account."
                    .into(),
            );
        } else if !phone_id.bytes().all(|b| b.is_ascii_digit()) {
            errors.push(
                "RWA_WHATSAPP_PHONE_ID must contain digits only: it is the phone number ID shown in the WhatsApp Business dashboard, not the phone number."
                    .into(),
            );
        }

        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            base_url,
            token: token.to_owned(),
            phone_number_id: phone_id.to_owned(),
            api_version: "v21.0".into(),
            timeout: Duration::from_secs(10),
            max_attempts: 3,
            max_retry_wait: Duration::from_secs(30),
            retry_backoff: Duration::from_millis(500),
            breaker_threshold: 5,
            breaker_cool_down: Duration::from_secs(30),
        })
    }

    /// The messages endpoint.
    fn endpoint(&self) -> String {
        format!(
            "{}/{}/{}/messages",
            self.base_url, self.api_version, self.phone_number_id
        )
    }
}

/// The URL's problem as a sentence, or the base URL without a trailing `/`.
fn check_url(raw: &str, production: bool) -> Result<String, String> {
    const SHAPE: &str =
        "RWA_WHATSAPP_URL must be an http or https URL such as https://graph.facebook.com.";
    if raw.is_empty() {
        return Err(
            "RWA_WHATSAPP_URL must be set to the Cloud API's address, such as https://graph.facebook.com."
                .into(),
        );
    }
    let url = reqwest::Url::parse(raw).map_err(|_| SHAPE.to_owned())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(SHAPE.into());
    }
    if production && url.scheme() != "https" {
        return Err("RWA_WHATSAPP_URL must use https in production.".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "RWA_WHATSAPP_URL must not contain credentials; the access token goes in RWA_WHATSAPP_TOKEN."
                .into(),
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("RWA_WHATSAPP_URL must not have a query or a fragment.".into());
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Why a message was not sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WhatsAppError {
    /// The breaker is open: the API failed repeatedly and is not being called.
    /// Retry later.
    #[error("WhatsApp is unavailable: circuit breaker open")]
    Unavailable,
    /// Every attempt failed transiently (unreachable, timeout, 429, 5xx).
    /// Retry later.
    #[error("WhatsApp failed after {attempts} attempts: {message}")]
    Transient {
        /// Attempts made.
        attempts: u32,
        /// The last attempt's failure.
        message: String,
    },
    /// The API asked to wait longer than the connector waits inline: retry
    /// no earlier than this from now.
    #[error("WhatsApp asked to retry after {} s", .0.as_secs())]
    RetryAfter(Duration),
    /// The API refused the message (4xx other than 429); sending it again
    /// will not help.
    #[error("WhatsApp rejected the message ({status}): {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The API's `error.message`, truncated, or the status's reason.
        message: String,
    },
    /// The API accepted the request (2xx) but its answer had no message id.
    /// Not retried: the message may have gone out, and a retry could send
    /// it twice.
    #[error("WhatsApp answered without a message id: {0}")]
    Malformed(String),
}

impl WhatsAppError {
    /// Whether sending the same message later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unavailable | Self::Transient { .. } | Self::RetryAfter(_)
        )
    }
}

/// The connector.
#[derive(Debug)]
pub struct WhatsApp {
    settings: WhatsAppSettings,
    endpoint: String,
    client: reqwest::Client,
    breaker: Breaker,
    last_error: Mutex<Option<String>>,
}

/// One attempt's failure.
enum Failure {
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    Rejected {
        status: u16,
        message: String,
    },
    Malformed(String),
}

#[derive(Deserialize)]
struct SendAnswer {
    messages: Vec<SentMessage>,
}

#[derive(Deserialize)]
struct SentMessage {
    id: String,
}

impl WhatsApp {
    /// A connector with its own HTTP client and a closed breaker.
    pub fn new(settings: WhatsAppSettings) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            // The API never redirects; following one would carry the bearer
            // token to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("WhatsApp client: {e}"))?;
        Ok(Self {
            endpoint: settings.endpoint(),
            client,
            breaker: Breaker::named(
                "whatsapp",
                "rwa_notify_whatsapp_breaker_transitions_total",
                settings.breaker_threshold,
                settings.breaker_cool_down,
            ),
            last_error: Mutex::new(None),
            settings,
        })
    }

    /// The breaker's state now.
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// Sends template `template` in `language` (`en_US`) to `to`, its body
    /// `{{1}}`, `{{2}}`, … filled from `parameters` in order; returns the
    /// API's message id (`wamid.…`). Without parameters no `components` are
    /// sent (a template without variables takes none).
    pub async fn send_template(
        &self,
        to: &Phone,
        template: &str,
        language: &str,
        parameters: &[String],
    ) -> Result<String, WhatsAppError> {
        if !self.breaker.allow() {
            count("unavailable");
            return Err(WhatsAppError::Unavailable);
        }
        // If this future is dropped mid-call, the breaker still hears of it:
        // a half-open breaker waiting for its probe's outcome would otherwise
        // refuse every call forever.
        let mut pending = Pending {
            breaker: &self.breaker,
            settled: false,
        };
        let body = request_body(to, template, language, parameters);
        let result = self.attempts(&body).await;
        pending.settled = true;
        match &result {
            Ok(_) => {
                self.breaker.success();
                self.remember(None);
                count("sent");
            }
            Err(e) => {
                // A refusal or an odd answer still proves the API is up.
                if e.is_transient() {
                    self.breaker.failure();
                } else {
                    self.breaker.success();
                }
                count(match e {
                    WhatsAppError::Rejected { .. } => "rejected",
                    WhatsAppError::Malformed(_) => "malformed",
                    WhatsAppError::RetryAfter(_) => "deferred",
                    WhatsAppError::Transient { .. } | WhatsAppError::Unavailable => "failed",
                });
                tracing::warn!(template, error = %e, "WhatsApp message not sent");
                self.remember(Some(e.to_string()));
            }
        }
        result
    }

    /// Up to `max_attempts` attempts, waiting between transient failures.
    async fn attempts(&self, body: &Value) -> Result<String, WhatsAppError> {
        let max_attempts = self.settings.max_attempts.max(1);
        let mut last = String::new();
        for attempt in 1..=max_attempts {
            match self.attempt(body).await {
                Ok(id) => return Ok(id),
                Err(Failure::Rejected { status, message }) => {
                    return Err(WhatsAppError::Rejected { status, message });
                }
                Err(Failure::Malformed(message)) => return Err(WhatsAppError::Malformed(message)),
                Err(Failure::Transient {
                    message,
                    retry_after,
                }) => {
                    if let Some(wait) = retry_after
                        && wait > self.settings.max_retry_wait
                    {
                        return Err(WhatsAppError::RetryAfter(wait));
                    }
                    last = message;
                    if attempt < max_attempts {
                        let wait =
                            retry_after.unwrap_or_else(|| self.backoff(attempt, &mut rand::rng()));
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
        Err(WhatsAppError::Transient {
            attempts: max_attempts,
            message: last,
        })
    }

    /// One request.
    async fn attempt(&self, body: &Value) -> Result<String, Failure> {
        let response = self
            .client
            .post(&self.endpoint)
            .bearer_auth(&self.settings.token)
            .json(body)
            .send()
            .await
            .map_err(|e| Failure::Transient {
                message: self.describe(&e),
                retry_after: None,
            })?;
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Err(Failure::Transient {
                message: format!("answered {status}"),
                retry_after: retry_after(response.headers(), SystemTime::now()),
            });
        }
        if !status.is_success() {
            // The error body only serves the message; a failure to read it
            // leaves the status's reason.
            let body = response.bytes().await.unwrap_or_default();
            return Err(Failure::Rejected {
                status: status.as_u16(),
                message: self.scrub(&api_error_message(&body).unwrap_or_else(|| {
                    status
                        .canonical_reason()
                        .unwrap_or("unknown status")
                        .to_owned()
                })),
            });
        }
        let body = response.bytes().await.map_err(|e| Failure::Transient {
            message: self.describe(&e),
            retry_after: None,
        })?;
        match serde_json::from_slice::<SendAnswer>(&body) {
            Ok(answer) => match answer.messages.into_iter().next() {
                Some(message) if !message.id.is_empty() => Ok(message.id),
                _ => Err(Failure::Malformed("no entry in `messages`".into())),
            },
            Err(e) => Err(Failure::Malformed(format!("unreadable answer: {e}"))),
        }
    }

    /// Exponential backoff before retry number `attempt` (1-based), with
    /// jitter between half and all of it so that senders spread out.
    fn backoff(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let base = self.settings.retry_backoff;
        let full = base
            .saturating_mul(1 << attempt.saturating_sub(1).min(16))
            .min(self.settings.max_retry_wait.max(base));
        let half = full / 2;
        half + Duration::from_nanos(rng.random_range(0..=half.as_nanos() as u64))
    }

    /// A transport error as one line, with its cause (`error sending
    /// request: connection refused`), and never the token.
    fn describe(&self, e: &reqwest::Error) -> String {
        if e.is_timeout() {
            return format!("timed out after {} ms", self.settings.timeout.as_millis());
        }
        let mut line = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            line.push_str(": ");
            line.push_str(&cause.to_string());
            source = cause.source();
        }
        self.scrub(&line)
    }

    /// `text` without the token, should anything ever echo it back.
    fn scrub(&self, text: &str) -> String {
        text.replace(&self.settings.token, "[redacted]")
    }

    fn remember(&self, error: Option<String>) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = error;
    }
}

/// Reports a call the caller abandoned as a failure (see `send_template`).
struct Pending<'a> {
    breaker: &'a Breaker,
    settled: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.breaker.failure();
        }
    }
}

fn count(outcome: &'static str) {
    metrics::counter!("rwa_notify_whatsapp_messages_total", "outcome" => outcome).increment(1);
}

/// The template message's JSON body.
fn request_body(to: &Phone, template: &str, language: &str, parameters: &[String]) -> Value {
    let mut template = json!({
        "name": template,
        "language": { "code": language },
    });
    if !parameters.is_empty() {
        let parameters: Vec<Value> = parameters
            .iter()
            .map(|text| json!({ "type": "text", "text": text }))
            .collect();
        template["components"] = json!([{ "type": "body", "parameters": parameters }]);
    }
    json!({
        "messaging_product": "whatsapp",
        "to": to.digits(),
        "type": "template",
        "template": template,
    })
}

/// `Retry-After` as delay-seconds or an HTTP date (a date in the past is no
/// wait); `None` when absent or unreadable, which leaves the backoff.
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Absurdly long digit strings saturate instead of failing to parse.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// `error.message` of a Graph API error body, truncated.
fn api_error_message(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let message = value.get("error")?.get("message")?.as_str()?.trim();
    if message.is_empty() {
        return None;
    }
    Some(truncate(message, MAX_MESSAGE_CHARS))
}

/// At most `max` characters of `text`, control characters replaced by
/// spaces (the message ends up in one log line), `…` marking a cut.
fn truncate(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

#[async_trait]
impl HealthCheck for WhatsApp {
    fn name(&self) -> &'static str {
        "whatsapp"
    }

    fn critical(&self) -> bool {
        false
    }

    /// The breaker and the last message's error, if it failed (no probe: a
    /// request to the API would send a message).
    async fn check(&self) -> CheckReport {
        let started = Instant::now();
        let breaker = self.breaker.state();
        let last_error = self
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let status = if breaker == BreakerState::Closed {
            HealthStatus::Healthy
        } else {
            HealthStatus::Degraded
        };
        let mut details = serde_json::Map::new();
        details.insert("breaker".into(), breaker.as_str().into());
        details.insert("last_error".into(), last_error.into());
        CheckReport {
            status,
            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
            details,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use rwa_domain::notification::parse_phone;

    fn settings() -> WhatsAppSettings {
        WhatsAppSettings::parse(
            "https://graph.facebook.com/",
            "EAAG-token",
            "1234567890",
            true,
        )
        .expect("valid settings")
    }

    #[test]
    fn parses_valid_settings_with_defaults_and_builds_the_endpoint() {
        let s = settings();
        assert_eq!(s.base_url, "https://graph.facebook.com");
        assert_eq!(s.api_version, "v21.0");
        assert_eq!(s.timeout, Duration::from_secs(10));
        assert_eq!(s.max_attempts, 3);
        assert_eq!(s.max_retry_wait, Duration::from_secs(30));
        assert_eq!(
            s.endpoint(),
            "https://graph.facebook.com/v21.0/1234567890/messages"
        );
        let prefixed =
            WhatsAppSettings::parse("http://127.0.0.1:9/graph/", "t", "1", false).expect("valid");
        assert_eq!(
            prefixed.endpoint(),
            "http://127.0.0.1:9/graph/v21.0/1/messages"
        );
    }

    #[test]
    fn names_every_bad_variable_in_a_sentence() {
        let errors = WhatsAppSettings::parse("http://graph.example", "", "+49 151", true)
            .expect_err("invalid");
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].starts_with("RWA_WHATSAPP_URL ") && errors[0].contains("https"));
        assert!(errors[1].starts_with("RWA_WHATSAPP_TOKEN "));
        assert!(errors[2].starts_with("RWA_WHATSAPP_PHONE_ID ") && errors[2].contains("digits"));
        assert!(errors.iter().all(|e| e.ends_with('.')));

        // http is fine outside production.
        assert!(WhatsAppSettings::parse("http://127.0.0.1:1", "t", "1", false).is_ok());
        for url in [
            "",
            "graph.facebook.com",
            "ftp://x",
            "https://u:p@x",
            "https://x/?a=b",
        ] {
            let errors = WhatsAppSettings::parse(url, "t", "1", false).expect_err(url);
            assert!(
                errors[0].starts_with("RWA_WHATSAPP_URL "),
                "{url}: {errors:?}"
            );
            assert!(!errors[0].contains("u:p"), "never echoes credentials");
        }
    }

    #[test]
    fn refuses_a_token_with_whitespace_without_echoing_it() {
        let errors = WhatsAppSettings::parse("https://x", "secret value\n", "1", true)
            .expect_err("whitespace");
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("RWA_WHATSAPP_TOKEN"));
        assert!(!errors[0].contains("secret"));
    }

    #[test]
    fn debug_never_prints_the_token() {
        let s = settings();
        let printed = format!("{s:?}");
        assert!(!printed.contains("EAAG-token"), "{printed}");
        assert!(printed.contains("[redacted]"));
        let connector = WhatsApp::new(s).expect("client");
        assert!(!format!("{connector:?}").contains("EAAG-token"));
    }

    #[test]
    fn parses_e164_recipients_with_or_without_plus() {
        let with = parse_phone("+4915112345678", "phone").expect("valid");
        let without = parse_phone(" 4915112345678 ", "phone").expect("valid");
        assert_eq!(with, without);
        assert_eq!(with.digits(), "4915112345678");
        assert_eq!(with.e164(), "+4915112345678");
        assert_eq!(format!("{with:?}"), "Phone(+*********5678)");
        assert!(parse_phone("12345678", "phone").is_ok());
        assert!(parse_phone("123456789012345", "phone").is_ok());

        for bad in [
            "",
            "+",
            "1234567",
            "1234567890123456",
            "04915112345678",
            "+49 151 1234",
            "++4915112345678",
            "49-151-12345678",
        ] {
            let e = parse_phone(bad, "whatsapp_number").expect_err(bad);
            assert_eq!(e.field, "whatsapp_number");
        }
        assert!(
            parse_phone("04915112345678", "f")
                .expect_err("leading 0")
                .message
                .contains("country code")
        );
    }

    #[test]
    fn builds_the_template_body() {
        let to = parse_phone("+4915112345678", "to").expect("valid");
        let body = request_body(
            &to,
            "transfer_settled",
            "en_US",
            &["100".into(), "ACME".into()],
        );
        assert_eq!(
            body,
            json!({
                "messaging_product": "whatsapp",
                "to": "4915112345678",
                "type": "template",
                "template": {
                    "name": "transfer_settled",
                    "language": { "code": "en_US" },
                    "components": [{ "type": "body", "parameters": [
                        { "type": "text", "text": "100" },
                        { "type": "text", "text": "ACME" },
                    ]}],
                },
            })
        );
        let bare = request_body(&to, "hello_world", "en_US", &[]);
        assert!(bare["template"].get("components").is_none());
    }

    #[test]
    fn reads_retry_after_as_seconds_or_an_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers, now), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(7)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:50:37 GMT"),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(60)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Sunday, 06-Nov-94 08:49:47 GMT"),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(10)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:00:00 GMT"),
        );
        assert_eq!(
            retry_after(&headers, now),
            Some(Duration::ZERO),
            "past date: no wait"
        );
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers, now), None);
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("99999999999999999999999"),
        );
        assert_eq!(
            retry_after(&headers, now),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn backoff_doubles_with_jitter_under_the_cap() {
        let mut s = settings();
        s.retry_backoff = Duration::from_millis(500);
        s.max_retry_wait = Duration::from_secs(30);
        let connector = WhatsApp::new(s).expect("client");
        let mut rng = rand::rng();
        for _ in 0..50 {
            let first = connector.backoff(1, &mut rng);
            assert!(first >= Duration::from_millis(250) && first <= Duration::from_millis(500));
            let third = connector.backoff(3, &mut rng);
            assert!(third >= Duration::from_secs(1) && third <= Duration::from_secs(2));
            let late = connector.backoff(40, &mut rng);
            assert!(late <= Duration::from_secs(30));
        }
    }

    #[test]
    fn keeps_the_apis_error_message_truncated() {
        assert_eq!(
            api_error_message(br#"{"error":{"message":"bad template","code":132001}}"#),
            Some("bad template".into())
        );
        assert_eq!(api_error_message(b"<html>oops</html>"), None);
        assert_eq!(api_error_message(br#"{"error":{"message":""}}"#), None);
        let long = format!(r#"{{"error":{{"message":"{}"}}}}"#, "x".repeat(500));
        let kept = api_error_message(long.as_bytes()).expect("message");
        assert_eq!(kept.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(kept.ends_with('…'));
        assert_eq!(truncate("a\nb", 10), "a b");
    }

    #[test]
    fn only_retryable_errors_are_transient() {
        assert!(WhatsAppError::Unavailable.is_transient());
        assert!(WhatsAppError::RetryAfter(Duration::from_secs(60)).is_transient());
        assert!(
            WhatsAppError::Transient {
                attempts: 3,
                message: "answered 503".into()
            }
            .is_transient()
        );
        assert!(
            !WhatsAppError::Rejected {
                status: 400,
                message: "bad template".into()
            }
            .is_transient()
        );
        assert!(!WhatsAppError::Malformed("x".into()).is_transient());
    }
}
