//! The web UI over HTTP: open vs logged-in access, public routes, roles, the
//! cross-site form guard, and the bridge's delivery history and outbox pages
//! against a real bridge delivering to loopback receivers.

use crate::bridge_support::{Recorder, notification};
use crate::support::app::{TestApp, start_app, start_app_with};
use checkit::app::Options;
use checkit::http::webconfig::Web;
use std::time::Duration;

/// A web config with an operator (`olivia`) and a viewer (`victor`), both
/// with password `pw`.
pub fn web_config(dir: &std::path::Path) -> Web {
    let hash = bcrypt::hash("pw", 4).expect("bcrypt");
    let path = dir.join("web.yml");
    std::fs::write(&path, format!("basic_auth_users:\n  olivia: '{hash}'\n  victor: '{hash}'\n"))
        .expect("write web config");
    Web::load(path.to_str().expect("utf-8 path")).expect("web config loads")
}

/// The bridge config used by the UI tests: alice's webhook answers 200,
/// bob's 500 (retried an hour later), carol is in quiet hours from an hour
/// ago until six hours from now.
pub fn bridge_yaml(ok: &Recorder, failing: &Recorder, store: &std::path::Path) -> String {
    use chrono::Timelike;
    let hour = chrono::Utc::now().hour();
    format!(
        r#"modules: {{}}
ui:
  operators: [olivia]
bridge:
  store: {{sqlite: {{path: {store}}}}}
  retry: {{initial_interval: 1h, max_interval: 1h}}
  contacts:
    alice: {{webhook: "{ok}"}}
    bob: {{webhook: "{failing}"}}
    carol:
      log: carol
      quiet_hours:
        timezone: UTC
        ranges: [{{days: [mon-sun], from: "{quiet_from:02}:00", to: "{quiet_to:02}:00"}}]
  routes:
    - contacts: [alice, bob, carol]
"#,
        store = store.display(),
        ok = ok.url("/hook"),
        failing = failing.url("/hook"),
        quiet_from = (hour + 23) % 24,
        quiet_to = (hour + 6) % 24,
    )
}

/// Posts notifications to the app's webhook and waits until history shows
/// alice's sends, bob's failures and carol's holds.
pub async fn seed_deliveries(app: &TestApp, client: &reqwest::Client) {
    for (group, alert) in [("db", "DiskFull"), ("web", "HighLatency")] {
        let response = client
            .post(app.url("/webhook"))
            .basic_auth("olivia", Some("pw"))
            .header("content-type", "application/json")
            .body(notification("ops", group, &[(alert, "critical", "firing")]))
            .send()
            .await
            .expect("post webhook");
        assert_eq!(response.status(), 200, "webhook accepted");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let body: serde_json::Value = client
            .get(app.url("/api/v1/deliveries?limit=1000"))
            .basic_auth("olivia", Some("pw"))
            .send()
            .await
            .expect("history")
            .json()
            .await
            .expect("history json");
        let count = |outcome: &str| {
            body["items"].as_array().map_or(0, |items| items.iter().filter(|item| item["outcome"] == outcome).count())
        };
        if count("sent") >= 2 && count("failed") >= 2 && count("held") >= 2 {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "history never filled: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The app with the UI tests' bridge (see [`bridge_yaml`]) and web config,
/// its history seeded by [`seed_deliveries`]. The receivers and the temp
/// dir live as long as the returned guard.
pub async fn start_seeded() -> (TestApp, (Recorder, Recorder, tempfile::TempDir)) {
    let ok = Recorder::start().await;
    let failing = Recorder::start().await;
    failing.answer_by_default(500);
    let dir = tempfile::tempdir().expect("temp dir");
    let web = web_config(dir.path());
    let app = start_app_with(&bridge_yaml(&ok, &failing, &dir.path().join("bridge.db")), Options::default(), web).await;
    seed_deliveries(&app, &reqwest::Client::new()).await;
    (app, (ok, failing, dir))
}

/// The `csrf` hidden field of a page.
pub fn form_token(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("page has a form token") + "name=\"csrf\" value=\"".len();
    html[start..].split('"').next().expect("token value").to_string()
}

/// Plans a window over every check, from this minute for an hour, through
/// the form at `page` (an open UI's `/ui/maintenance`), as an operator would.
pub async fn plan_window_over_every_check(http: &reqwest::Client, page: &str, title: &str) {
    // The form takes minutes: planned in a minute's first seconds, the window
    // would not cover what happened a second earlier, which callers assume.
    let into_minute = chrono::Timelike::second(&chrono::Utc::now());
    if into_minute < 3 {
        tokio::time::sleep(std::time::Duration::from_secs(u64::from(3 - into_minute))).await;
    }
    let form_page = http.get(page).send().await.expect("get").text().await.expect("body");
    let token = form_token(&form_page);
    let now = chrono::Utc::now();
    let start = now.format("%Y-%m-%dT%H:%M").to_string();
    let end = (now + chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M").to_string();
    let form = [
        ("csrf", token.as_str()),
        ("title", title),
        ("start", start.as_str()),
        ("end", end.as_str()),
        ("scope", "all"),
    ];
    let response = http.post(page).header("sec-fetch-site", "same-origin").form(&form).send().await.expect("post");
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
}

#[tokio::test]
async fn without_web_config_the_ui_is_open_and_says_so() {
    let app = start_app("modules: {}\n").await;
    let response = reqwest::get(app.url("/ui/")).await.expect("ui");
    assert_eq!(response.status(), 200);
    let csp = response.headers()["content-security-policy"].to_str().expect("csp").to_string();
    assert!(csp.contains("default-src 'self'") && csp.contains("script-src 'self'"), "{csp}");
    let html = response.text().await.expect("body");
    assert!(html.contains("This UI is open"), "{html}");
    assert!(html.contains("Reload configuration"), "everyone is an operator when the UI is open");
    assert!(!html.contains("https://") && !html.contains("http://"), "nothing is loaded from elsewhere: {html}");
    let (status, index) = app.get("/").await;
    assert_eq!(status, 200);
    assert!(index.contains("href=\"ui/\""), "the exporter page links to the UI");
    let redirect = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let response = redirect.get(app.url("/ui")).send().await.expect("ui without slash");
    assert_eq!(response.status(), 308);
    for (asset, kind) in [("style.css", "text/css"), ("app.js", "text/javascript"), ("favicon.svg", "image/svg+xml")] {
        let response = reqwest::get(app.url(&format!("/assets/{asset}"))).await.expect("asset");
        assert_eq!(response.status(), 200, "{asset}");
        assert!(response.headers()["content-type"].to_str().expect("type").starts_with(kind), "{asset}");
        assert!(response.headers()["cache-control"].to_str().expect("cache").contains("max-age"));
        let etag = response.headers()["etag"].clone();
        let again = redirect.get(app.url(&format!("/assets/{asset}"))).header("if-none-match", etag).send().await;
        assert_eq!(again.expect("revalidate").status(), 304, "{asset} revalidates");
    }
    assert_eq!(app.get("/assets/nope.js").await.0, 404);
    let (status, text) = app.get("/ui/deliveries").await;
    assert_eq!(status, 404, "no bridge, no history");
    assert!(text.contains("bridge is not configured"), "{text}");
}

#[tokio::test]
async fn with_users_everything_but_public_routes_needs_a_login() {
    let dir = tempfile::tempdir().expect("temp dir");
    let app =
        start_app_with("modules: {}\nui: {operators: [olivia]}\n", Options::default(), web_config(dir.path())).await;
    let client = reqwest::Client::new();
    for path in ["/ui/", "/ui/deliveries", "/ui/outbox", "/metrics", "/config", "/"] {
        let response = client.get(app.url(path)).send().await.expect("request");
        assert_eq!(response.status(), 401, "{path} needs a login");
        let wrong = client.get(app.url(path)).basic_auth("olivia", Some("nope")).send().await.expect("request");
        assert_eq!(wrong.status(), 401, "{path} refuses a wrong password");
    }
    for path in ["/-/healthy", "/assets/style.css", "/assets/app.js"] {
        let response = client.get(app.url(path)).send().await.expect("request");
        assert_eq!(response.status(), 200, "{path} is public");
    }
    let viewer = client.get(app.url("/ui/")).basic_auth("victor", Some("pw")).send().await.expect("viewer");
    assert_eq!(viewer.status(), 200);
    let html = viewer.text().await.expect("body");
    assert!(html.contains("victor · viewer"), "{html}");
    assert!(html.contains("read-only access") && !html.contains("Reload configuration"), "{html}");
    let operator = client.get(app.url("/ui/")).basic_auth("olivia", Some("pw")).send().await.expect("operator");
    let html = operator.text().await.expect("body");
    assert!(html.contains("olivia · operator") && html.contains("Reload configuration"), "{html}");
    assert!(!html.contains("This UI is open"));
}

#[tokio::test]
async fn forms_refuse_cross_site_posts_and_viewers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let app =
        start_app_with("modules: {}\nui: {operators: [olivia]}\n", Options::default(), web_config(dir.path())).await;
    let client = reqwest::Client::new();
    let page = |user: &'static str| {
        let client = client.clone();
        let url = app.url("/ui/");
        async move { client.get(url).basic_auth(user, Some("pw")).send().await.expect("page").text().await.expect("body") }
    };
    let olivia_token = form_token(&page("olivia").await);
    let host = app.addr.to_string();
    let post = |user: &'static str, token: String, headers: Vec<(&'static str, String)>| {
        let mut request = client.post(app.url("/ui/reload")).basic_auth(user, Some("pw")).form(&[("csrf", token)]);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        async move {
            let response = request.send().await.expect("post");
            (response.status().as_u16(), response.text().await.expect("body"))
        }
    };
    let same_origin = vec![("origin", format!("http://{host}")), ("sec-fetch-site", "same-origin".to_string())];
    let (status, body) = post("olivia", olivia_token.clone(), vec![("sec-fetch-site", "cross-site".into())]).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("cross-site form posts are refused"), "{body}");
    let (status, body) = post("olivia", olivia_token.clone(), vec![("origin", "http://evil.example".into())]).await;
    assert_eq!(status, 403);
    assert!(body.contains("Origin is not this site"), "{body}");
    let (status, body) = post("olivia", String::new(), same_origin.clone()).await;
    assert_eq!(status, 403);
    assert!(body.contains("stale or forged"), "{body}");
    let (status, body) = post("victor", olivia_token.clone(), same_origin.clone()).await;
    assert_eq!(status, 403, "a token is bound to its user: {body}");
    assert!(!page("victor").await.contains("name=\"csrf\""), "viewers get no forms");
    let unauthenticated = client.post(app.url("/ui/reload")).form(&[("csrf", olivia_token.clone())]).send().await;
    assert_eq!(unauthenticated.expect("post").status(), 401);
    let (status, body) = post("olivia", olivia_token, same_origin).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Configuration reloaded."), "{body}");
}

#[tokio::test]
async fn delivery_history_can_be_searched_filtered_sorted_and_opened() {
    let (app, _guard) = start_seeded().await;
    let client = reqwest::Client::new();
    let get = |path: String| {
        let request = client.get(app.url(&path)).basic_auth("victor", Some("pw"));
        async move {
            let response = request.send().await.expect("page");
            (response.status().as_u16(), response.text().await.expect("body"))
        }
    };
    let rows = |html: &str, marker: &str| html.matches(marker).count();

    let (status, all) = get("/ui/deliveries".into()).await;
    assert_eq!(status, 200);
    assert!(all.contains("<option>alice</option>") && all.contains("<option>carol</option>"), "contacts listed");
    let (_, bob) = get("/ui/deliveries?contact=bob".into()).await;
    assert!(rows(&bob, "data-outcome=") >= 2);
    assert_eq!(
        rows(&bob, "<td data-label=\"Contact\">alice</td>") + rows(&bob, "<td data-label=\"Contact\">carol</td>"),
        0,
        "only bob's rows"
    );
    assert!(bob.contains("<option selected>bob</option>"), "the filter is echoed");
    let (_, held) = get("/ui/deliveries?status=held".into()).await;
    assert_eq!(rows(&held, "data-outcome=\"held\""), rows(&held, "data-outcome="));
    assert!(rows(&held, "<td data-label=\"Contact\">carol</td>") >= 2);
    let (_, disk) = get("/ui/deliveries?q=diskfull".into()).await;
    assert!(rows(&disk, "data-outcome=") >= 3, "search is case-insensitive over alert names");
    assert!(!disk.contains("HighLatency"), "{disk}");
    let (_, hour) = get("/ui/deliveries?range=1h&alertname=HighLatency&sort=contact".into()).await;
    let alice = hour.find("<td data-label=\"Contact\">alice</td>").expect("alice in the last hour");
    let carol = hour.find("<td data-label=\"Contact\">carol</td>").expect("carol in the last hour");
    assert!(alice < carol, "sorted by contact, A to Z");
    assert!(hour.contains("aria-sort=\"ascending\""), "the sorted column says so");
    let (_, future) = get("/ui/deliveries?since=2099-01-01T00:00".into()).await;
    assert!(future.contains("No deliveries match."));
    let (status, bad) = get("/ui/deliveries?status=lost".into()).await;
    assert_eq!(status, 400);
    assert!(bad.contains("unknown outcome"), "{bad}");
    let (status, bad) = get("/ui/deliveries?since=2026-12-06T10:00&until=2026-12-06T09:00".into()).await;
    assert_eq!(status, 400);
    assert!(bad.contains("must be after"), "{bad}");

    // The detail of one of bob's failed attempts carries the provider's answer.
    let (_, failed) = get("/ui/deliveries?contact=bob&status=failed".into()).await;
    let link = failed.split("href=\"/ui/deliveries/").nth(1).expect("a detail link");
    let id: String = link.chars().take_while(char::is_ascii_digit).collect();
    let (status, detail) = get(format!("/ui/deliveries/{id}")).await;
    assert_eq!(status, 200);
    assert!(detail.contains("<dd>bob</dd>") && detail.contains("<dd>webhook</dd>"), "{detail}");
    assert!(detail.contains("500"), "the provider's status is shown: {detail}");
    assert!(detail.contains("on db-1"), "the notification's alerts are shown");
    assert_eq!(get("/ui/deliveries/999999".into()).await.0, 404);
    assert_eq!(get("/ui/deliveries/abc".into()).await.0, 400);

    // The outbox: bob's retries and carol's held messages, with when they go.
    let (status, outbox) = get("/ui/outbox".into()).await;
    assert_eq!(status, 200);
    assert!(rows(&outbox, "data-state=\"held\"") >= 2, "{outbox}");
    assert!(outbox.contains("quiet hours; one catch-up message"), "{outbox}");
    assert!(outbox.contains("retrying after 1 failed attempt(s)"), "{outbox}");
    // Backoff is an hour with ±50% jitter.
    assert!(outbox.contains("<td>in "), "when each goes: {outbox}");
}
