//! Stamps the binary with its git revision for `checkit_build_info`.
//!
//! `CHECKIT_REVISION` from the environment wins (image builds without `.git`
//! set it); otherwise `git rev-parse`, else `unknown`.
//!
//! Also links the release binary with its hot code first (see
//! `link_hot_code_first`) and as a position-dependent executable (see
//! the README's Benchmarks section): a PIE binary carries ~1.5 MiB of pointer
//! tables (vtables, panic locations, static string tables) that the dynamic
//! loader rewrites at every start, which makes them private memory, plus
//! ~1.4 MiB of relocation entries it reads to do so. Linked at a fixed
//! address, the linker resolves them and only the pages the process reads are
//! resident. blackbox_exporter (Go) is linked the same way. Debug and test
//! builds stay PIE.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}

fn main() {
    println!("cargo:rerun-if-env-changed=CHECKIT_REVISION");
    if let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        // A commit moves HEAD's reflog; a checkout rewrites HEAD.
        println!("cargo:rerun-if-changed={git_dir}/HEAD");
        println!("cargo:rerun-if-changed={git_dir}/logs/HEAD");
    }
    let revision = std::env::var("CHECKIT_REVISION")
        .ok()
        .filter(|revision| !revision.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=CHECKIT_REVISION={revision}");
    if std::env::var("PROFILE").as_deref() == Ok("release") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
        link_hot_code_first();
    }
}

/// Gathers the functions a serving checkit runs at the start of its code
/// (`benches/linker-order.ld`, made by `benches/linker-order.sh`). The kernel
/// maps code in 64 KiB windows around each page touched, so those functions,
/// spread over the whole binary, kept most of it resident. The script only
/// adds an output section (INSERT BEFORE .text), which GNU ld and lld both
/// read; everything else keeps the linker's default layout.
fn link_hot_code_first() {
    println!("cargo:rerun-if-changed=benches/linker-order.ld");
    // benches/linker-order.sh profiles a build without it: valgrind names
    // only functions in `.text`. The symbols are the same either way.
    println!("cargo:rerun-if-env-changed=CHECKIT_LINKER_ORDER");
    if std::env::var("CHECKIT_LINKER_ORDER").as_deref() == Ok("off") {
        return;
    }
    let Ok(dir) = std::env::var("CARGO_MANIFEST_DIR") else { return };
    let script = std::path::Path::new(&dir).join("benches/linker-order.ld");
    if script.exists() && std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
    }
}
