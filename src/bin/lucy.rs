//! The native command line; everything lives in `lucy::cli`.

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    // Like other Unix tools, stop quietly when the reader goes away (`lucy … | head`): Rust
    // ignores SIGPIPE, and every `println!` after that would panic.
    #[cfg(unix)]
    // SAFETY: restoring the default action of one signal, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    lucy::cli::main()
}

#[cfg(target_arch = "wasm32")]
fn main() {}
