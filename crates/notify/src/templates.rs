//! The e-mail of each event: a subject, a plain-text body and an HTML body,
//! both written from the same parts so they never say different things.
//!
//! Events carry ids, not names (personal data stays out of the event log),
//! so messages name investors, transfers and webhooks by id. Every value
//! is optional here: an event appended by an older or newer version may
//! lack a field, and a message that omits a line beats one never sent.

use chrono::SecondsFormat;
use rwa_domain::event::Event;
use rwa_domain::investor::{INVESTOR_KYC_APPROVED, INVESTOR_KYC_EXPIRED, INVESTOR_KYC_REJECTED};
use rwa_domain::webhook::WEBHOOK_DISABLED;
use serde_json::Value;

/// A message ready to send: one subject, a plain-text and an HTML body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// One line, no CR or LF.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body, every interpolated value escaped.
    pub html: String,
}

/// The message of `event` for the organization called `org_name`: a
/// dedicated one for KYC decisions, settled, rejected and held transfers
/// and disabled webhooks, the event's data as JSON for any other type.
pub fn render(event: &Event, org_name: &str) -> Rendered {
    let data = &event.data;
    let parts = match event.kind.as_str() {
        INVESTOR_KYC_APPROVED => kyc(
            data,
            "approved",
            "Its wallets are being added to the on-chain identity registry; \
             once they are, its transfers can pass compliance.",
        ),
        INVESTOR_KYC_REJECTED => kyc(
            data,
            "rejected",
            "Transfers to and from its wallets are refused until a new decision approves it.",
        ),
        INVESTOR_KYC_EXPIRED => kyc(
            data,
            "expired",
            "Its wallets are being removed from the on-chain identity registry and its \
             transfers are refused until a new approval.",
        ),
        "transfer.settled" => transfer(
            data,
            "settled",
            "is settled on-chain",
            "The holders' balances follow from the indexed chain.",
        ),
        "transfer.rejected" => transfer(
            data,
            "rejected",
            "was rejected",
            "No tokens moved and nothing is reserved for it any more.",
        ),
        "transfer.manual_review" => {
            let id = field(data, "transfer_id").unwrap_or_else(|| "<id>".into());
            transfer(
                data,
                "waiting for a manual review",
                "is waiting for a manual review",
                &format!(
                    "A compliance officer approves or rejects it with \
                     POST /v1/transfers/{id}/review."
                ),
            )
        }
        WEBHOOK_DISABLED => webhook_disabled(data),
        _ => generic(event),
    };
    parts.write(event, org_name)
}

/// What a message says, before it is written as text and HTML.
struct Parts {
    /// The subject after `[rwa] <org>: `; `None` for the generic subject.
    topic: Option<String>,
    /// The first sentence of the body.
    lead: String,
    /// Label and value, one line each; absent values are left out.
    facts: Vec<(&'static str, String)>,
    /// What happens next or what to do.
    next: Option<String>,
    /// Preformatted data (the generic message).
    data: Option<String>,
}

impl Parts {
    fn write(self, event: &Event, org_name: &str) -> Rendered {
        let subject = one_line(&match &self.topic {
            Some(topic) => format!("[rwa] {org_name}: {topic}"),
            None => format!("[rwa] {}", event.kind),
        });
        let footer = format!(
            "{org_name} · {} · event {} ({}) at {}",
            event.kind,
            event.seq,
            event.id,
            event.created_at.to_rfc3339_opts(SecondsFormat::Secs, true)
        );

        let mut text = format!("{}\n", self.lead);
        let width = self.facts.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
        if !self.facts.is_empty() {
            text.push('\n');
        }
        for (label, value) in &self.facts {
            text.push_str(&format!(
                "{:<width$} {value}\n",
                format!("{label}:"),
                width = width + 1
            ));
        }
        if let Some(next) = &self.next {
            text.push_str(&format!("\n{next}\n"));
        }
        if let Some(data) = &self.data {
            text.push_str(&format!("\n{data}\n"));
        }
        text.push_str(&format!("\n-- \n{footer}\n"));

        let mut html = format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title></head>\n\
             <body style=\"font-family:sans-serif;line-height:1.4\">\n<p>{}</p>\n",
            escape(&subject),
            escape(&self.lead)
        );
        if !self.facts.is_empty() {
            html.push_str("<table>\n");
            for (label, value) in &self.facts {
                html.push_str(&format!(
                    "<tr><th align=\"left\" style=\"padding-right:1em\">{}</th><td>{}</td></tr>\n",
                    escape(label),
                    escape(value)
                ));
            }
            html.push_str("</table>\n");
        }
        if let Some(next) = &self.next {
            html.push_str(&format!("<p>{}</p>\n", escape(next)));
        }
        if let Some(data) = &self.data {
            html.push_str(&format!("<pre>{}</pre>\n", escape(data)));
        }
        html.push_str(&format!(
            "<p style=\"color:#666;font-size:small\">{}</p>\n</body></html>\n",
            escape(&footer)
        ));
        Rendered {
            subject,
            text,
            html,
        }
    }
}

fn kyc(data: &Value, outcome: &str, next: &str) -> Parts {
    let investor = field(data, "investor_id");
    let who = investor
        .as_deref()
        .map_or_else(|| "an investor".to_owned(), |id| format!("investor {id}"));
    let mut facts = Vec::new();
    push(&mut facts, "Investor", investor.clone());
    let expiry = field(data, "kyc_expires_at");
    match outcome {
        "approved" => push(&mut facts, "Valid until", expiry),
        "expired" => push(&mut facts, "Expired at", expiry),
        _ => {}
    }
    push(&mut facts, "Reason", field(data, "reason"));
    Parts {
        topic: Some(format!("KYC {outcome} for {who}")),
        lead: match outcome {
            "expired" => format!("The KYC approval of {who} expired."),
            _ => format!("The KYC of {who} was {outcome}."),
        },
        facts,
        next: Some(next.to_owned()),
        data: None,
    }
}

fn transfer(data: &Value, topic: &str, happened: &str, next: &str) -> Parts {
    let id = field(data, "transfer_id");
    let what = id
        .as_deref()
        .map_or_else(|| "A transfer".to_owned(), |id| format!("Transfer {id}"));
    let topic = match &id {
        Some(id) => format!("transfer {id} {topic}"),
        None => format!("a transfer {topic}"),
    };
    let mut facts = Vec::new();
    push(&mut facts, "Transfer", id);
    push(&mut facts, "Token", field(data, "token_id"));
    push(
        &mut facts,
        "Amount",
        field(data, "amount").map(|a| format!("{a} base units")),
    );
    push(&mut facts, "From", party(data, "from"));
    push(&mut facts, "To", party(data, "to"));
    push(&mut facts, "Transaction", field(data, "tx_hash"));
    push(&mut facts, "Block", field(data, "block_number"));
    let failed = data["failed_rules"]
        .as_array()
        .map(|rules| {
            rules
                .iter()
                .filter_map(text_of)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .filter(|rules| !rules.is_empty());
    push(&mut facts, "Rules not passed", failed);
    push(
        &mut facts,
        "Rule set version",
        field(data, "rule_set_version"),
    );
    let review = &data["review"];
    let review = field(review, "decision").map(|decision| {
        let by = field(review, "by").map_or_else(String::new, |by| format!(" by {by}"));
        let why = field(review, "reason").map_or_else(String::new, |r| format!(": {r}"));
        format!("{decision}{by}{why}")
    });
    push(&mut facts, "Review", review);
    push(&mut facts, "Reason", field(data, "reason"));
    if data["rechecked"].as_bool() == Some(true) {
        facts.push((
            "Re-checked",
            "the rules failed when checked again before sending".to_owned(),
        ));
    }
    Parts {
        topic: Some(topic),
        lead: format!("{what} {happened}."),
        facts,
        next: Some(next.to_owned()),
        data: None,
    }
}

/// `0xWallet (investor <id>)`, or whichever of the two the event has.
fn party(data: &Value, side: &str) -> Option<String> {
    let wallet = field(data, &format!("{side}_wallet"));
    let investor = field(data, &format!("{side}_investor_id"));
    match (wallet, investor) {
        (Some(w), Some(i)) => Some(format!("{w} (investor {i})")),
        (Some(w), None) => Some(w),
        (None, Some(i)) => Some(format!("investor {i}")),
        (None, None) => None,
    }
}

fn webhook_disabled(data: &Value) -> Parts {
    let url = field(data, "url").map(|u| without_query(&u));
    let host = url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| u.host_str().map(str::to_owned));
    let since = field(data, "failing_since");
    let mut facts = Vec::new();
    push(&mut facts, "Webhook", field(data, "webhook_id"));
    push(&mut facts, "URL", url);
    push(&mut facts, "Failing since", since.clone());
    push(&mut facts, "Last error", field(data, "last_error"));
    Parts {
        topic: Some(match &host {
            Some(host) => format!("webhook to {host} disabled"),
            None => "webhook disabled".to_owned(),
        }),
        lead: match &since {
            Some(since) => {
                format!("A webhook was turned off: its deliveries have been failing since {since}.")
            }
            None => "A webhook was turned off: its deliveries kept failing.".to_owned(),
        },
        facts,
        next: Some(format!(
            "Its events are kept. Once the endpoint answers again, turn the webhook back on \
             (PATCH /v1/webhooks/{} with {{\"enabled\": true}}) and deliveries resume with \
             the first event it missed.",
            field(data, "webhook_id").unwrap_or_else(|| "<id>".into())
        )),
        data: None,
    }
}

fn generic(event: &Event) -> Parts {
    Parts {
        topic: None,
        lead: format!("Event {} happened.", event.kind),
        facts: Vec::new(),
        next: None,
        data: Some(
            serde_json::to_string_pretty(&event.data).unwrap_or_else(|_| event.data.to_string()),
        ),
    }
}

/// A webhook URL's query can hold the receiver's token: e-mail is a wider
/// audience than the webhook settings, so it is left out.
fn without_query(url: &str) -> String {
    match url.split_once(['?', '#']) {
        Some((base, _)) => format!("{base}?…"),
        None => url.to_owned(),
    }
}

fn push(facts: &mut Vec<(&'static str, String)>, label: &'static str, value: Option<String>) {
    if let Some(value) = value {
        facts.push((label, value));
    }
}

/// `data[key]` as text; absent, null and empty values are `None`.
fn field(data: &Value, key: &str) -> Option<String> {
    data.get(key).and_then(text_of)
}

fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(if *b { "yes" } else { "no" }.to_owned()),
        other => Some(other.to_string()),
    }
}

/// Header injection and folded subjects both start with a line break in a
/// value; every control character becomes a space.
pub(crate) fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone as _, Utc};
    use rwa_domain::investor::KycStatus;
    use rwa_domain::transfer::TransferStatus;
    use rwa_domain::{EventId, OrgId};
    use serde_json::json;

    const TRANSFER: &str = "0190a0b0-0000-7000-8000-000000000001";
    const INVESTOR: &str = "0190a0b0-0000-7000-8000-000000000002";

    fn event(kind: &str, data: Value) -> Event {
        Event {
            seq: 42,
            id: EventId::from_uuid(uuid::Uuid::now_v7()),
            kind: kind.to_owned(),
            org_id: OrgId::from_uuid(uuid::Uuid::now_v7()),
            created_at: Utc.with_ymd_and_hms(2026, 11, 5, 9, 30, 0).unwrap(),
            data,
        }
    }

    fn transfer_data(status: &str) -> Value {
        json!({
            "transfer_id": TRANSFER,
            "token_id": "0190a0b0-0000-7000-8000-0000000000aa",
            "from_investor_id": INVESTOR,
            "from_wallet": "0x1111111111111111111111111111111111111111",
            "to_investor_id": null,
            "to_wallet": "0x2222222222222222222222222222222222222222",
            "amount": "1500",
            "status": status,
        })
    }

    fn has_line(body: &str, line: &str) -> bool {
        body.lines().any(|l| l.trim_end() == line)
    }

    /// The value on the text body's `label:` line.
    fn fact<'a>(body: &'a str, label: &str) -> Option<&'a str> {
        body.lines()
            .find_map(|l| l.strip_prefix(label)?.strip_prefix(':'))
            .map(str::trim)
    }

    #[test]
    fn the_match_arms_are_the_domains_event_types() {
        assert_eq!(KycStatus::Approved.event(), "investor.kyc_approved");
        assert_eq!(TransferStatus::Settled.event(), "transfer.settled");
        assert_eq!(TransferStatus::Rejected.event(), "transfer.rejected");
        assert_eq!(
            TransferStatus::ManualReview.event(),
            "transfer.manual_review"
        );
    }

    #[test]
    fn kyc_approved_names_the_investor_and_the_expiry() {
        let r = render(
            &event(
                INVESTOR_KYC_APPROVED,
                json!({"investor_id": INVESTOR, "kyc_status": "approved",
                       "kyc_expires_at": "2027-11-05T00:00:00Z"}),
            ),
            "Acme Fund",
        );
        assert_eq!(
            r.subject,
            format!("[rwa] Acme Fund: KYC approved for investor {INVESTOR}")
        );
        assert!(has_line(
            &r.text,
            &format!("The KYC of investor {INVESTOR} was approved.")
        ));
        assert!(
            fact(&r.text, "Valid until") == Some("2027-11-05T00:00:00Z"),
            "{}",
            r.text
        );
        assert!(r.html.contains("<td>2027-11-05T00:00:00Z</td>"));
        assert!(
            r.text
                .contains("Acme Fund · investor.kyc_approved · event 42")
        );
    }

    #[test]
    fn kyc_rejected_and_expired_have_their_own_words() {
        let data = json!({"investor_id": INVESTOR, "kyc_expires_at": "2026-11-01T00:00:00Z"});
        let rejected = render(&event(INVESTOR_KYC_REJECTED, data.clone()), "Acme");
        assert_eq!(
            rejected.subject,
            format!("[rwa] Acme: KYC rejected for investor {INVESTOR}")
        );
        assert!(
            rejected
                .text
                .contains("refused until a new decision approves it")
        );
        assert!(
            !rejected.text.contains("2026-11-01"),
            "a rejection has no expiry"
        );

        let expired = render(&event(INVESTOR_KYC_EXPIRED, data), "Acme");
        assert_eq!(
            expired.subject,
            format!("[rwa] Acme: KYC expired for investor {INVESTOR}")
        );
        assert!(has_line(
            &expired.text,
            &format!("The KYC approval of investor {INVESTOR} expired.")
        ));
        assert!(fact(&expired.text, "Expired at") == Some("2026-11-01T00:00:00Z"));
    }

    #[test]
    fn kyc_without_an_investor_still_reads() {
        let r = render(&event(INVESTOR_KYC_APPROVED, json!({})), "Acme");
        assert_eq!(r.subject, "[rwa] Acme: KYC approved for an investor");
        assert!(has_line(&r.text, "The KYC of an investor was approved."));
        assert!(!r.text.contains("Valid until"));
    }

    #[test]
    fn settled_transfer_lists_amount_and_parties() {
        let mut data = transfer_data("settled");
        data["tx_hash"] = json!("0xabc");
        let r = render(&event("transfer.settled", data), "Acme");
        assert_eq!(
            r.subject,
            format!("[rwa] Acme: transfer {TRANSFER} settled")
        );
        assert!(has_line(
            &r.text,
            &format!("Transfer {TRANSFER} is settled on-chain.")
        ));
        assert!(
            fact(&r.text, "Amount") == Some("1500 base units"),
            "{}",
            r.text
        );
        assert_eq!(
            fact(&r.text, "From"),
            Some(
                format!("0x1111111111111111111111111111111111111111 (investor {INVESTOR})")
                    .as_str()
            )
        );
        assert_eq!(
            fact(&r.text, "To"),
            Some("0x2222222222222222222222222222222222222222")
        );
        assert_eq!(fact(&r.text, "Transaction"), Some("0xabc"));
        // Aligned for a monospaced reader.
        assert!(has_line(&r.text, "Transaction: 0xabc"));
        assert!(has_line(&r.text, "Amount:      1500 base units"));
        assert!(!r.text.contains("Block"), "absent fields are left out");
        assert!(r.html.contains(
            "<th align=\"left\" style=\"padding-right:1em\">Amount</th><td>1500 base units</td>"
        ));
    }

    #[test]
    fn rejected_transfer_says_why() {
        let mut data = transfer_data("rejected");
        data["failed_rules"] = json!(["country_block", "max_holders"]);
        data["rule_set_version"] = json!(3);
        data["review"] =
            json!({"decision": "rejected", "reason": "source of funds", "by": "key:ab12"});
        let r = render(&event("transfer.rejected", data), "Acme");
        assert_eq!(
            r.subject,
            format!("[rwa] Acme: transfer {TRANSFER} rejected")
        );
        assert!(has_line(
            &r.text,
            &format!("Transfer {TRANSFER} was rejected.")
        ));
        assert_eq!(
            fact(&r.text, "Rules not passed"),
            Some("country_block, max_holders")
        );
        assert_eq!(fact(&r.text, "Rule set version"), Some("3"));
        assert_eq!(
            fact(&r.text, "Review"),
            Some("rejected by key:ab12: source of funds")
        );
        assert!(r.text.contains("No tokens moved"));

        let mut refused = transfer_data("rejected");
        refused["reason"] = json!("token refused: not verified");
        refused["failed_rules"] = json!([]);
        let r = render(&event("transfer.rejected", refused), "Acme");
        assert_eq!(fact(&r.text, "Reason"), Some("token refused: not verified"));
        assert!(
            !r.text.contains("Rules not passed"),
            "an empty list is left out"
        );
    }

    #[test]
    fn manual_review_says_how_to_decide() {
        let r = render(
            &event("transfer.manual_review", transfer_data("manual_review")),
            "Acme",
        );
        assert_eq!(
            r.subject,
            format!("[rwa] Acme: transfer {TRANSFER} waiting for a manual review")
        );
        assert!(has_line(
            &r.text,
            &format!("Transfer {TRANSFER} is waiting for a manual review.")
        ));
        assert!(
            r.text
                .contains(&format!("POST /v1/transfers/{TRANSFER}/review"))
        );
    }

    #[test]
    fn disabled_webhook_names_the_endpoint_but_not_its_query() {
        let r = render(
            &event(
                WEBHOOK_DISABLED,
                json!({"webhook_id": "0190a0b0-0000-7000-8000-0000000000ff",
                       "url": "https://hooks.example.com/in?token=s3cret",
                       "failing_since": "2026-11-04T09:00:00Z",
                       "last_error": "HTTP 503"}),
            ),
            "Acme",
        );
        assert_eq!(
            r.subject,
            "[rwa] Acme: webhook to hooks.example.com disabled"
        );
        assert!(r.text.contains("failing since 2026-11-04T09:00:00Z"));
        assert_eq!(fact(&r.text, "URL"), Some("https://hooks.example.com/in?…"));
        assert_eq!(fact(&r.text, "Last error"), Some("HTTP 503"));
        assert_eq!(
            fact(&r.text, "Webhook"),
            Some("0190a0b0-0000-7000-8000-0000000000ff")
        );
        assert!(!r.text.contains("s3cret") && !r.html.contains("s3cret"));
    }

    #[test]
    fn other_types_show_their_data_as_json() {
        let r = render(
            &event("token.deployed", json!({"symbol": "ACME", "decimals": 0})),
            "Acme",
        );
        assert_eq!(r.subject, "[rwa] token.deployed");
        // Key order depends on serde_json's features in the build: lines
        // are compared without their trailing comma.
        let json_line = |body: &str, line: &str| {
            body.lines()
                .any(|l| l.trim_end().trim_end_matches(',') == line)
        };
        assert!(json_line(&r.text, "  \"symbol\": \"ACME\""), "{}", r.text);
        assert!(json_line(&r.text, "  \"decimals\": 0"), "{}", r.text);
        assert!(
            json_line(&r.html, "  &quot;symbol&quot;: &quot;ACME&quot;"),
            "{}",
            r.html
        );
        assert!(r.html.contains("<pre>{\n"));
    }

    #[test]
    fn html_escapes_every_value() {
        assert_eq!(
            escape(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
        let mut data = transfer_data("settled");
        data["to_wallet"] = json!("<script>alert(1)</script>");
        let r = render(&event("transfer.settled", data), "<b>Acme</b>");
        assert!(
            !r.html.contains("<script>") && !r.html.contains("<b>"),
            "{}",
            r.html
        );
        assert!(r.html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(r.html.contains("&lt;b&gt;Acme&lt;/b&gt;"));
        // Plain text is not HTML: it shows the value as it is.
        assert!(r.text.contains("<script>alert(1)</script>"));

        let generic = render(&event("x.y", json!({"note": "<script>"})), "Acme");
        assert!(!generic.html.contains("<script>"));
    }

    #[test]
    fn subjects_stay_on_one_line() {
        let injected = "Acme\r\nBcc: victim@example.com";
        let r = render(
            &event(INVESTOR_KYC_APPROVED, json!({"investor_id": "a\nb"})),
            injected,
        );
        assert!(!r.subject.contains(['\r', '\n']), "{:?}", r.subject);
        assert_eq!(
            r.subject,
            "[rwa] Acme  Bcc: victim@example.com: KYC approved for investor a b"
        );
    }
}
