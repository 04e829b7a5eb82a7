//! Flags shared by the benchmark binaries (`harness = false`, so no clap).

/// The integer after `name` on the command line, or `default`.
pub fn arg(name: &str, default: i64) -> i64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|arg| arg == name)
        .and_then(|index| args.get(index + 1))
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}
