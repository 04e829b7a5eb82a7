//! Hostile input and faults (issue 13): each test here failed on the code
//! before its fix. Requests that must be refused get a 4xx with a reason;
//! nothing a client sends may panic a handler or leak a permit.

use crate::support::app::{parse_exposition, start_app, value};
use crate::support::httpd::TestServer;
use checkit::config::Config;

/// Defect 1: an absurd scrape-timeout header is clamped, never a panic, and
/// the in-flight gauge returns to zero.
#[tokio::test]
async fn scrape_timeout_header_never_panics() {
    let server = TestServer::http().await;
    let app = start_app("modules:\n  http_2xx:\n    prober: http\n    timeout: 2s\n  bare:\n    prober: http\n").await;
    let client = reqwest::Client::new();
    for module in ["http_2xx", "bare"] {
        for header in ["inf", "+Inf", "-Inf", "1e300", "1e19", "NaN", "-5", "0", "1.5"] {
            let response = client
                .get(app.url(&format!("/probe?module={module}&target={}", server.url("/"))))
                .header("X-Prometheus-Scrape-Timeout-Seconds", header)
                .send()
                .await
                .unwrap_or_else(|err| panic!("header {header}: no answer: {err}"));
            assert_eq!(response.status().as_u16(), 200, "header {header}");
            let families = parse_exposition(&response.text().await.expect("body"));
            assert_eq!(value(&families, "probe_success"), Some(1.0), "module {module} header {header}");
        }
    }
    let (_, metrics) = app.get("/metrics").await;
    assert!(metrics.contains("checkit_probes_in_flight 0"), "{metrics}");
}

