//! The web pages in headless Debian Chromium (playwright-core + axe-core from
//! `tests/browser/`): each test starts checkit with real data, then runs one
//! script, which fails on console errors, requests leaving the machine and
//! serious or critical accessibility violations, and writes screenshots into
//! the test's temp dir (kept, and printed, for a person to look at).

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The browser scripts' directory, with its npm packages installed.
fn browser_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if !dir.join("node_modules/playwright-core").is_dir() || !dir.join("node_modules/axe-core").is_dir() {
        return crate::support::unavailable("tests/browser/node_modules is missing: run tests/install-peers.sh");
    }
    Some(dir)
}

/// Runs `node tests/browser/{script}` against `url` (bounded to two
/// minutes) and fails the test with its output unless it passes.
pub async fn run_script(
    script: &str,
    url: &str,
    user: &str,
    password: &str,
    screenshots: &Path,
    extra: &[(&str, String)],
) {
    let Some(node) = crate::support::require_binary("node", "nodejs") else { return };
    let Some(chromium) = crate::support::require_binary("chromium", "chromium") else { return };
    let Some(dir) = browser_dir() else { return };
    let child = tokio::process::Command::new(node)
        .arg(dir.join(script))
        .current_dir(&dir)
        .env("CHECKIT_URL", url)
        .env("CHECKIT_USER", user)
        .env("CHECKIT_PASSWORD", password)
        .env("CHROMIUM", chromium)
        .env("SCREENSHOT_DIR", screenshots)
        .envs(extra.iter().map(|(name, value)| (*name, value.as_str())))
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), child)
        .await
        .unwrap_or_else(|_| panic!("{script} ran for more than two minutes"))
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{script} output:\n{stdout}\n{stderr}");
    assert!(output.status.success(), "{script} failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("all browser checks passed"), "{stdout}");
}

/// A temp dir for screenshots that outlives the test, so they can be looked at.
pub fn screenshot_dir(name: &str) -> PathBuf {
    let dir = tempfile::Builder::new().prefix(&format!("checkit-{name}-")).tempdir().expect("temp dir").keep();
    eprintln!("screenshots in {}", dir.display());
    dir
}

#[tokio::test]
async fn operator_ui_in_chromium() {
    let (app, _guard) = crate::web_ui::start_seeded().await;
    let screenshots = screenshot_dir("ui");
    run_script("ui.mjs", &app.url(""), "olivia", "pw", &screenshots, &[]).await;
    for name in
        ["ui-overview.png", "ui-deliveries.png", "ui-delivery.png", "ui-outbox.png", "ui-deliveries-dark-phone.png"]
    {
        assert!(screenshots.join(name).is_file(), "{name} written");
    }
}

#[tokio::test]
async fn status_page_check_page_and_checks_list_in_chromium() {
    let app = crate::web_status::start().await;
    let screenshots = screenshot_dir("status");
    let outage_day = (crate::web_status::start_time() - chrono::Duration::days(crate::web_status::OUTAGE_DAYS_BACK))
        .format("%a %-d %b %Y")
        .to_string();
    let extra = [
        ("OUTAGE_DAY", outage_day),
        ("OUTAGE_DAYS_BACK", crate::web_status::OUTAGE_DAYS_BACK.to_string()),
        ("NIGHTLY_BODY", crate::web_status::NIGHTLY_BODY.to_string()),
    ];
    run_script("status.mjs", &app.url(""), "olivia", "pw", &screenshots, &extra).await;
    for name in [
        "status-page.png",
        "status-page-dark-phone.png",
        "check-page.png",
        "ui-checks.png",
        "heartbeat-page.png",
        "ui-incident.png",
        "ui-maintenance.png",
        "status-page-annotated.png",
    ] {
        assert!(screenshots.join(name).is_file(), "{name} written");
    }
}
