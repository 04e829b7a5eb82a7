//! The message API against real receivers: token scopes (403), idempotency,
//! the token's rate limit (429), quiet hours with and without a bypass
//! severity, search with filters, sort and paging, and delivery by email
//! through aiosmtpd.

use crate::bridge_support::{Recorder, TestBridge};
use crate::peer;
use crate::support::peers::{SmtpOpts, SmtpServer};
use chrono::Duration;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const CI_TOKEN: &str = "ci-token-0123456789";
const CRON_TOKEN: &str = "cron-token-9876543210";

fn sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// alice, bob and carol on webhooks (`/alice`…); oncall = bob + carol; dave
/// outside every token. `ci` reaches alice and oncall over webhooks; `cron`
/// reaches only alice.
fn yaml(recorder: &Recorder, alice_extra: &str, ci_extra: &str) -> String {
    format!(
        "contacts:\n  alice: {{webhook: '{}', log: alice{alice_extra}}}\n  bob: {{webhook: '{}'}}\n  \
         carol: {{webhook: '{}'}}\n  dave: {{webhook: '{}'}}\n\
         groups: {{oncall: [bob, carol], all: [alice, dave]}}\n\
         messages:\n  tokens:\n    ci: {{secret_sha256: {}, contacts: [alice], groups: [oncall], channels: [webhook]{ci_extra}}}\n    \
         cron: {{secret_sha256: {}, contacts: [alice]}}\n",
        recorder.url("/alice"),
        recorder.url("/bob"),
        recorder.url("/carol"),
        recorder.url("/dave"),
        sha256(CI_TOKEN),
        sha256(CRON_TOKEN),
    )
}

async fn send(bridge: &TestBridge, token: &str, body: Value) -> (u16, Value, String) {
    let response = bridge
        .client
        .post(bridge.url("/api/v1/messages"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().expect("ascii header").to_string())
        .unwrap_or_default();
    let text = response.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, json, retry_after)
}

async fn search(bridge: &TestBridge, token: Option<&str>, query: &str) -> (u16, Value) {
    let mut request = bridge.client.get(bridge.url(&format!("/api/v1/messages?{query}")));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[tokio::test]
async fn tokens_reach_only_their_scope() {
    let recorder = Recorder::start().await;
    let bridge = TestBridge::start(&yaml(&recorder, "", "")).await;
    let message = |to: Value| {
        let mut body = json!({"subject": "Deploy finished", "body": "v1.2.3 is live", "severity": "info"});
        body.as_object_mut().unwrap().extend(to.as_object().unwrap().clone());
        body
    };
    let (status, reason, _) = send(&bridge, CI_TOKEN, message(json!({"contacts": ["dave"]}))).await;
    assert_eq!((status, reason.as_str().unwrap().trim()), (403, "token \"ci\" may not message contact \"dave\""));
    let (status, reason, _) = send(&bridge, CI_TOKEN, message(json!({"groups": ["all"]}))).await;
    assert_eq!((status, reason.as_str().unwrap().trim()), (403, "token \"ci\" may not message group \"all\""));
    let (status, reason, _) =
        send(&bridge, CI_TOKEN, message(json!({"contacts": ["alice"], "channels": ["log"]}))).await;
    assert_eq!((status, reason.as_str().unwrap().trim()), (403, "token \"ci\" may not use channel \"log\""));
    let (status, _, _) = send(&bridge, "not-a-token", message(json!({"contacts": ["alice"]}))).await;
    assert_eq!(status, 401);
    let (status, reason, _) = send(&bridge, CI_TOKEN, json!({"contacts": ["alice"], "subject": ""})).await;
    assert_eq!((status, reason.as_str().unwrap().trim()), (400, "subject must not be empty"));
    let (status, reason, _) = send(&bridge, CI_TOKEN, json!({"contacts": ["alice"], "subject": "x", "to": 1})).await;
    assert_eq!(status, 400);
    assert!(reason.as_str().unwrap().contains("unknown field `to`"), "{reason}");
    assert_eq!(recorder.count(), 0, "nothing refused was sent");

    // A member of a token's group may be messaged alone; the group reaches each member once.
    let (status, accepted, _) =
        send(&bridge, CI_TOKEN, message(json!({"contacts": ["bob"], "groups": ["oncall"]}))).await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["deliveries"], 2, "bob once, carol once: {accepted}");
    let requests = recorder.wait_for(2).await;
    let mut paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    paths.sort_unstable();
    assert_eq!(paths, ["/bob", "/carol"]);
    let view: Value = serde_json::from_str(&requests[0].body).unwrap();
    assert_eq!(view["kind"], "message");
    assert_eq!(view["message"]["subject"], "Deploy finished");
    assert_eq!(view["message"]["body"], "v1.2.3 is live");
    assert_eq!(view["message"]["sender"], "ci");
    // The token without channel limits reaches alice on every channel she has.
    let (status, accepted, _) = send(&bridge, CRON_TOKEN, message(json!({"contacts": ["alice"]}))).await;
    assert_eq!((status, accepted["deliveries"].as_u64()), (202, Some(2)));
    bridge.wait_for_outcome("sent", 4).await;
    bridge.stop().await;
}

#[tokio::test]
async fn a_retry_with_the_same_key_is_accepted_once() {
    let recorder = Recorder::start().await;
    let bridge = TestBridge::start(&yaml(&recorder, "", "")).await;
    let body = json!({"contacts": ["alice"], "subject": "Backup done", "body": "42 GiB", "idempotency_key": "backup-2026-03-02"});
    let (status, first, _) = send(&bridge, CI_TOKEN, body.clone()).await;
    assert_eq!((status, first["duplicate"].as_bool()), (202, Some(false)));
    let (status, again, _) = send(&bridge, CI_TOKEN, body.clone()).await;
    assert_eq!((status, again["duplicate"].as_bool()), (202, Some(true)));
    assert_eq!(again["id"], first["id"], "the retry names the first message");
    // The same key through the header, from the same sender: still the same message.
    let response = bridge
        .client
        .post(bridge.url("/api/v1/messages"))
        .bearer_auth(CI_TOKEN)
        .header("Idempotency-Key", "backup-2026-03-02")
        .json(&json!({"contacts": ["alice"], "subject": "Backup done"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(response.json::<Value>().await.unwrap()["id"], first["id"]);
    // Keys are per sender: another token's message with that key is new.
    let (status, other, _) = send(&bridge, CRON_TOKEN, body).await;
    assert_eq!((status, other["duplicate"].as_bool()), (202, Some(false)));
    assert_ne!(other["id"], first["id"]);
    bridge.wait_for_outcome("sent", 3).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        recorder.requests().iter().filter(|r| r.path == "/alice").count(),
        2,
        "ci once, cron once (and to her log)"
    );
    bridge.stop().await;
}

#[tokio::test]
async fn a_token_over_its_rate_limit_gets_429_until_budget_returns() {
    let recorder = Recorder::start().await;
    let bridge = TestBridge::start(&yaml(&recorder, "", ", rate_limit: ['2/h']")).await;
    let body = |n: u32| json!({"contacts": ["alice"], "subject": format!("Build {n} failed")});
    assert_eq!(send(&bridge, CI_TOKEN, body(1)).await.0, 202);
    bridge.advance(Duration::minutes(10));
    assert_eq!(send(&bridge, CI_TOKEN, body(2)).await.0, 202);
    let (status, reason, retry_after) = send(&bridge, CI_TOKEN, body(3)).await;
    assert_eq!(status, 429);
    assert!(reason.as_str().unwrap().contains("over its rate limit until 2026-03-02T13:00:00"), "{reason}");
    assert_eq!(retry_after, "3000", "the first message leaves the window at 13:00");
    // Other tokens keep their own budget.
    assert_eq!(send(&bridge, CRON_TOKEN, body(4)).await.0, 202);
    bridge.advance(Duration::minutes(51));
    assert_eq!(send(&bridge, CI_TOKEN, body(3)).await.0, 202);
    bridge.wait_for_outcome("sent", 5).await;
    bridge.stop().await;
}

#[tokio::test]
async fn quiet_hours_hold_messages_unless_the_severity_bypasses_them() {
    let recorder = Recorder::start().await;
    // Always quiet on weekdays; critical bypasses.
    let quiet = ", quiet_hours: {timezone: UTC, ranges: [{days: [mon-fri], from: '00:00', to: '23:59'}], \
                 bypass: ['severity=\"critical\"']}";
    let bridge = TestBridge::start(&yaml(&recorder, quiet, "")).await;
    let (status, held, _) =
        send(&bridge, CI_TOKEN, json!({"contacts": ["alice"], "subject": "Weekly report ready", "severity": "info"}))
            .await;
    assert_eq!(status, 202);
    bridge.wait_for_outcome("held", 1).await;
    let (status, urgent, _) =
        send(&bridge, CI_TOKEN, json!({"contacts": ["alice"], "subject": "Payments down", "severity": "critical"}))
            .await;
    assert_eq!(status, 202);
    let requests = recorder.wait_for(1).await;
    let view: Value = serde_json::from_str(&requests[0].body).unwrap();
    assert_eq!(view["message"]["subject"], "Payments down", "the bypass severity is delivered during quiet hours");
    let (_, page) = search(&bridge, Some(CI_TOKEN), "outcome=held").await;
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["id"], held["id"]);
    assert_eq!(page["items"][0]["copies"][0]["state"], "held");
    bridge.wait_for_outcome("sent", 1).await;
    let (_, page) = search(&bridge, Some(CI_TOKEN), "outcome=sent").await;
    assert_eq!(page["items"][0]["id"], urgent["id"]);
    // When the quiet hours end (Monday 23:59 UTC) the held message goes out as the catch-up.
    bridge.advance(Duration::minutes(11 * 60 + 59) + Duration::seconds(30));
    let requests = recorder.wait_for(2).await;
    let catch_up: Value = serde_json::from_str(&requests[1].body).unwrap();
    assert_eq!(catch_up["kind"], "catch_up");
    assert_eq!(catch_up["firing"][0]["annotations"]["summary"], "Weekly report ready");
    let (_, page) = search(&bridge, None, "outcome=sent&sort=time&q=weekly").await;
    assert_eq!(page["total"], 1);
    let steps: Vec<&str> =
        page["items"][0]["deliveries"].as_array().unwrap().iter().map(|d| d["outcome"].as_str().unwrap()).collect();
    assert_eq!(steps, ["held", "sent"]);
    bridge.stop().await;
}

#[tokio::test]
async fn search_filters_sorts_and_pages() {
    let recorder = Recorder::start().await;
    let bridge = TestBridge::start(&yaml(&recorder, "", "")).await;
    let sends = [
        (
            CI_TOKEN,
            json!({"contacts": ["alice"], "subject": "Disk almost full", "body": "db-1 at 91%", "severity": "warning"}),
        ),
        (CI_TOKEN, json!({"groups": ["oncall"], "subject": "Release 2.0", "body": "shipped", "severity": "info"})),
        (
            CRON_TOKEN,
            json!({"contacts": ["alice"], "subject": "Cron job failed", "body": "DISK quota", "severity": "critical"}),
        ),
    ];
    let mut ids = Vec::new();
    for (token, body) in sends {
        let (status, accepted, _) = send(&bridge, token, body).await;
        assert_eq!(status, 202);
        ids.push(accepted["id"].as_i64().unwrap());
        bridge.advance(Duration::minutes(1));
    }
    bridge.wait_for_outcome("sent", 5).await;
    let ids_of = |page: &Value| -> Vec<i64> {
        page["items"].as_array().unwrap().iter().map(|item| item["id"].as_i64().unwrap()).collect()
    };
    // The bridge's own (open) credentials search everything; newest first by default.
    let (status, page) = search(&bridge, None, "").await;
    assert_eq!(status, 200);
    assert_eq!(ids_of(&page), [ids[2], ids[1], ids[0]]);
    assert_eq!(ids_of(&search(&bridge, None, "sender=cron").await.1), [ids[2]]);
    assert_eq!(ids_of(&search(&bridge, None, "recipient=carol").await.1), [ids[1]]);
    assert_eq!(
        ids_of(&search(&bridge, None, "q=disk&sort=time").await.1),
        [ids[0], ids[2]],
        "subject or body, any case"
    );
    assert_eq!(ids_of(&search(&bridge, None, "severity=critical").await.1), [ids[2]]);
    assert_eq!(ids_of(&search(&bridge, None, "sort=severity").await.1), [ids[2], ids[1], ids[0]]);
    let since = (crate::bridge_support::start_time() + Duration::seconds(30)).to_rfc3339();
    let until = (crate::bridge_support::start_time() + Duration::seconds(90)).to_rfc3339();
    let window = format!("since={}&until={}", urlencode(&since), urlencode(&until));
    assert_eq!(ids_of(&search(&bridge, None, &window).await.1), [ids[1]]);
    let (_, page) = search(&bridge, None, "sort=time&limit=2&offset=1").await;
    assert_eq!((page["total"].as_u64(), ids_of(&page)), (Some(3), vec![ids[1], ids[2]]));
    // Each message comes with its copies and delivery steps.
    let (_, page) = search(&bridge, None, "recipient=carol").await;
    let item = &page["items"][0];
    assert_eq!(item["recipients"], json!(["bob", "carol"]));
    assert_eq!(item["copies"].as_array().unwrap().len(), 2);
    assert!(item["deliveries"].as_array().unwrap().iter().all(|d| d["outcome"] == "sent"));
    // A token sees only its own messages.
    assert_eq!(ids_of(&search(&bridge, Some(CRON_TOKEN), "").await.1), [ids[2]]);
    assert_eq!(search(&bridge, Some(CRON_TOKEN), "sender=ci").await.0, 403);
    for bad in ["sort=size", "limit=0", "outcome=lost", "since=yesterday", "colour=red"] {
        let (status, reason) = search(&bridge, None, bad).await;
        assert_eq!(status, 400, "{bad}: {reason}");
    }
    bridge.stop().await;
}

fn urlencode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn a_message_arrives_by_email() {
    let smtp = peer!(SmtpServer::start(SmtpOpts::default()).await);
    let bridge = TestBridge::start(&format!(
        "contacts: {{alice: {{email: alice@example.com}}}}\n\
         messages: {{tokens: {{ci: {{secret_sha256: {}, contacts: [alice]}}}}}}\n\
         channels:\n  email: {{smarthost: localhost, port: {}, from: 'checkit <alerts@checkit.test>', ca_file: {}}}\n",
        sha256(CI_TOKEN),
        smtp.addr.port(),
        smtp.certs.ca.cert_path.display()
    ))
    .await;
    let (status, _, _) = send(
        &bridge,
        CI_TOKEN,
        json!({"contacts": ["alice"], "subject": "Nightly build failed", "body": "Build 1234 failed in tests.", "severity": "warning"}),
    )
    .await;
    assert_eq!(status, 202);
    let mail = smtp.wait_for_messages(1, std::time::Duration::from_secs(15)).await.remove(0);
    assert_eq!(mail.rcpt_tos, ["alice@example.com"]);
    assert!(mail.data.contains("Subject: Nightly build failed"), "{}", mail.data);
    assert!(mail.data.contains("Build 1234 failed in tests."), "{}", mail.data);
    assert!(mail.data.contains("Sent by ci through checkit"), "{}", mail.data);
    bridge.stop().await;
}

#[tokio::test]
async fn checkit_send_uses_the_api() {
    let recorder = Recorder::start().await;
    let bridge = TestBridge::start(&yaml(&recorder, "", "")).await;
    let token_file = bridge.dir.path().join("token");
    std::fs::write(&token_file, format!("{CI_TOKEN}\n")).unwrap();
    let run = |extra: &[&str]| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_checkit"));
        command.args(["send", "--url", &bridge.url(""), "--token-file", token_file.to_str().unwrap()]);
        command.args(extra).env_remove("CHECKIT_TOKEN");
        command.output()
    };
    let output =
        run(&["--to", "alice", "--subject", "Disk cleaned", "--body", "freed 10 GiB", "--idempotency-key", "k1"])
            .await
            .expect("run checkit send");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("accepted message "));
    let requests = recorder.wait_for(1).await;
    let view: Value = serde_json::from_str(&requests[0].body).unwrap();
    assert_eq!(view["message"]["body"], "freed 10 GiB");
    let output = run(&["--to", "dave", "--subject", "x"]).await.expect("run checkit send");
    assert!(!output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim(),
        "checkit send: 403 token \"ci\" may not message contact \"dave\""
    );
    bridge.stop().await;
}

#[tokio::test]
async fn messages_are_kept_and_searched_in_postgres() {
    use crate::support::peers::{Postgres, PostgresOpts};
    let pg = peer!(Postgres::start(PostgresOpts::default()).await);
    let recorder = Recorder::start().await;
    let secrets = tempfile::tempdir().unwrap();
    let url_file = secrets.path().join("pg-url");
    std::fs::write(&url_file, pg.url()).unwrap();
    let bridge = TestBridge::start(&format!(
        "store: {{postgres: {{url_file: {}}}}}\n{}",
        url_file.display(),
        yaml(&recorder, "", "")
    ))
    .await;
    let body = json!({"contacts": ["alice"], "subject": "Certificate renewed", "idempotency_key": "cert-1"});
    let (status, first, _) = send(&bridge, CI_TOKEN, body.clone()).await;
    assert_eq!(status, 202);
    let (status, again, _) = send(&bridge, CI_TOKEN, body).await;
    assert_eq!((status, again["id"].clone(), again["duplicate"].as_bool()), (202, first["id"].clone(), Some(true)));
    bridge.wait_for_outcome("sent", 1).await;
    let (_, page) = search(&bridge, None, "q=CERTIFICATE&recipient=alice&outcome=sent").await;
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["id"], first["id"]);
    assert_eq!(page["items"][0]["idempotency_key"], "cert-1");
    assert_eq!(page["items"][0]["deliveries"][0]["outcome"], "sent");
    bridge.stop().await;
}
