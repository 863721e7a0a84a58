//! E-mail delivered to a real SMTP server: aiosmtpd ([`SmtpServer`]),
//! storing what it receives in a maildir that the test reads back and parses
//! as MIME. aiosmtpd stores a message before it answers `250` to its data, so
//! once `send` returns the file is there.

use chrono::{TimeZone as _, Utc};
use mail_parser::{Address, MessageParser, MimeHeaders as _};
use rwa_domain::event::Event;
use rwa_domain::{EventId, OrgId};
use rwa_notify::mail::{MailError, Mailer, SmtpSettings};
use rwa_notify::templates::{Rendered, render};
use rwa_testkit::SmtpServer;
use serde_json::json;

const FROM: &str = "Acme Notifications <notify@acme.example>";
const ORG: &str = "Société Acme Fund";

/// A mailer that sends to `server`, without TLS.
fn mailer(server: &SmtpServer) -> Mailer {
    Mailer::new(&SmtpSettings::parse(&server.url(), FROM, false).expect("settings"))
}

fn event(kind: &str, data: serde_json::Value) -> Event {
    Event {
        seq: 7,
        id: EventId::new(),
        kind: kind.to_owned(),
        org_id: OrgId::new(),
        created_at: Utc.with_ymd_and_hms(2026, 11, 5, 9, 30, 0).unwrap(),
        data,
    }
}

fn settled() -> Rendered {
    render(
        &event(
            "transfer.settled",
            json!({
                "transfer_id": "0190a0b0-0000-7000-8000-000000000001",
                "token_id": "0190a0b0-0000-7000-8000-0000000000aa",
                "from_investor_id": "0190a0b0-0000-7000-8000-000000000002",
                "from_wallet": "0x1111111111111111111111111111111111111111",
                "to_investor_id": null,
                "to_wallet": "0x2222222222222222222222222222222222222222",
                "amount": "1500",
                "status": "settled",
            }),
        ),
        ORG,
    )
}

fn webhook_disabled() -> Rendered {
    render(
        &event(
            "webhook.disabled",
            json!({
                "webhook_id": "0190a0b0-0000-7000-8000-0000000000ff",
                "url": "https://hooks.example.com/rwa",
                "failing_since": "2026-11-04T09:00:00Z",
                "last_error": "HTTP 503 <Service Unavailable>",
            }),
        ),
        ORG,
    )
}

fn recipients() -> Vec<String> {
    vec![
        "alice@acme.example".to_owned(),
        "Bob Ops <bob@acme.example>".to_owned(),
    ]
}

fn addresses(address: Option<&Address<'_>>) -> Vec<(Option<String>, String)> {
    address
        .map(|a| {
            a.iter()
                .map(|m| {
                    (
                        m.name().map(str::to_owned),
                        m.address().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// CRLF from the wire made LF, to compare with what was rendered.
fn lf(s: &str) -> String {
    s.replace("\r\n", "\n")
}

/// Checks one stored message against what was rendered and sent.
fn assert_delivered(raw: &[u8], rendered: &Rendered, text_line: &str, html_fragment: &str) {
    let msg = MessageParser::default().parse(raw).expect("a MIME message");
    let shown = String::from_utf8_lossy(raw);

    assert_eq!(
        addresses(msg.from()),
        vec![(
            Some("Acme Notifications".to_owned()),
            "notify@acme.example".to_owned()
        )],
        "{shown}"
    );
    assert_eq!(
        addresses(msg.to()),
        vec![
            (None, "alice@acme.example".to_owned()),
            (Some("Bob Ops".to_owned()), "bob@acme.example".to_owned()),
        ],
        "{shown}"
    );
    // The envelope, as aiosmtpd recorded it.
    assert_eq!(
        msg.header_raw("X-MailFrom").map(str::trim),
        Some("notify@acme.example")
    );
    assert_eq!(
        msg.header_raw("X-RcptTo").map(str::trim),
        Some("alice@acme.example, bob@acme.example")
    );
    assert_eq!(msg.subject(), Some(rendered.subject.as_str()), "{shown}");
    let date = msg.date().expect("a Date header");
    let age = Utc::now().timestamp() - date.to_timestamp();
    assert!((-300..300).contains(&age), "Date {date} is not now");
    let id = msg.message_id().expect("a Message-ID header");
    assert!(id.ends_with("@acme.example"), "Message-ID {id}");

    let ct = msg.content_type().expect("a Content-Type");
    assert_eq!(
        (ct.ctype(), ct.subtype()),
        ("multipart", Some("alternative")),
        "{shown}"
    );
    let leaves: Vec<_> = msg
        .parts
        .iter()
        .filter_map(|p| {
            let ct = p.content_type()?;
            (ct.ctype() == "text").then(|| (ct.subtype().unwrap_or_default().to_owned(), p))
        })
        .collect();
    assert_eq!(
        leaves.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(),
        ["plain", "html"],
        "plain text first: readers show the last part they can"
    );
    let text = lf(leaves[0].1.text_contents().expect("text part"));
    let html = lf(leaves[1].1.text_contents().expect("html part"));
    assert_eq!(text.trim_end(), rendered.text.trim_end(), "{shown}");
    assert_eq!(html.trim_end(), rendered.html.trim_end(), "{shown}");
    assert!(text.lines().any(|l| l == text_line), "{text}");
    assert!(html.contains(html_fragment), "{html}");
}

#[tokio::test]
async fn notifications_reach_a_real_smtp_server_as_multipart_alternative() {
    let server = SmtpServer::start().await;
    let mailer = mailer(&server);
    mailer.check().await.expect("the server answers NOOP");

    let (transfer, webhook) = (settled(), webhook_disabled());
    mailer
        .send(&recipients(), &transfer)
        .await
        .expect("transfer.settled sent");
    mailer
        .send(&recipients(), &webhook)
        .await
        .expect("webhook.disabled sent");

    let messages = server.messages();
    assert_eq!(messages.len(), 2, "one file per message");
    let subject_of = |raw: &[u8]| {
        MessageParser::default()
            .parse(raw)
            .and_then(|m| m.subject().map(str::to_owned))
            .unwrap_or_default()
    };
    let find = |subject: &str| {
        messages
            .iter()
            .find(|raw| subject_of(raw) == subject)
            .unwrap_or_else(|| panic!("no message titled {subject:?}"))
    };

    assert_eq!(
        transfer.subject,
        "[rwa] Société Acme Fund: transfer 0190a0b0-0000-7000-8000-000000000001 settled"
    );
    assert_delivered(
        find(&transfer.subject),
        &transfer,
        "Transfer 0190a0b0-0000-7000-8000-000000000001 is settled on-chain.",
        "<td>1500 base units</td>",
    );
    assert_eq!(
        webhook.subject,
        "[rwa] Société Acme Fund: webhook to hooks.example.com disabled"
    );
    assert_delivered(
        find(&webhook.subject),
        &webhook,
        "Last error:    HTTP 503 <Service Unavailable>",
        "<td>HTTP 503 &lt;Service Unavailable&gt;</td>",
    );
}

#[tokio::test]
async fn a_server_that_is_not_listening_is_a_transient_failure() {
    // A port just released by this process, so nothing listens on it.
    let port = SmtpServer::unused_port();
    let url = format!("smtp://127.0.0.1:{port}?tls=none");
    let mailer = Mailer::new(&SmtpSettings::parse(&url, FROM, false).unwrap());

    let err = mailer.send(&recipients(), &settled()).await.unwrap_err();
    assert!(matches!(err, MailError::Transient(_)), "{err}");
    assert!(err.is_transient());
    let err = mailer.check().await.unwrap_err();
    assert!(err.is_transient(), "{err}");
}

#[tokio::test]
async fn a_5xx_answer_is_a_permanent_failure() {
    // A size limit below the message's: aiosmtpd answers 552 to its data.
    let server = SmtpServer::start_with_args(&["-s", "200"]).await;
    let err = mailer(&server)
        .send(&recipients(), &settled())
        .await
        .unwrap_err();
    assert!(matches!(err, MailError::Permanent(_)), "{err}");
    assert!(err.to_string().contains("552"), "{err}");
    assert!(server.messages().is_empty());
}
