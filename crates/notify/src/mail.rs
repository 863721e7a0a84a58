//! E-mail over SMTP: the settings from `RWA_SMTP_URL` and `RWA_SMTP_FROM`,
//! and a [`Mailer`] that sends one rendered message to its recipients.
//!
//! TLS is rustls with the ring provider and the webpki roots compiled in,
//! so nothing outside the binary (OpenSSL, a system certificate store,
//! cmake for aws-lc) is needed. Plaintext is for a relay on this machine
//! only, and never in production: credentials and investors' events must
//! not cross a network in clear.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use percent_encoding::percent_decode_str;
use url::{Host, Url};

use crate::templates::Rendered;

/// Longest a send may take, connection and TLS included: a relay that
/// stalls must not hold a delivery worker for longer.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest a [`Mailer::check`] may take: a health probe answers quickly or
/// reports the relay down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// How to reach the SMTP relay and who the mail is from, validated.
/// `Display` and `Debug` mask the password.
#[derive(Clone)]
pub struct SmtpSettings {
    host: String,
    port: u16,
    tls: Tls,
    /// User and password, percent-decoded.
    credentials: Option<(String, String)>,
    /// The EHLO name (the URL's path); lettre's default otherwise.
    hello_name: Option<String>,
    from: Mailbox,
}

impl SmtpSettings {
    /// Reads `RWA_SMTP_URL` (`url`) and `RWA_SMTP_FROM` (`from`):
    ///
    /// - `smtps://[user:password@]host[:port][/ehlo-name]`: TLS from the
    ///   first byte, port 465 by default;
    /// - `smtp://…[?tls=required|opportunistic|none]`: STARTTLS, required
    ///   unless said otherwise, port 587 by default. `opportunistic` falls
    ///   back to plaintext when the server offers no STARTTLS; `none` never
    ///   encrypts and is accepted for a loopback host only (a local relay,
    ///   tests). In `production` both are refused.
    ///
    /// User and password are percent-decoded. `from` is `Name <addr@host>`
    /// or `addr@host`. The error holds one line per problem, each naming
    /// its setting, and never the password.
    pub fn parse(url: &str, from: &str, production: bool) -> Result<SmtpSettings, String> {
        let mut problems = Vec::new();
        let endpoint = parse_url(url, production, &mut problems);
        let from = parse_from(from, &mut problems);
        match (endpoint, from) {
            (Some(e), Some(from)) if problems.is_empty() => Ok(SmtpSettings {
                host: e.host,
                port: e.port,
                tls: e.tls,
                credentials: e.credentials,
                hello_name: e.hello_name,
                from,
            }),
            _ => Err(problems.join("\n")),
        }
    }
}

/// The URL's part of the settings.
struct Endpoint {
    host: String,
    port: u16,
    tls: Tls,
    credentials: Option<(String, String)>,
    hello_name: Option<String>,
}

const URL_VAR: &str = "RWA_SMTP_URL";

fn parse_url(raw: &str, production: bool, problems: &mut Vec<String>) -> Option<Endpoint> {
    let start = problems.len();
    // The URL's own parse errors never quote it: the password stays out.
    let url = match Url::parse(raw.trim()) {
        Ok(url) => url,
        Err(e) => {
            problems.push(format!(
                "{URL_VAR}: is not a URL ({e}); write smtps://user:password@host or smtp://host."
            ));
            return None;
        }
    };
    let implicit = match url.scheme() {
        "smtps" => true,
        "smtp" => false,
        other => {
            problems.push(format!(
                "{URL_VAR}: the scheme {other}:// is not SMTP; use smtps:// (TLS from the start) \
                 or smtp:// (STARTTLS)."
            ));
            return None;
        }
    };
    // smtp:// is not a scheme the URL standard knows, so its host comes back
    // as an opaque name even when it is an IPv4 address.
    let host: Option<(String, bool)> = match url.host() {
        Some(Host::Ipv6(ip)) => Some((ip.to_string(), ip.is_loopback())),
        Some(Host::Ipv4(ip)) => Some((ip.to_string(), ip.is_loopback())),
        Some(Host::Domain(d)) if !d.is_empty() && !d.contains('%') => {
            let d = d.to_ascii_lowercase();
            let loopback = match d.parse::<Ipv4Addr>() {
                Ok(ip) => ip.is_loopback(),
                Err(_) => d == "localhost",
            };
            Some((d, loopback))
        }
        _ => {
            problems.push(format!(
                "{URL_VAR}: names no host (smtps://host or smtp://host)."
            ));
            None
        }
    };
    let port = match url.port() {
        Some(0) => {
            problems.push(format!("{URL_VAR}: port 0 is not a port to connect to."));
            0
        }
        Some(port) => port,
        None if implicit => 465,
        None => 587,
    };

    let mut mode: Option<String> = None;
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "tls" if mode.is_none() => mode = Some(value.into_owned()),
            "tls" => problems.push(format!("{URL_VAR}: tls is given twice.")),
            other => problems.push(format!(
                "{URL_VAR}: the parameter {other:?} is unknown (only tls is read)."
            )),
        }
    }
    #[derive(PartialEq)]
    enum Mode {
        Implicit,
        Required,
        Opportunistic,
        Plain,
    }
    let mode = match (implicit, mode.as_deref()) {
        (true, None) => Some(Mode::Implicit),
        (true, Some(_)) => {
            problems.push(format!(
                "{URL_VAR}: smtps:// always uses TLS from the start; remove ?tls=, or use \
                 smtp:// for STARTTLS."
            ));
            None
        }
        (false, None | Some("required")) => Some(Mode::Required),
        (false, Some("opportunistic")) => Some(Mode::Opportunistic),
        (false, Some("none")) => Some(Mode::Plain),
        (false, Some(other)) => {
            problems.push(format!(
                "{URL_VAR}: tls={other:?} is not a mode; use required (the default), \
                 opportunistic or none."
            ));
            None
        }
    };
    if production && mode == Some(Mode::Plain) {
        problems.push(format!(
            "{URL_VAR}: tls=none is refused in production; use smtps:// or smtp:// with STARTTLS."
        ));
    } else if production && mode == Some(Mode::Opportunistic) {
        problems.push(format!(
            "{URL_VAR}: tls=opportunistic is refused in production (an attacker can strip \
             STARTTLS); use smtps:// or smtp:// with STARTTLS required."
        ));
    } else if mode == Some(Mode::Plain) && host.as_ref().is_some_and(|(_, loopback)| !loopback) {
        problems.push(format!(
            "{URL_VAR}: tls=none is allowed only for a loopback host (127.0.0.1, ::1, localhost), \
             such as a local relay."
        ));
    }

    let decode = |part: &str, what: &str, problems: &mut Vec<String>| match percent_decode_str(part)
        .decode_utf8()
    {
        Ok(s) => Some(s.into_owned()),
        Err(_) => {
            problems.push(format!(
                "{URL_VAR}: the {what} is not UTF-8 once percent-decoded."
            ));
            None
        }
    };
    let credentials = match (url.username(), url.password()) {
        ("", None) => None,
        ("", Some(_)) => {
            problems.push(format!(
                "{URL_VAR}: has a password but no user (user:password@host)."
            ));
            None
        }
        (_, None | Some("")) => {
            problems.push(format!(
                "{URL_VAR}: names a user but no password (user:password@host; percent-encode \
                 reserved characters)."
            ));
            None
        }
        (user, Some(password)) => {
            let user = decode(user, "user", problems);
            let password = decode(password, "password", problems);
            user.zip(password)
        }
    };

    let path = url.path().trim_matches('/');
    let hello_name = if path.is_empty() {
        None
    } else if path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    {
        Some(path.to_ascii_lowercase())
    } else {
        problems.push(format!(
            "{URL_VAR}: the path is the EHLO name and must be a host name (letters, digits, . and -)."
        ));
        None
    };

    let (host, _) = host?;
    let params = match &mode {
        Some(Mode::Plain) | None => None,
        Some(_) => match TlsParameters::new(host.clone()) {
            Ok(params) => Some(params),
            Err(e) => {
                problems.push(format!(
                    "{URL_VAR}: {host} cannot be a TLS server name ({e})."
                ));
                None
            }
        },
    };
    let tls = match (mode?, params) {
        (Mode::Plain, _) => Tls::None,
        (Mode::Implicit, Some(p)) => Tls::Wrapper(p),
        (Mode::Required, Some(p)) => Tls::Required(p),
        (Mode::Opportunistic, Some(p)) => Tls::Opportunistic(p),
        (_, None) => return None,
    };
    (problems.len() == start).then_some(Endpoint {
        host,
        port,
        tls,
        credentials,
        hello_name,
    })
}

fn parse_from(raw: &str, problems: &mut Vec<String>) -> Option<Mailbox> {
    let raw = raw.trim();
    if raw.is_empty() {
        problems.push(
            "RWA_SMTP_FROM: is required with RWA_SMTP_URL (Name <addr@host> or addr@host).".into(),
        );
        return None;
    }
    match raw.parse::<Mailbox>() {
        Ok(mailbox) => Some(mailbox),
        Err(e) => {
            problems.push(format!(
                "RWA_SMTP_FROM: {raw:?} is not a mailbox ({e}); write Name <addr@host> or addr@host."
            ));
            None
        }
    }
}

impl fmt::Display for SmtpSettings {
    /// `smtp://user:***@host:587?tls=required, from Name <addr@host>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (scheme, query) = match &self.tls {
            Tls::Wrapper(_) => ("smtps", ""),
            Tls::Required(_) => ("smtp", "?tls=required"),
            Tls::Opportunistic(_) => ("smtp", "?tls=opportunistic"),
            Tls::None => ("smtp", "?tls=none"),
        };
        write!(f, "{scheme}://")?;
        if let Some((user, _)) = &self.credentials {
            write!(f, "{user}:***@")?;
        }
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(ip)) => write!(f, "[{ip}]")?,
            _ => f.write_str(&self.host)?,
        }
        write!(f, ":{}", self.port)?;
        if let Some(name) = &self.hello_name {
            write!(f, "/{name}")?;
        }
        write!(f, "{query}, from {}", self.from)
    }
}

impl fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SmtpSettings({self})")
    }
}

/// Why a message was not sent, split by what a retry can change.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// Worth retrying later: the relay was unreachable, timed out, failed
    /// TLS or answered 4xx.
    #[error("e-mail not sent, try again later: {0}")]
    Transient(String),
    /// Sending the same message again fails the same way: a 5xx answer
    /// (an unknown recipient, refused credentials), an address that is not
    /// one, or a relay lacking what the settings require (STARTTLS).
    #[error("e-mail refused: {0}")]
    Permanent(String),
}

impl MailError {
    /// Whether a later retry may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, MailError::Transient(_))
    }
}

impl From<lettre::transport::smtp::Error> for MailError {
    fn from(e: lettre::transport::smtp::Error) -> Self {
        // Client errors are the relay lacking a capability the settings
        // demand (STARTTLS, an auth mechanism): no retry fixes them.
        if e.is_permanent() || e.is_client() {
            MailError::Permanent(e.to_string())
        } else {
            MailError::Transient(e.to_string())
        }
    }
}

/// Sends e-mail through one SMTP relay. Each send opens its own connection
/// (notifications are few; an idle pooled connection would only be closed
/// by the relay). Cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// A mailer for `settings`; nothing is connected before the first send.
    pub fn new(settings: &SmtpSettings) -> Mailer {
        // "Dangerous" only means no TLS by default: the TLS mode is set
        // right after, from the validated settings.
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.host.clone())
                .port(settings.port)
                .tls(settings.tls.clone())
                .timeout(Some(SEND_TIMEOUT));
        if let Some((user, password)) = &settings.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        if let Some(name) = &settings.hello_name {
            builder = builder.hello_name(ClientId::Domain(name.clone()));
        }
        Mailer {
            transport: builder.build(),
            from: settings.from.clone(),
        }
    }

    /// Sends `message` as one multipart/alternative e-mail (plain text and
    /// HTML) with every address of `to` (`addr@host` or `Name <addr@host>`)
    /// in its `To`, within 30 seconds.
    pub async fn send(&self, to: &[String], message: &Rendered) -> Result<(), MailError> {
        let email = self.build(to, message)?;
        match tokio::time::timeout(SEND_TIMEOUT, self.transport.send(email)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(MailError::Transient(format!(
                "the relay did not finish within {} s",
                SEND_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Connects, authenticates when the settings have credentials, says
    /// NOOP and QUIT: a health probe. One connection per call, so a
    /// frequent prober should cache the answer.
    pub async fn check(&self) -> Result<(), MailError> {
        match tokio::time::timeout(CHECK_TIMEOUT, self.transport.test_connection()).await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err(MailError::Transient(
                "the relay did not answer NOOP".to_owned(),
            )),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(MailError::Transient(format!(
                "the relay did not answer within {} s",
                CHECK_TIMEOUT.as_secs()
            ))),
        }
    }

    fn build(&self, to: &[String], message: &Rendered) -> Result<Message, MailError> {
        if to.is_empty() {
            return Err(MailError::Permanent(
                "the message has no recipient".to_owned(),
            ));
        }
        // A Message-ID under the sender's domain is unique to us and lets a
        // recipient's reply or bounce be traced to the notification.
        let id = format!(
            "<{}@{}>",
            uuid::Uuid::now_v7().simple(),
            self.from.email.domain()
        );
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(crate::templates::one_line(&message.subject))
            .message_id(Some(id));
        for (i, address) in to.iter().enumerate() {
            let mailbox = address.trim().parse::<Mailbox>().map_err(|e| {
                MailError::Permanent(format!(
                    "recipient {} of {}, {address:?}, is not an e-mail address ({e})",
                    i + 1,
                    to.len()
                ))
            })?;
            builder = builder.to(mailbox);
        }
        builder
            .multipart(MultiPart::alternative_plain_html(
                message.text.clone(),
                message.html.clone(),
            ))
            .map_err(|e| MailError::Permanent(format!("the message cannot be built: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str) -> SmtpSettings {
        SmtpSettings::parse(url, "Acme Notifications <notify@acme.example>", false)
            .unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    fn err(url: &str, from: &str, production: bool) -> String {
        SmtpSettings::parse(url, from, production).expect_err(url)
    }

    #[test]
    fn schemes_choose_tls_and_default_ports() {
        let s = ok("smtps://smtp.example.com");
        assert_eq!((s.host.as_str(), s.port), ("smtp.example.com", 465));
        assert!(matches!(s.tls, Tls::Wrapper(_)));
        let s = ok("smtp://smtp.example.com");
        assert_eq!(s.port, 587);
        assert!(matches!(s.tls, Tls::Required(_)));
        assert!(matches!(
            ok("smtp://smtp.example.com?tls=required").tls,
            Tls::Required(_)
        ));
        assert!(matches!(
            ok("smtp://smtp.example.com:2525?tls=opportunistic").tls,
            Tls::Opportunistic(_)
        ));
        assert_eq!(ok("smtp://SMTP.Example.com:2525").port, 2525);
        assert_eq!(ok("smtp://SMTP.Example.com").host, "smtp.example.com");
    }

    #[test]
    fn credentials_are_percent_decoded_and_never_printed() {
        let s = ok("smtps://ops%40acme.example:p%40ss%3Aw%2Frd@smtp.example.com/mx1.acme.example");
        assert_eq!(
            s.credentials,
            Some(("ops@acme.example".to_owned(), "p@ss:w/rd".to_owned()))
        );
        assert_eq!(s.hello_name.as_deref(), Some("mx1.acme.example"));
        let shown = format!("{s} {s:?}");
        assert!(
            !shown.contains("p@ss") && !shown.contains("p%40ss"),
            "{shown}"
        );
        assert_eq!(
            s.to_string(),
            "smtps://ops@acme.example:***@smtp.example.com:465/mx1.acme.example, \
             from Acme Notifications <notify@acme.example>"
        );
    }

    #[test]
    fn plaintext_is_for_loopback_outside_production() {
        for host in ["127.0.0.1", "127.0.0.2", "[::1]", "localhost", "LocalHost"] {
            let s = ok(&format!("smtp://{host}:2525?tls=none"));
            assert!(matches!(s.tls, Tls::None), "{host}");
        }
        assert_eq!(
            ok("smtp://[::1]:2525?tls=none").to_string(),
            "smtp://[::1]:2525?tls=none, from Acme Notifications <notify@acme.example>"
        );
        let from = "notify@acme.example";
        for host in ["10.0.0.5", "smtp.example.com", "localhost.example.com"] {
            let e = err(&format!("smtp://{host}?tls=none"), from, false);
            assert_eq!(
                e,
                "RWA_SMTP_URL: tls=none is allowed only for a loopback host (127.0.0.1, ::1, \
                 localhost), such as a local relay."
            );
        }
        let e = err("smtp://127.0.0.1:2525?tls=none", from, true);
        assert!(
            e.starts_with("RWA_SMTP_URL: tls=none is refused in production"),
            "{e}"
        );
        let e = err("smtp://smtp.example.com?tls=opportunistic", from, true);
        assert!(
            e.starts_with("RWA_SMTP_URL: tls=opportunistic is refused in production"),
            "{e}"
        );
        assert!(SmtpSettings::parse("smtps://u:p@smtp.example.com", from, true).is_ok());
    }

    #[test]
    fn every_problem_is_one_line_naming_its_setting() {
        let e = err(
            "smtp://user@smtp.example.com?tls=maybe&port=1",
            "not a mailbox",
            false,
        );
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 4, "{e}");
        assert!(
            lines[0].starts_with("RWA_SMTP_URL: the parameter \"port\" is unknown"),
            "{e}"
        );
        assert!(
            lines[1].starts_with("RWA_SMTP_URL: tls=\"maybe\" is not a mode"),
            "{e}"
        );
        assert!(
            lines[2].starts_with("RWA_SMTP_URL: names a user but no password"),
            "{e}"
        );
        assert!(
            lines[3].starts_with("RWA_SMTP_FROM: \"not a mailbox\" is not a mailbox"),
            "{e}"
        );

        let from = "notify@acme.example";
        assert!(err("http://smtp.example.com", from, false).contains("http:// is not SMTP"));
        assert!(err("smtp://", from, false).contains("names no host"));
        assert!(err("smtps://h?tls=required", from, false).contains("smtps:// always uses TLS"));
        assert!(err("smtp://h/bad_name!", from, false).contains("EHLO name"));
        assert!(err("not a url", from, false).starts_with("RWA_SMTP_URL: is not a URL"));
        let e = err("smtp://h", "  ", false);
        assert_eq!(
            e,
            "RWA_SMTP_FROM: is required with RWA_SMTP_URL (Name <addr@host> or addr@host)."
        );
        let e = err("smtps://user:hunter2@h?tls=none", from, false);
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn from_takes_both_mailbox_forms() {
        let s = SmtpSettings::parse("smtps://h", "notify@acme.example", false).unwrap();
        assert_eq!(s.from.to_string(), "notify@acme.example");
        let s = SmtpSettings::parse("smtps://h", "\"Acme, Inc.\" <notify@acme.example>", false)
            .unwrap();
        assert_eq!(s.from.name.as_deref(), Some("Acme, Inc."));
    }

    #[test]
    fn a_message_needs_valid_recipients() {
        let mailer = Mailer::new(&ok("smtp://127.0.0.1:1?tls=none"));
        let rendered = Rendered {
            subject: "s".into(),
            text: "t".into(),
            html: "<p>h</p>".into(),
        };
        let e = mailer.build(&[], &rendered).unwrap_err();
        assert!(matches!(e, MailError::Permanent(_)), "{e}");
        let to = ["ok@acme.example".to_owned(), "not an address".to_owned()];
        let e = mailer.build(&to, &rendered).unwrap_err();
        assert!(!e.is_transient());
        assert!(e.to_string().contains("recipient 2 of 2"), "{e}");
    }

    #[test]
    fn the_subject_cannot_smuggle_headers() {
        let mailer = Mailer::new(&ok("smtp://127.0.0.1:1?tls=none"));
        let rendered = Rendered {
            subject: "Hello\r\nBcc: victim@example.com".into(),
            text: "t".into(),
            html: "<p>h</p>".into(),
        };
        let email = mailer
            .build(&["a@acme.example".to_owned()], &rendered)
            .unwrap();
        let raw = String::from_utf8(email.formatted()).unwrap();
        assert!(!raw.contains("\nBcc:"), "{raw}");
        assert!(
            raw.contains("Message-ID: <") && raw.contains("@acme.example>"),
            "{raw}"
        );
    }
}
