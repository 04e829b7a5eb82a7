//! Config loading: every invalid fixture fails with its message and path, and
//! every shipped config parses.

use checkit::config::Error;
use checkit::settings::Config;
use std::path::Path;

fn problems_of(path: &Path) -> Vec<String> {
    match Config::load(path) {
        Ok(_) => panic!("{} should not load", path.display()),
        Err(Error::Invalid(problems)) => problems.iter().map(ToString::to_string).collect(),
        Err(other) => panic!("{}: unexpected error {other}", path.display()),
    }
}

/// Fixture file → substrings every one of which must appear in some problem.
const INVALID: &[(&str, &[&str])] = &[
    ("invalid-unknown-top-level-key.yml", &["unknown field `modulez`"]),
    ("invalid-unknown-prober.yml", &["modules.m.prober: prober 'smtpx' is not valid"]),
    ("invalid-missing-prober.yml", &["modules.m.prober: prober must be set"]),
    ("invalid-timeout-days.yml", &["modules.m.timeout", "unknown unit \"d\""]),
    ("invalid-module-unknown-key.yml", &["modules.m", "unknown field `tpc`"]),
    ("invalid-allowlist-entry.yml", &["exporter.targets.allow[0]: \"10.0.0.0/33\" is neither a CIDR"]),
    ("invalid-max-concurrent.yml", &["exporter.max_concurrent_probes: must be between 1 and 1000000"]),
    (
        "invalid-several-problems.yml",
        &["modules.a.prober: prober 'nope' is not valid", "modules.b.timeout", "exporter.targets.deny[0]"],
    ),
    ("invalid-yaml-syntax.yml", &["line 3"]),
    ("invalid-undecodable-block.yml", &["modules.pg.postgres.sslmode"]),
    (
        "invalid-shared-keys.yml",
        &[
            "modules.pg.postgres.expect_value_regex",
            "modules.pg.postgres.preferred_ip_protocol",
            "unknown field `sslmod`",
            "modules.mail.smtp.banner_regexp",
        ],
    ),
    (
        "invalid-bridge-paths.yml",
        &[
            "bridge.auth.bearer.token_file",
            "tests/fixtures/config/no-such-token",
            "bridge.store.sqlite.path: directory",
            "tests/fixtures/config/no-such-directory\" does not exist: create it (mkdir -p",
        ],
    ),
    (
        "invalid-unknown-key-hides-nothing.yml",
        &["modulez: unknown field `modulez`", "modules.a.prober", "exporter.max_concurrent_probes"],
    ),
    (
        "invalid-three-in-one-block.yml",
        &[
            "modules.m.http.valid_status_codes[0]",
            "modules.m.http.preferred_ip_protocol",
            "modules.m.http.fail_if_body_matches_regexp[0]",
        ],
    ),
    (
        "invalid-bridge-several.yml",
        &[
            "bridge.routes[0].matchers",
            "bridge.rate_limits.sms",
            "bridge.contacts.alice.quiet_hours.timezone",
            "bridge.templates.log.body",
        ],
    ),
];

/// Relative paths in a file are relative to its directory, whatever the
/// working directory (as in Prometheus); `Config::base_dir` says which.
#[test]
fn relative_paths_are_relative_to_the_config_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("secrets")).expect("secrets dir");
    std::fs::create_dir(dir.path().join("state")).expect("state dir");
    std::fs::write(dir.path().join("secrets/token"), "t0ken\n").expect("token");
    let file = dir.path().join("checkit.yml");
    std::fs::write(
        &file,
        "bridge:\n  auth: {bearer: {token_file: secrets/token}}\n  store: {sqlite: {path: state/bridge.db}}\n  \
         contacts: {operator: {log: operator}}\n  routes: [{contacts: [operator]}]\n",
    )
    .expect("config");
    let config = Config::load(&file).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(config.base_dir, dir.path());
    let bridge = config.bridge.expect("bridge");
    assert_eq!(
        bridge.auth.bearer.as_ref().expect("bearer").token_file,
        dir.path().join("secrets/token").display().to_string()
    );
    let sqlite = bridge.store.as_ref().and_then(|store| store.sqlite.as_ref()).expect("sqlite");
    assert_eq!(sqlite.path, dir.path().join("state/bridge.db").display().to_string());
}

/// Fixture file → exactly how many problems it has (issue 13, defect 11: no
/// problem hides another, none is reported twice).
const COUNTS: &[(&str, usize)] = &[
    ("invalid-unknown-key-hides-nothing.yml", 3),
    ("invalid-three-in-one-block.yml", 3),
    ("invalid-bridge-several.yml", 4),
];

#[test]
fn no_problem_hides_another() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config");
    for (file, count) in COUNTS {
        let problems = problems_of(&dir.join(file));
        assert_eq!(problems.len(), *count, "{file}: {problems:#?}");
    }
}

#[test]
fn every_invalid_fixture_reports_its_problems() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config");
    let mut listed: Vec<&str> = INVALID.iter().map(|(file, _)| *file).collect();
    listed.sort_unstable();
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .expect("fixture dir")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("invalid-"))
        .collect();
    on_disk.sort_unstable();
    assert_eq!(listed, on_disk, "every fixture is in the table and vice versa");
    for (file, expected) in INVALID {
        let problems = problems_of(&dir.join(file));
        for needle in *expected {
            assert!(
                problems.iter().any(|problem| problem.contains(needle)),
                "{file}: no problem contains {needle:?}; got {problems:#?}"
            );
        }
    }
}

#[test]
fn several_problems_are_all_reported() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config");
    let problems = problems_of(&dir.join("invalid-several-problems.yml"));
    assert_eq!(problems.len(), 3, "{problems:#?}");
}

#[test]
fn an_undecodable_block_is_not_validated_with_defaults() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config");
    let problems = problems_of(&dir.join("invalid-undecodable-block.yml"));
    assert_eq!(problems.len(), 1, "{problems:#?}");
}

#[test]
fn every_shipped_config_parses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut checked = 0;
    for entry in std::fs::read_dir(&root).expect("config dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|ext| ext == "yml" || ext == "yaml") {
            match Config::load(&path) {
                Ok(_) => {}
                // The image's config keeps its store in the image's volume,
                // which a development machine does not have.
                Err(checkit::config::Error::Invalid(problems))
                    if !Path::new("/var/lib/checkit").is_dir()
                        && problems.len() == 1
                        && problems[0].path == "storage.sqlite.path"
                        && problems[0].message.starts_with("directory \"/var/lib/checkit\" does not exist") => {}
                Err(err) => panic!("{} does not load: {err}", path.display()),
            }
            checked += 1;
        }
    }
    assert!(checked >= 1, "config/ holds at least the default config");
    Config::parse(checkit::settings::DEFAULT_CONFIG).expect("embedded default parses");
}

#[test]
fn config_check_flag_prints_every_problem_and_fails() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_checkit"))
        .arg(format!("--config.file={}", dir.join("invalid-several-problems.yml").display()))
        .arg("--config.check")
        .output()
        .expect("run checkit");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("3 problem(s)"), "{stderr}");
    assert!(stderr.contains("modules.b.timeout"), "{stderr}");
    let ok = std::process::Command::new(env!("CARGO_BIN_EXE_checkit"))
        .arg(format!("--config.file={}", Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.yml").display()))
        .arg("--config.check")
        .output()
        .expect("run checkit");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
}

/// `config/example.yml` is the cookbook: every prober's fragment from
/// `config/examples.d/`, under one `modules:` key. It is generated, and this
/// test keeps it from drifting: `CHECKIT_BLESS=1 cargo test --test it config::` rewrites it.
#[test]
fn example_yml_is_the_concatenation_of_examples_d() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut fragments: Vec<_> = std::fs::read_dir(root.join("examples.d"))
        .expect("examples.d")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yml"))
        .collect();
    fragments.sort();
    let mut expected = String::from(
        "# checkit cookbook: one example module per prober, generated from config/examples.d/*.yml\n\
         # (edit those, then run `CHECKIT_BLESS=1 cargo test --test it config::`).\n\
         # Every key is documented in config/README.md.\nmodules:\n",
    );
    for fragment in &fragments {
        expected.push_str(&std::fs::read_to_string(fragment).expect("fragment"));
        if !expected.ends_with('\n') {
            expected.push('\n');
        }
    }
    let path = root.join("example.yml");
    if std::env::var_os("CHECKIT_BLESS").is_some() {
        std::fs::write(&path, &expected).expect("write example.yml");
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(actual == expected, "config/example.yml is stale: run CHECKIT_BLESS=1 cargo test --test it config::");
    Config::parse(&actual).unwrap_or_else(|err| panic!("config/example.yml does not load: {err}"));
}

/// `config/README.md` is generated from `config/reference.d/` in a fixed order.
#[test]
fn config_readme_is_the_concatenation_of_reference_d() {
    const ORDER: &[&str] = &[
        "overview",
        "http",
        "tcp",
        "unix",
        "icmp",
        "dns",
        "grpc",
        "postgres",
        "mysql",
        "mssql",
        "ftp",
        "imap",
        "smtp",
        "pop3",
        "tls",
        "rdap",
        "bridge",
        "checks",
        "heartbeats",
        "agents",
        "web",
    ];
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut on_disk: Vec<String> = std::fs::read_dir(root.join("reference.d"))
        .expect("reference.d")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .map(|path| path.file_stem().expect("stem").to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    for stem in &on_disk {
        assert!(ORDER.contains(&stem.as_str()), "config/reference.d/{stem}.md is not in the README order");
    }
    let mut expected = String::new();
    for stem in ORDER.iter().filter(|stem| on_disk.iter().any(|name| name == *stem)) {
        let text = std::fs::read_to_string(root.join(format!("reference.d/{stem}.md"))).expect("section");
        expected.push_str(text.trim_end());
        expected.push_str("\n\n");
    }
    let path = root.join("README.md");
    if std::env::var_os("CHECKIT_BLESS").is_some() {
        std::fs::write(&path, &expected).expect("write README.md");
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(actual == expected, "config/README.md is stale: run CHECKIT_BLESS=1 cargo test --test it config::");
}
