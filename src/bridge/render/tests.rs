//! Unit tests of rendering: defaults per channel and view kind, overrides,
//! load-time checks, helpers and truncation.

use super::*;
use crate::bridge::channels::ChannelKind;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

fn now() -> DateTime<Utc> {
    at("2026-11-22T19:00:00Z")
}

fn defaults() -> Templates {
    Templates::new(&TemplatesConfig::default()).unwrap()
}

fn render(kind: ChannelKind, view_kind: ViewKind) -> Outgoing {
    defaults().render_at(kind, &View::sample(view_kind), now()).unwrap()
}

/// The sample notification rendered for `kind` with the templates of `config`.
fn render_with(config: &TemplatesConfig, kind: ChannelKind) -> Outgoing {
    Templates::new(config).unwrap().render_at(kind, &View::sample(ViewKind::Notification), now()).unwrap()
}

#[test]
fn durations_read_like_people_write_them() {
    for (seconds, text) in [
        (0.0, "0s"),
        (0.4, "0s"),
        (45.0, "45s"),
        (65.0, "1m 5s"),
        (3600.0, "1h"),
        (3900.0, "1h 5m"),
        (3930.0, "1h 5m"),
        (266_400.0, "3d 2h"),
        (259_500.0, "3d"),
        (-90.0, "-1m 30s"),
    ] {
        assert_eq!(human_duration(seconds), text, "{seconds}");
    }
    let alert = View::sample(ViewKind::Notification).resolved[0].clone();
    assert_eq!(alert.firing_for.as_deref(), Some("1h 5m"));
    let firing = View::sample(ViewKind::Notification).firing[0].clone();
    assert_eq!(firing.with_duration(at("2026-11-22T17:12:36Z")).firing_for.as_deref(), Some("45s"));
}

#[test]
fn default_notification_subject_follows_alertmanager() {
    let out = render(ChannelKind::Email, ViewKind::Notification);
    assert_eq!(out.subject, "[FIRING:1] HighLatency (api critical payments)");
    let mut resolved = View::sample(ViewKind::Notification);
    resolved.status = "resolved".into();
    resolved.firing.clear();
    let out = defaults().render_at(ChannelKind::Slack, &resolved, now()).unwrap();
    assert_eq!(out.subject, "[RESOLVED] HighLatency (api critical payments)");
}

#[test]
fn short_body_lists_firing_and_resolved_with_durations() {
    let out = render(ChannelKind::Telegram, ViewKind::Notification);
    assert_eq!(
        out.body,
        "[FIRING:1] HighLatency (api critical payments)\n\
         \n\
         🔥 High request latency on api-2 (api-2:9100) (firing for 1h 48m)\n\
         ✅ High request latency on api-1 (api-1:9100) (resolved, was firing for 1h 5m)\n\
         \n\
         Acknowledge: https://checkit.example/ack/17.YWxpY2U.1795000000.c2lnbmF0dXJl"
    );
    assert_eq!(out.html, None);
    // ntfy shows the subject as its title, so the body does not repeat it.
    let ntfy = render(ChannelKind::Ntfy, ViewKind::Notification);
    assert!(ntfy.body.starts_with("🔥 High request latency on api-2"), "{}", ntfy.body);
}

#[test]
fn catch_up_says_what_fired_what_fires_and_what_resolved() {
    let out = render(ChannelKind::Slack, ViewKind::CatchUp);
    assert_eq!(out.subject, "[CATCH-UP] 1 fired while quiet: 1 still firing, 1 resolved");
    assert_eq!(
        out.body,
        "[CATCH-UP] 1 fired while quiet: 1 still firing, 1 resolved\n\
         \n\
         1 alert fired while notifications were paused.\n\
         \n\
         Still firing:\n\
         🔥 High request latency on api-2 (api-2:9100) (firing for 1h 48m)\n\
         \n\
         Resolved meanwhile:\n\
         ✅ High request latency on api-1 (api-1:9100) (resolved, was firing for 1h 5m)"
    );
}

#[test]
fn overflow_summarises_what_was_held_back() {
    let out = render(ChannelKind::Log, ViewKind::Overflow);
    assert_eq!(out.subject, "[OVERFLOW] 12 more alerts, 1 still firing");
    assert!(
        out.body.contains(
            "12 more alerts held back by the rate limit. Still firing:\n🔥 High request latency on api-2 (api-2:9100) (firing for 1h 48m)"
        ),
        "{}",
        out.body
    );
    let sms = render(ChannelKind::Sms, ViewKind::Overflow);
    assert_eq!(sms.body, "12 more alerts, 1 still firing; High request latency on api-2 (api-2:9100)");
}

#[test]
fn sms_default_is_one_compact_gsm_line() {
    let out = render(ChannelKind::Sms, ViewKind::Notification);
    assert_eq!(
        out.body,
        "[FIRING:1] HighLatency (api critical payments); High request latency on api-2 (api-2:9100); \
         RESOLVED High request latency on api-1 (api-1:9100) after 1h 5m"
    );
    assert_eq!(sms_segments(&out.body), 1);
}

#[test]
fn email_has_full_text_and_escaped_html() {
    let mut view = View::sample(ViewKind::Notification);
    view.firing[0].annotations.insert("summary".into(), "<script>alert(1)</script> & co".into());
    let out = defaults().render_at(ChannelKind::Email, &view, now()).unwrap();
    assert!(out.body.starts_with("Firing (1):\n\n* <script>alert(1)</script> & co"), "{}", out.body);
    assert!(out.body.contains("  Labels:\n    alertname = HighLatency\n    instance = api-2:9100\n"), "{}", out.body);
    assert!(out.body.contains("Resolved (1):"), "{}", out.body);
    assert!(out.body.contains("Started: 2026-11-22 17:11:51 UTC, ended: 2026-11-22 18:16:51 UTC"), "{}", out.body);
    assert!(out.body.ends_with("Alertmanager: http://alertmanager.example:9093"), "{}", out.body);
    let html = out.html.unwrap();
    assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt; &amp; co"), "{html}");
    assert!(!html.contains("<script>"), "{html}");
}

#[test]
fn webhook_default_body_is_the_view_as_json() {
    let view = View::sample(ViewKind::Notification);
    let out = defaults().render_at(ChannelKind::Webhook, &view, now()).unwrap();
    let back: View = serde_json::from_str(&out.body).unwrap();
    assert_eq!(back, view);
}

#[test]
fn overrides_replace_defaults_and_see_helpers() {
    let config = TemplatesConfig {
        telegram: Some(TemplateSet {
            body: Some(
                "{{ status|toUpper }} {{ common_labels|formatLabels(' ') }} since {{ firing[0].starts_at|since }} \
                 at {{ firing[0].starts_at|date('%H:%M', 'Europe/Berlin') }} \
                 {{ common_labels|without('job', 'team')|labelNames|join(',') }} \
                 {{ 3900|humanizeDuration }} {{ 'a-b-c'|reReplaceAll('-', '+') }} \
                 {% for p in group_labels|sortedPairs %}{{ p.name }}:{{ p.value }}{% endfor %} [{{ subject }}]"
                    .into(),
            ),
            ..TemplateSet::default()
        }),
        webhook: Some(TemplateSet {
            body: Some(r#"{"text": {{ subject }}, "n": {{ alerts|length }}}"#.into()),
            ..TemplateSet::default()
        }),
        ..TemplatesConfig::default()
    };
    let templates = Templates::new(&config).unwrap();
    let view = View::sample(ViewKind::Notification);
    let out = templates.render_at(ChannelKind::Telegram, &view, now()).unwrap();
    assert_eq!(
        out.body,
        "FIRING alertname=HighLatency job=api severity=critical team=payments since 1h 48m at 18:11 \
         alertname,severity 1h 5m a+b+c alertname:HighLatency [[FIRING:1] HighLatency (api critical payments)]"
    );
    let hook = templates.render_at(ChannelKind::Webhook, &view, now()).unwrap();
    assert_eq!(hook.body, r#"{"text": "[FIRING:1] HighLatency (api critical payments)", "n": 2}"#);
    // Other channels keep their defaults.
    assert_eq!(
        templates.render_at(ChannelKind::Slack, &view, now()).unwrap(),
        defaults().render_at(ChannelKind::Slack, &view, now()).unwrap()
    );
}

#[test]
fn template_files_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("subject.j2");
    std::fs::write(&path, "{{ receiver }}: {{ alerts|length }} alerts\n").unwrap();
    let config = TemplatesConfig {
        email: Some(TemplateSet { subject_file: Some(path.to_string_lossy().into_owned()), ..TemplateSet::default() }),
        ..TemplatesConfig::default()
    };
    let out = render_with(&config, ChannelKind::Email);
    assert_eq!(out.subject, "team-payments: 2 alerts");
}

#[test]
fn bad_templates_fail_the_config_check_with_their_path() {
    let config = TemplatesConfig {
        email: Some(TemplateSet {
            subject: Some("{{ status".into()),
            body: Some("x".into()),
            body_file: Some("/x".into()),
            ..TemplateSet::default()
        }),
        sms: Some(TemplateSet { subject_file: Some("/nonexistent/subject.j2".into()), ..TemplateSet::default() }),
        slack: Some(TemplateSet { html: Some("<p>".into()), ..TemplateSet::default() }),
        telegram: Some(TemplateSet {
            body: Some("{{ firing[0].starts_at|date('%Y', 'Mars/Olympus') }}".into()),
            ..TemplateSet::default()
        }),
        webhook: Some(TemplateSet { body: Some(r#"{"text": "{{ subject }}"}"#.into()), ..TemplateSet::default() }),
        log: Some(TemplateSet { subject: Some("{{ alerts|nosuchfilter }}".into()), ..TemplateSet::default() }),
        ..TemplatesConfig::default()
    };
    let mut problems = crate::config::Problems::default();
    config.validate("bridge.templates", &mut problems);
    let shown: Vec<String> = problems.0.iter().map(ToString::to_string).collect();
    let expected_starts = [
        "bridge.templates.email.subject: invalid template: syntax error",
        "bridge.templates.email.body: body and body_file are mutually exclusive",
        "bridge.templates.sms.subject_file: cannot read \"/nonexistent/subject.j2\"",
        "bridge.templates.slack.html: html is only used by the email channel",
        "bridge.templates.telegram.body: cannot render telegram/body.txt: invalid operation: unknown time zone \"Mars/Olympus\"",
        "bridge.templates.webhook.body: webhook body is not JSON",
        "bridge.templates.log.subject: cannot render log/subject.txt: unknown filter",
    ];
    assert_eq!(shown.len(), expected_starts.len(), "{shown:#?}");
    for (problem, start) in shown.iter().zip(expected_starts) {
        assert!(problem.starts_with(start), "{problem}");
    }
    assert_eq!(Templates::new(&config).unwrap_err(), problems.0);
}

#[test]
fn missing_labels_render_empty_instead_of_failing() {
    let config = TemplatesConfig {
        slack: Some(TemplateSet {
            body: Some("[{{ common_labels.nosuch }}][{{ common_labels.nosuch.deeper }}]".into()),
            ..TemplateSet::default()
        }),
        ..TemplatesConfig::default()
    };
    let out = render_with(&config, ChannelKind::Slack);
    assert_eq!(out.body, "[][]");
}

#[test]
fn empty_group_labels_fall_back_to_alertname() {
    let mut view = View::sample(ViewKind::Notification);
    view.group_labels.clear();
    let out = defaults().render_at(ChannelKind::Email, &view, now()).unwrap();
    assert_eq!(out.subject, "[FIRING:1] HighLatency (api critical payments)");
    view.common_labels.clear();
    let out = defaults().render_at(ChannelKind::Email, &view, now()).unwrap();
    assert_eq!(out.subject, "[FIRING:1] alerts");
}

#[test]
fn long_messages_are_cut_to_channel_limits() {
    let mut view = View::sample(ViewKind::Notification);
    let template = view.firing[0].clone();
    view.firing = (0..400)
        .map(|index| {
            let mut alert = template.clone();
            alert.labels.insert("instance".into(), format!("node-{index}"));
            alert
        })
        .collect();
    let templates = defaults();
    let telegram = templates.render_at(ChannelKind::Telegram, &view, now()).unwrap();
    assert!(telegram.body.encode_utf16().count() <= TELEGRAM_MAX_UTF16);
    assert!(telegram.body.ends_with(ELLIPSIS));
    let ntfy = templates.render_at(ChannelKind::Ntfy, &view, now()).unwrap();
    assert!(ntfy.body.len() <= NTFY_MAX_BYTES);
    assert!(ntfy.body.ends_with(ELLIPSIS));
    let sms = templates.render_at(ChannelKind::Sms, &view, now()).unwrap();
    assert_eq!(sms_segments(&sms.body), 10);
    assert!(sms.body.ends_with("..."));
    let email = templates.render_at(ChannelKind::Email, &view, now()).unwrap();
    assert!(email.body.contains("node-399"));
}

#[test]
fn truncation_respects_character_boundaries() {
    assert_eq!(truncate_chars("hello", 5, ELLIPSIS), "hello");
    assert_eq!(truncate_chars("hello world", 8, ELLIPSIS), "hello w…");
    assert_eq!(truncate_chars("hello world", 7, ELLIPSIS), "hello…");
    // "ü" is two bytes: a 6-byte budget keeps "aü" (3) + "…" (3).
    assert_eq!(truncate_bytes("aüüü", 6, ELLIPSIS), "aü…");
    assert_eq!(truncate_bytes("aüüü", 5, ELLIPSIS), "a…");
    // An emoji is two UTF-16 units.
    assert_eq!(truncate_by("😀😀😀", 4, ELLIPSIS, char::len_utf16), "😀…");
    for budget in 0..20 {
        let cut = truncate_bytes("Grüße 😀 aus Köln", budget, ELLIPSIS);
        assert!(cut.len() <= budget.max(ELLIPSIS.len()), "{budget}: {cut}");
    }
}

#[test]
fn sms_segments_follow_gsm_and_ucs2_sizes() {
    assert_eq!(sms_segments(""), 0);
    assert_eq!(sms_segments(&"a".repeat(160)), 1);
    assert_eq!(sms_segments(&"a".repeat(161)), 2);
    assert_eq!(sms_segments(&"a".repeat(306)), 2);
    assert_eq!(sms_segments(&"a".repeat(307)), 3);
    // Extension characters take two septets.
    assert_eq!(sms_segments(&"{".repeat(80)), 1);
    assert_eq!(sms_segments(&"{".repeat(81)), 2);
    // One non-GSM character switches the whole text to UCS-2.
    assert_eq!(sms_segments(&format!("{}…", "a".repeat(69))), 1);
    assert_eq!(sms_segments(&format!("{}…", "a".repeat(70))), 2);
    assert_eq!(sms_segments(&"ü".repeat(160)), 1, "ü is in the GSM alphabet");
    // A surrogate pair never straddles two segments: 33 pairs fill 66 of 67
    // units, so the 34th starts segment two.
    assert_eq!(sms_segments(&"😀".repeat(35)), 1);
    assert_eq!(sms_segments(&"😀".repeat(36)), 2);
    assert_eq!(sms_segments(&"😀".repeat(67)), 3);
}

#[test]
fn sms_truncation_keeps_within_segments_and_encoding() {
    let gsm = "x".repeat(1000);
    for max in 1..=5 {
        let cut = truncate_sms(&gsm, max);
        assert_eq!(sms_segments(&cut), max, "{max}");
        assert!(cut.ends_with("..."));
    }
    assert_eq!(truncate_sms(&gsm, 1).len(), 160);
    assert_eq!(truncate_sms(&gsm, 2).len(), 306);
    let ucs2 = "ж".repeat(500);
    let cut = truncate_sms(&ucs2, 2);
    assert_eq!(sms_segments(&cut), 2);
    assert!(cut.ends_with(ELLIPSIS));
    assert_eq!(cut.chars().count(), 134);
    assert_eq!(truncate_sms("short", 1), "short");
}

#[test]
fn the_documented_example_compiles() {
    let yaml = crate::bridge::channels::tests::doc_example(
        include_str!("../render.rs"),
        "/// The `bridge.templates:` section",
    );
    let value = crate::config::yaml::parse_value(&yaml).unwrap();
    let mut config: TemplatesConfig = crate::config::yaml::from_value(value, "bridge.templates").unwrap();
    config.email.as_mut().unwrap().html_file = None;
    let out = render_with(&config, ChannelKind::Webhook);
    assert_eq!(out.body, r#"{"text": "[FIRING:1] HighLatency (api critical payments)", "alerts": 2}"#);
}

#[test]
fn messages_render_their_subject_and_body() {
    let out = render(ChannelKind::Email, ViewKind::Message);
    assert_eq!(out.subject, "Nightly build failed");
    assert!(out.body.starts_with("Build 1234 of main failed in the test stage."), "{}", out.body);
    assert!(out.body.contains("Sent by ci through checkit (severity warning)."), "{}", out.body);
    assert!(out.html.unwrap_or_default().contains("Build 1234 of main failed"));
    let sms = render(ChannelKind::Sms, ViewKind::Message);
    assert!(sms.body.starts_with("Nightly build failed: Build 1234"), "{}", sms.body);
}
