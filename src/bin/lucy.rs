//! The native command line; everything lives in `lucy::cli`.

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    lucy::cli::main()
}

#[cfg(target_arch = "wasm32")]
fn main() {}
