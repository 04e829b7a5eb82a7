//! Bridge channels against real receivers: every HTTP channel posts to a
//! local axum recorder (which checks what arrived and answers 429, 5xx or
//! 4xx on demand), and email goes to the aiosmtpd peer with STARTTLS, AUTH
//! and implicit TLS.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use checkit::bridge::channels::{ChannelKind, Channels, ChannelsConfig, DeliveryError, Receipt};
use checkit::bridge::render::{Outgoing, Templates, TemplatesConfig, View, ViewKind};
use checkit::config::Problems;
use checkit::config::yaml::{from_value, parse_value};

use crate::support::fake::scripted_tls_server;
use crate::support::peers::{SmtpFailure, SmtpOpts, SmtpServer, SmtpStage};
use crate::support::{Leaf, ScriptStep, TestCerts, closed_port, hang_server};

/// One request the recorder saw.
#[derive(Debug, Clone)]
struct Recorded {
    method: Method,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: String,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|err| panic!("not JSON ({err}): {}", self.body))
    }
}

/// An answer the recorder gives, in order; afterwards it answers 200.
#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

fn reply(status: u16, body: &str) -> Reply {
    Reply { status, headers: Vec::new(), body: body.to_string() }
}

fn reply_with(status: u16, header: &'static str, value: &str, body: &str) -> Reply {
    Reply { status, headers: vec![(header, value.to_string())], body: body.to_string() }
}

/// An HTTP server on 127.0.0.1:0 that records every request.
struct Recorder {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    replies: Arc<Mutex<VecDeque<Reply>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    async fn start() -> Recorder {
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let replies: Arc<Mutex<VecDeque<Reply>>> = Arc::default();
        let (seen, queued) = (requests.clone(), replies.clone());
        let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (seen, queued) = (seen.clone(), queued.clone());
            async move {
                seen.lock().expect("lock").push(Recorded {
                    method,
                    path: uri.path().to_string(),
                    query: uri.query().map(str::to_string),
                    headers,
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
                let next = queued.lock().expect("lock").pop_front().unwrap_or_else(|| reply(200, "ok"));
                let mut response = axum::response::Response::new(axum::body::Body::from(next.body));
                *response.status_mut() = StatusCode::from_u16(next.status).expect("status code");
                for (name, value) in next.headers {
                    response.headers_mut().insert(name, value.parse().expect("header value"));
                }
                response
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Recorder { addr, requests, replies, task }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn answer(&self, replies: impl IntoIterator<Item = Reply>) {
        self.replies.lock().expect("lock").extend(replies);
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("lock").clone()
    }

    fn last(&self) -> Recorded {
        self.requests().pop().expect("a request arrived")
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Parses `yaml` as the `bridge.channels` section, checks it validates
/// cleanly and builds the channels.
fn channels(yaml: &str) -> Channels {
    let config: ChannelsConfig =
        from_value(parse_value(yaml).expect("yaml"), "bridge.channels").expect("channels config");
    let mut problems = Problems::default();
    config.validate("bridge.channels", &mut problems);
    assert!(problems.is_empty(), "{:?}", problems.0);
    Channels::new(&config).expect("build channels")
}

fn secret_file(dir: &Path, name: &str, value: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("{value}\n")).expect("write secret file");
    path.to_string_lossy().into_owned()
}

fn rendered(kind: ChannelKind) -> Outgoing {
    let templates = Templates::new(&TemplatesConfig::default()).expect("default templates");
    templates.render(kind, &View::sample(ViewKind::Notification)).expect("render")
}

fn text(subject: &str, body: &str) -> Outgoing {
    Outgoing { subject: subject.to_string(), body: body.to_string(), html: None }
}

/// Asserts a failure's class.
fn assert_failure(
    result: Result<Receipt, DeliveryError>,
    reason: &str,
    retryable: bool,
    retry_after: Option<u64>,
) -> DeliveryError {
    let err = result.expect_err("delivery should fail");
    assert_eq!(err.reason, reason, "{err}");
    assert_eq!(err.retryable, retryable, "{err}");
    if let Some(seconds) = retry_after {
        assert_eq!(err.retry_after, Some(Duration::from_secs(seconds)), "{err}");
    }
    err
}

#[tokio::test]
async fn webhook_posts_the_view_as_json_and_classifies_answers() {
    let recorder = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let auth = secret_file(dir.path(), "auth", "Bearer hook-s3cret");
    let channels = channels(&format!(
        "timeout: 2s\nwebhook:\n  headers: {{X-Source: checkit}}\n  secret_headers:\n    Authorization: {{file: {auth}}}\n"
    ));
    let url = recorder.url("/hooks/alerts");
    let message = rendered(ChannelKind::Webhook);

    recorder.answer([reply(202, "accepted\n")]);
    let receipt = channels.deliver(ChannelKind::Webhook, &url, &message).await.unwrap();
    assert_eq!(receipt.provider_response, "202 Accepted: accepted");
    let request = recorder.last();
    assert_eq!(request.method, Method::POST);
    assert_eq!(request.path, "/hooks/alerts");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("x-source"), Some("checkit"));
    assert_eq!(request.header("authorization"), Some("Bearer hook-s3cret"));
    assert!(request.header("user-agent").unwrap().starts_with("checkit/"));
    let view: View = serde_json::from_str(&request.body).unwrap();
    assert_eq!(view.kind, ViewKind::Notification);
    assert_eq!(view.firing[0].labels["instance"], "api-2:9100");

    recorder.answer([
        reply_with(429, "retry-after", "7", "slow down"),
        reply_with(503, "retry-after", &httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120)), ""),
        reply(500, "boom"),
        reply(400, "bad payload"),
        reply(401, "who are you"),
        reply(404, "echo: Bearer hook-s3cret"),
    ]);
    let send = || channels.deliver(ChannelKind::Webhook, &url, &message);
    let err = assert_failure(send().await, "rate_limited", true, Some(7));
    assert_eq!(err.detail, "429 Too Many Requests: slow down");
    let err = assert_failure(send().await, "server_error", true, None);
    let hint = err.retry_after.expect("HTTP-date Retry-After");
    assert!(hint > Duration::from_secs(100) && hint <= Duration::from_secs(120), "{hint:?}");
    assert_failure(send().await, "server_error", true, None);
    assert_failure(send().await, "client_error", false, None);
    assert_failure(send().await, "auth", false, None);
    let err = assert_failure(send().await, "client_error", false, None);
    assert!(!err.detail.contains("hook-s3cret"), "secret leaked: {}", err.detail);
    assert_eq!(recorder.requests().len(), 7);
}

#[tokio::test]
async fn network_failures_are_retryable() {
    let channels = channels("timeout: 300ms\n");
    let message = text("s", "b");
    let refused = format!("http://{}/hook", closed_port());
    assert_failure(channels.deliver(ChannelKind::Webhook, &refused, &message).await, "connect", true, None);
    let hang = hang_server().await;
    let silent = format!("http://{}/hook", hang.addr);
    assert_failure(channels.deliver(ChannelKind::Webhook, &silent, &message).await, "timeout", true, None);
    // A certificate from a CA the system does not trust.
    let certs = TestCerts::generate();
    let tls = scripted_tls_server(certs.server_config(Leaf::Valid), vec![ScriptStep::Close]).await;
    let untrusted = format!("https://localhost:{}/hook", tls.addr.port());
    assert_failure(channels.deliver(ChannelKind::Webhook, &untrusted, &message).await, "tls", true, None);
}

#[tokio::test]
async fn telegram_sends_plain_text_and_honours_retry_after() {
    let recorder = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token = "123456:ABC-secret-token";
    let token_file = secret_file(dir.path(), "token", token);
    let channels = channels(&format!("telegram:\n  api_url: {}/\n  token_file: {token_file}\n", recorder.url("")));
    let message = rendered(ChannelKind::Telegram);

    recorder.answer([reply(200, r#"{"ok":true,"result":{"message_id":42,"chat":{"id":-100123}}}"#)]);
    let receipt = channels.deliver(ChannelKind::Telegram, "-100123", &message).await.unwrap();
    assert_eq!(receipt.provider_response, "200 message_id=42");
    let request = recorder.last();
    assert_eq!(request.method, Method::POST);
    assert_eq!(request.path, format!("/bot{token}/sendMessage"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    let body = request.json();
    assert_eq!(body["chat_id"], "-100123");
    assert_eq!(body["text"], message.body);
    assert_eq!(body["link_preview_options"]["is_disabled"], true);
    assert!(body.get("parse_mode").is_none());

    recorder.answer([
        reply(
            429,
            r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 13","parameters":{"retry_after":13}}"#,
        ),
        reply(400, r#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#),
        reply(401, r#"{"ok":false,"error_code":401,"description":"Unauthorized"}"#),
        reply(502, "<html>Bad Gateway</html>"),
    ]);
    let send = || channels.deliver(ChannelKind::Telegram, "@checkit_alerts", &message);
    let err = assert_failure(send().await, "rate_limited", true, Some(13));
    assert!(!err.detail.contains(token), "{}", err.detail);
    let err = assert_failure(send().await, "client_error", false, None);
    assert!(err.detail.contains("chat not found"), "{}", err.detail);
    assert_failure(send().await, "auth", false, None);
    assert_failure(send().await, "server_error", true, None);

    // Over-long text is cut to Telegram's limit by the channel itself.
    let long = text("s", &"ü".repeat(5000));
    channels.deliver(ChannelKind::Telegram, "42", &long).await.unwrap();
    let sent = recorder.last().json()["text"].as_str().unwrap().to_string();
    assert_eq!(sent.encode_utf16().count(), 4096);
    assert!(sent.ends_with('…'));

    // The token is part of the URL; transport errors must not show it.
    let offline = channels_for_offline_telegram(&token_file);
    let err = assert_failure(offline.deliver(ChannelKind::Telegram, "42", &message).await, "connect", true, None);
    assert!(!err.detail.contains(token), "{}", err.detail);
}

fn channels_for_offline_telegram(token_file: &str) -> Channels {
    channels(&format!("timeout: 1s\ntelegram:\n  api_url: http://{}\n  token_file: {token_file}\n", closed_port()))
}

#[tokio::test]
async fn slack_posts_text_and_honours_retry_after() {
    let recorder = Recorder::start().await;
    let channels = channels("slack: {}\n");
    let url = recorder.url("/services/T000/B000/XXXX");
    let message = rendered(ChannelKind::Slack);

    let receipt = channels.deliver(ChannelKind::Slack, &url, &message).await.unwrap();
    assert_eq!(receipt.provider_response, "200 OK: ok");
    let request = recorder.last();
    assert_eq!(request.method, Method::POST);
    assert_eq!(request.path, "/services/T000/B000/XXXX");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.json(), serde_json::json!({ "text": message.body }));
    channels.deliver(ChannelKind::Slack, &url, &text("s", "p99 > 1s & <rising>")).await.expect("deliver");
    assert_eq!(recorder.last().json()["text"], "p99 &gt; 1s &amp; &lt;rising&gt;");

    recorder.answer([
        reply_with(429, "retry-after", "30", "rate_limited"),
        reply(404, "no_service"),
        reply(403, "action_prohibited"),
        reply(500, "rollup_error"),
    ]);
    let send = || channels.deliver(ChannelKind::Slack, &url, &message);
    assert_failure(send().await, "rate_limited", true, Some(30));
    assert_failure(send().await, "client_error", false, None);
    assert_failure(send().await, "auth", false, None);
    assert_failure(send().await, "server_error", true, None);
}

#[tokio::test]
async fn ntfy_publishes_with_title_priority_tags_and_token() {
    let recorder = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = secret_file(dir.path(), "token", "tk_ntfy_secret");
    let channels = channels(&format!(
        "ntfy:\n  server: {}\n  token_file: {token_file}\n  priority: high\n  tags: [rotating_light, checkit]\n",
        recorder.url("")
    ));
    let message = rendered(ChannelKind::Ntfy);

    recorder.answer([reply(200, r#"{"id":"hwQ2YpKdmg","event":"message","topic":"ops-alerts"}"#)]);
    let receipt = channels.deliver(ChannelKind::Ntfy, "ops-alerts", &message).await.unwrap();
    assert!(receipt.provider_response.starts_with("200 OK: {\"id\":\"hwQ2YpKdmg\""), "{receipt:?}");
    let request = recorder.last();
    assert_eq!(request.method, Method::POST);
    assert_eq!(request.path, "/ops-alerts");
    assert_eq!(request.header("title"), Some(message.subject.as_str()));
    assert_eq!(request.header("priority"), Some("high"));
    assert_eq!(request.header("tags"), Some("rotating_light,checkit"));
    assert_eq!(request.header("authorization"), Some("Bearer tk_ntfy_secret"));
    assert_eq!(request.body, message.body);

    // Non-ASCII titles travel as RFC 2047 encoded words, which ntfy decodes.
    channels.deliver(ChannelKind::Ntfy, "ops-alerts", &text("Störung", "x")).await.unwrap();
    assert_eq!(recorder.last().header("title"), Some("=?UTF-8?B?U3TDtnJ1bmc=?="));

    recorder.answer([
        reply(429, r#"{"code":42901,"http":429,"error":"limit reached: too many requests"}"#),
        reply(507, "insufficient storage"),
        reply(403, r#"{"code":40301,"http":403,"error":"forbidden"}"#),
    ]);
    let send = || channels.deliver(ChannelKind::Ntfy, "ops-alerts", &message);
    assert_failure(send().await, "rate_limited", true, None);
    assert_failure(send().await, "server_error", true, None);
    assert_failure(send().await, "auth", false, None);
}

#[tokio::test]
async fn sms_gateway_renders_json_and_form_bodies() {
    let recorder = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = secret_file(dir.path(), "key", "sms-api-key");
    let json_channels = channels(&format!(
        "sms:\n  url: {}\n  from: checkit\n  max_segments: 1\n  secret_headers:\n    X-Api-Key: {{file: {key_file}}}\n  body: '{{\"messages\": [{{\"to\": {{{{ to }}}}, \"from\": {{{{ from }}}}, \"text\": {{{{ text }}}}}}]}}'\n",
        recorder.url("/api/send")
    ));
    let long = text("s", &format!("FIRING \"disk\" {}", "x".repeat(300)));
    json_channels.deliver(ChannelKind::Sms, "+491701234567", &long).await.unwrap();
    let request = recorder.last();
    assert_eq!(request.method, Method::POST);
    assert_eq!(request.path, "/api/send");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("x-api-key"), Some("sms-api-key"));
    let body = request.json();
    let message = &body["messages"][0];
    assert_eq!(message["to"], "+491701234567");
    assert_eq!(message["from"], "checkit");
    let sent = message["text"].as_str().unwrap();
    assert_eq!(sent.chars().count(), 160, "one GSM segment");
    assert!(sent.starts_with("FIRING \"disk\" xxx") && sent.ends_with("..."), "{sent}");

    let form_channels = channels(&format!(
        "sms:\n  url: {}\n  method: GET\n  format: form\n  body: 'To={{{{ to }}}}&Body={{{{ text }}}}'\n",
        recorder.url("/send?user=checkit")
    ));
    form_channels.deliver(ChannelKind::Sms, "+15551234567", &text("s", "Disk 95% full & rising")).await.unwrap();
    let request = recorder.last();
    assert_eq!(request.method, Method::GET);
    assert_eq!(request.path, "/send");
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(request.query.as_deref().unwrap().as_bytes()).into_owned().collect();
    assert_eq!(
        query,
        [
            ("user".to_string(), "checkit".to_string()),
            ("To".to_string(), "+15551234567".to_string()),
            ("Body".to_string(), "Disk 95% full & rising".to_string()),
        ]
    );

    recorder.answer([reply(503, "try later"), reply(422, "invalid number")]);
    let send = || json_channels.deliver(ChannelKind::Sms, "+491701234567", &long);
    assert_failure(send().await, "server_error", true, None);
    assert_failure(send().await, "client_error", false, None);
}

#[tokio::test]
async fn log_channel_and_local_refusals_need_no_server() {
    let channels = channels("{}");
    let message = rendered(ChannelKind::Log);
    let receipt = channels.deliver(ChannelKind::Log, "alice", &message).await.unwrap();
    assert_eq!(receipt.provider_response, "logged");
    assert_failure(
        channels.deliver(ChannelKind::Email, "alice@example.com", &message).await,
        "not_configured",
        false,
        None,
    );
    assert_failure(channels.deliver(ChannelKind::Sms, "+491701234567", &message).await, "not_configured", false, None);
    assert_failure(channels.deliver(ChannelKind::Telegram, "42", &message).await, "not_configured", false, None);
    assert_failure(channels.deliver(ChannelKind::Sms, "0170 1234", &message).await, "invalid_address", false, None);
    assert_failure(channels.deliver(ChannelKind::Webhook, "not a url", &message).await, "invalid_address", false, None);
}

fn email_channels(smtp: &SmtpServer, dir: &Path, port: u16, extra: &str) -> Channels {
    let password = secret_file(dir, "smtp-password", &smtp.password);
    channels(&format!(
        "timeout: 5s\nemail:\n  smarthost: localhost\n  port: {port}\n  from: 'checkit <alerts@checkit.test>'\n  hello: bridge.checkit.test\n  username: {}\n  password_file: {password}\n{extra}",
        smtp.user
    ))
}

#[tokio::test]
async fn email_over_starttls_with_auth_and_reply_classes() {
    let smtp = crate::peer!(
        SmtpServer::start(SmtpOpts { require_starttls: true, auth_required: true, ..SmtpOpts::default() }).await
    );
    let dir = tempfile::tempdir().unwrap();
    let ca = smtp.certs.ca.cert_path.display().to_string();
    let channels = email_channels(&smtp, dir.path(), smtp.addr.port(), &format!("  ca_file: {ca}\n"));
    let message = rendered(ChannelKind::Email);
    assert!(message.html.is_some());

    let receipt = channels.deliver(ChannelKind::Email, "Alice <alice@example.com>", &message).await.unwrap();
    assert!(receipt.provider_response.starts_with("250 2.0.0 OK queued as"), "{receipt:?}");
    let mail = smtp.wait_for_messages(1, Duration::from_secs(10)).await.remove(0);
    assert_eq!(mail.mail_from, "alerts@checkit.test");
    assert_eq!(mail.rcpt_tos, ["alice@example.com"]);
    assert_eq!(mail.auth_user.as_deref(), Some(smtp.user.as_str()));
    assert_eq!(mail.helo.as_deref(), Some("bridge.checkit.test"));
    assert!(mail.tls, "delivered without STARTTLS");
    assert!(mail.data.contains(&format!("Subject: {}", message.subject)), "{}", mail.data);
    assert!(mail.data.contains("From: checkit <alerts@checkit.test>"), "{}", mail.data);
    assert!(mail.data.contains("multipart/alternative"), "{}", mail.data);
    assert!(mail.data.contains("Message-ID: <"), "{}", mail.data);

    // 4xx replies are worth retrying, 5xx replies are not.
    smtp.set_failure(SmtpStage::Rcpt, Some(SmtpFailure::Temporary));
    let err = assert_failure(
        channels.deliver(ChannelKind::Email, "alice@example.com", &message).await,
        "smtp_transient",
        true,
        None,
    );
    assert!(err.detail.contains("451"), "{}", err.detail);
    smtp.set_failure(SmtpStage::Rcpt, None);
    smtp.set_failure(SmtpStage::Data, Some(SmtpFailure::Permanent));
    let err = assert_failure(
        channels.deliver(ChannelKind::Email, "alice@example.com", &message).await,
        "smtp_permanent",
        false,
        None,
    );
    assert!(err.detail.contains("550"), "{}", err.detail);
    smtp.set_failure(SmtpStage::Data, None);

    // The pooled transport recovers from failed transactions.
    channels.deliver(ChannelKind::Email, "bob@example.com", &text("plain", "only text")).await.unwrap();
    let mails = smtp.wait_for_messages(2, Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 2);
    assert_eq!(mails[1].rcpt_tos, ["bob@example.com"]);
    assert!(mails[1].data.contains("Content-Type: text/plain; charset=utf-8"), "{}", mails[1].data);

    // A wrong password is a permanent SMTP answer (535).
    let wrong_dir = tempfile::tempdir().unwrap();
    let wrong = secret_file(wrong_dir.path(), "pw", "wrong-password");
    let bad_auth = channels_with_password(&smtp, &ca, &wrong);
    let err = assert_failure(
        bad_auth.deliver(ChannelKind::Email, "alice@example.com", &message).await,
        "smtp_permanent",
        false,
        None,
    );
    assert!(err.detail.contains("535"), "{}", err.detail);
}

fn channels_with_password(smtp: &SmtpServer, ca: &str, password_file: &str) -> Channels {
    channels(&format!(
        "timeout: 5s\nemail:\n  smarthost: localhost:{}\n  from: alerts@checkit.test\n  username: {}\n  password_file: {password_file}\n  ca_file: {ca}\n",
        smtp.addr.port(),
        smtp.user
    ))
}

#[tokio::test]
async fn email_over_implicit_tls_and_certificate_checks() {
    let smtp = crate::peer!(SmtpServer::start(SmtpOpts { implicit_tls: true, ..SmtpOpts::default() }).await);
    let dir = tempfile::tempdir().unwrap();
    let tls_port = smtp.tls_addr.expect("implicit TLS listener").port();
    let ca = smtp.certs.ca.cert_path.display().to_string();
    let message = rendered(ChannelKind::Email);

    let implicit = email_channels(&smtp, dir.path(), tls_port, &format!("  tls: implicit\n  ca_file: {ca}\n"));
    implicit.deliver(ChannelKind::Email, "alice@example.com", &message).await.unwrap();
    let mail = smtp.wait_for_messages(1, Duration::from_secs(10)).await.remove(0);
    // That listener only speaks TLS, so arriving there proves the wrapper
    // worked (smtpd.py's `tls` flag records STARTTLS sessions only).
    assert_eq!(mail.auth_user.as_deref(), Some(smtp.user.as_str()));

    // The test CA is not in the system store: without ca_file the handshake
    // fails, which may heal (a renewed certificate), so it is retryable.
    let untrusted = email_channels(&smtp, dir.path(), smtp.addr.port(), "");
    let err =
        assert_failure(untrusted.deliver(ChannelKind::Email, "alice@example.com", &message).await, "tls", true, None);
    assert!(!err.detail.contains(&smtp.password), "{}", err.detail);
    // insecure_skip_verify accepts it (for tests only).
    let insecure = email_channels(&smtp, dir.path(), smtp.addr.port(), "  insecure_skip_verify: true\n");
    insecure.deliver(ChannelKind::Email, "alice@example.com", &message).await.unwrap();
    assert_eq!(smtp.wait_for_messages(2, Duration::from_secs(10)).await.len(), 2);

    // Nobody listening: a connection failure, retryable.
    let refused = channels(&format!(
        "timeout: 2s\nemail:\n  smarthost: 127.0.0.1:{}\n  from: alerts@checkit.test\n",
        closed_port().port()
    ));
    assert_failure(refused.deliver(ChannelKind::Email, "alice@example.com", &message).await, "connect", true, None);
}
