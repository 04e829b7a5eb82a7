//! What operators change from the UI, over HTTP against the real app:
//! incident notes (stored, shown safely on the status page, its feed and
//! summary), maintenance planned from the UI (applied by the scheduler,
//! announced on status pages, ended early), badge tokens for private
//! checks, and who may do what (viewers, anonymous visitors, cross-site
//! posts).

use crate::web_status::{StatusApp, get, run_until, start};
use crate::web_ui::form_token;
use checkit::bridge::clock::Clock;
use chrono::Duration;

/// Posts `form` to `path` as `user` (with the page's token and same-origin
/// fetch metadata unless `site` says otherwise).
async fn post(app: &StatusApp, path: &str, user: Option<&str>, site: &str, form: &[(&str, String)]) -> (u16, String) {
    let mut request = reqwest::Client::new().post(app.url(path)).header("sec-fetch-site", site).form(form);
    if let Some(user) = user {
        request = request.basic_auth(user, Some("pw"));
    }
    let response = request.send().await.expect("post");
    (response.status().as_u16(), response.text().await.expect("body"))
}

/// The id of `check`'s most recent incident, from the incidents list.
async fn incident_of(app: &StatusApp, check: &str) -> i64 {
    let (status, list, _) = get(app, "/ui/incidents", Some("victor")).await;
    assert_eq!(status, 200, "{list}");
    let row = list.split("<tr data-incident=\"").skip(1).find(|row| row.contains(&format!("<td>{check}</td>")));
    let row = row.unwrap_or_else(|| panic!("{check} has an incident: {list}"));
    row.split('"').next().expect("id").parse().expect("numeric id")
}

#[tokio::test]
async fn operators_write_incident_notes_that_pages_show_safely() {
    let app = start().await;
    let id = incident_of(&app, "db").await;
    let (status, page, _) = get(&app, &format!("/ui/incidents/{id}"), Some("olivia")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("db down: refused (connect)"), "the derived title: {page}");
    let token = form_token(&page);
    let update = "Disk **full** on the primary; see <script>alert(1)</script> [runbook](https://wiki.example/db) \
                  and [bad](javascript:alert(1))";
    let form = [
        ("csrf", token.clone()),
        ("title", "Database unreachable".to_string()),
        ("status", "identified".to_string()),
        ("body", update.to_string()),
    ];
    // Nobody but a same-site operator may post.
    let path = format!("/ui/incidents/{id}");
    assert_eq!(post(&app, &path, None, "same-origin", &form).await.0, 401, "no login");
    let (status, body) = post(&app, &path, Some("victor"), "same-origin", &form).await;
    assert_eq!(status, 403, "a viewer: {body}");
    let (status, body) = post(&app, &path, Some("olivia"), "cross-site", &form).await;
    assert_eq!(status, 403, "a cross-site post: {body}");
    assert!(body.contains("cross-site form posts are refused"), "{body}");
    let (status, body) = post(&app, &path, Some("olivia"), "same-origin", &form).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Update posted (identified)."), "{body}");
    // Bad input is refused with the reason.
    let mut bad = form.to_vec();
    bad[2].1 = "fixed".into();
    let (status, body) = post(&app, &path, Some("olivia"), "same-origin", &bad).await;
    assert_eq!(status, 400);
    assert!(body.contains("unknown status"), "{body}");
    let (status, _) = post(&app, "/ui/incidents/999999", Some("olivia"), "same-origin", &form).await;
    assert_eq!(status, 404);

    // The public page: the title, the status, the update as HTML with the script escaped.
    let (_, html, _) = get(&app, "/status/public", None).await;
    assert!(html.contains("Database unreachable"), "{html}");
    assert!(html.contains("<strong>full</strong>"), "Markdown rendered");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !html.contains("<script>alert"), "escaped");
    assert!(html.contains("<a href=\"https://wiki.example/db\">runbook</a>"));
    assert!(!html.contains("javascript:"), "script links are defused");
    assert!(html.contains("class=\"state state-identified\">identified<"), "{html}");

    let (_, feed, _) = get(&app, "/status/public/feed.atom", None).await;
    assert!(feed.contains("<title>Database unreachable (identified)</title>"), "{feed}");
    assert!(feed.contains("<content type=\"html\">"), "{feed}");
    assert!(feed.contains("&lt;strong&gt;full&lt;/strong&gt;"), "HTML escaped once more for XML: {feed}");
    assert!(!feed.contains("<script>"), "{feed}");

    let (_, summary, _) = get(&app, "/status/public/summary.json", None).await;
    let summary: serde_json::Value = serde_json::from_str(&summary).expect("json");
    let incident = summary["incidents"].as_array().expect("incidents").iter().find(|item| item["id"] == id);
    let incident = incident.expect("the incident is listed");
    assert_eq!(incident["title"], "Database unreachable");
    assert_eq!(incident["status"], "identified");
    assert_eq!(incident["updates"][0]["body"], update);

    // A title-only edit keeps the updates; the note survives a restart of the page data.
    let form = [("csrf", token), ("title", "Database unreachable (disk)".to_string()), ("body", String::new())];
    let (status, body) = post(&app, &path, Some("olivia"), "same-origin", &form).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Title saved.") && body.contains("<strong>full</strong>"), "{body}");
}

#[tokio::test]
async fn maintenance_planned_in_the_ui_applies_and_is_announced() {
    let app = start().await;
    let now = app.clock.now();
    let local = |time: chrono::DateTime<chrono::Utc>| time.format("%Y-%m-%dT%H:%M").to_string();
    let (_, page, _) = get(&app, "/ui/maintenance", Some("olivia")).await;
    let token = form_token(&page);
    // An upcoming window over db, and one over www starting now.
    let upcoming = [
        ("csrf", token.clone()),
        ("title", "Database upgrade".to_string()),
        ("start", local(now + Duration::hours(2))),
        ("end", local(now + Duration::hours(3))),
        ("scope", "some".to_string()),
        ("checks", "db".to_string()),
    ];
    let (status, body) = post(&app, "/ui/maintenance", Some("olivia"), "same-origin", &upcoming).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Maintenance planned for db"), "{body}");
    let active = [
        ("csrf", token.clone()),
        ("title", "Web server move".to_string()),
        ("start", local(now)),
        ("end", local(now + Duration::hours(1))),
        ("scope", "some".to_string()),
        ("checks", "www".to_string()),
    ];
    let (status, body) = post(&app, "/ui/maintenance", Some("olivia"), "same-origin", &active).await;
    assert_eq!(status, 200, "{body}");
    // Refusals: a viewer, a backwards window, an unknown check, no checks.
    assert_eq!(post(&app, "/ui/maintenance", Some("victor"), "same-origin", &active).await.0, 403);
    let mut backwards = active.to_vec();
    backwards[3].1 = local(now - Duration::hours(1));
    let (status, body) = post(&app, "/ui/maintenance", Some("olivia"), "same-origin", &backwards).await;
    assert_eq!(status, 400);
    assert!(body.contains("the end must be after the start"), "{body}");
    let mut unknown = active.to_vec();
    unknown[5].1 = "ghost".into();
    let (status, body) = post(&app, "/ui/maintenance", Some("olivia"), "same-origin", &unknown).await;
    assert_eq!((status, body.contains("there is no check &quot;ghost&quot;")), (400, true), "{body}");
    let (status, _) = post(&app, "/ui/maintenance", Some("olivia"), "same-origin", &active[..5]).await;
    assert_eq!(status, 400, "no checks chosen");

    // The scheduler applies the active window at the next run.
    run_until(&app, "www", "maintenance").await;
    let (_, results, _) = get(&app, "/checks/www/results.csv", Some("victor")).await;
    assert!(
        results.lines().nth(1).is_some_and(|line| line.contains(",true,true,")),
        "stored as maintenance: {results}"
    );

    let (_, html, _) = get(&app, "/status/public", None).await;
    assert!(html.contains("Maintenance in progress: Web server move"), "{html}");
    assert!(html.contains("Upcoming maintenance: Database upgrade"), "{html}");
    assert!(html.contains("data-check=\"www\" data-state=\"maintenance\""), "{html}");
    let (_, summary, _) = get(&app, "/status/public/summary.json", None).await;
    let summary: serde_json::Value = serde_json::from_str(&summary).expect("json");
    assert_eq!(summary["maintenance"].as_array().map(Vec::len), Some(2), "{summary}");

    // Ending the active window early.
    let (_, list, _) = get(&app, "/ui/maintenance", Some("olivia")).await;
    let end_path = list
        .split("action=\"/ui/maintenance/")
        .skip(1)
        .find(|form| form.contains("End now: Web server move"))
        .and_then(|form| form.split('"').next())
        .map(|rest| format!("/ui/maintenance/{rest}"))
        .expect("an end button for the active window");
    let (status, body) = post(&app, &end_path, Some("olivia"), "same-origin", &[("csrf", token.clone())]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Maintenance ended."), "{body}");
    assert_eq!(post(&app, &end_path, Some("olivia"), "same-origin", &[("csrf", token)]).await.0, 404, "already over");
    run_until(&app, "www", "up").await;
    let (_, html, _) = get(&app, "/status/public", None).await;
    assert!(!html.contains("Web server move") && html.contains("Database upgrade"), "{html}");
}

#[tokio::test]
async fn private_checks_have_badges_with_a_token() {
    let app = start().await;
    assert_eq!(get(&app, "/badge/intranet/status.svg", None).await.0, 401, "intranet is on no public page");
    let (status, page, _) = get(&app, "/checks/intranet", Some("victor")).await;
    assert_eq!(status, 200);
    let link = page.split("href=\"").find(|rest| rest.starts_with("/badge/intranet/status.svg?token="));
    let link = link.and_then(|rest| rest.split('"').next()).expect("a token link on the check page").to_string();
    let (status, svg, headers) = get(&app, &link, None).await;
    assert_eq!(status, 200, "the token opens the badge without a login: {svg}");
    assert!(svg.contains("aria-label=\"intranet: up\""), "{svg}");
    assert!(headers["cache-control"].to_str().unwrap().starts_with("public"));
    let shields = link.replace(".svg?", ".shields?");
    let (status, json, _) = get(&app, &shields, None).await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&json).unwrap()["message"], "up");
    // A token is bound to its check and to the secret.
    let token = link.split("token=").nth(1).expect("token");
    assert_eq!(get(&app, &format!("/badge/db/status.svg?token={token}"), None).await.0, 200, "db is public anyway");
    assert_eq!(get(&app, "/badge/intranet/status.svg?token=forged", None).await.0, 401);
    let key = app.app.config().ui.badge_key_file.clone().expect("key file");
    std::fs::write(&key, "another secret, rotated\n").expect("rotate");
    assert_eq!(get(&app, &link, None).await.0, 401, "a new secret revokes old tokens");
    // Public checks' pages show plain links.
    let (_, www, _) = get(&app, "/checks/www", Some("victor")).await;
    assert!(www.contains("href=\"/badge/www/status.svg\""), "no token needed for a public check");
}
