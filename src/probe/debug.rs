//! blackbox's three-section debug output (`debug=true`, `/logs`, `checkit probe`).

/// The probe's log, the metrics it returned and its module, as blackbox prints them.
pub fn debug_output(log: &[String], metrics: &str, module_yaml: &str) -> String {
    let mut out = String::from("Logs for the probe:\n");
    for line in log {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("\n\n\nMetrics that would have been returned:\n");
    out.push_str(metrics);
    out.push_str("\n\n\nModule configuration:\n");
    out.push_str(module_yaml);
    out
}
