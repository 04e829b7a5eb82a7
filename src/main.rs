//! The `checkit` binary: a thin shell over the library.

fn main() -> std::process::ExitCode {
    checkit::cli::main()
}
