//! What every service binary does at start and stop besides reading its config: announce
//! its bound addresses in a ready file, and wait for SIGTERM or Ctrl-C.

use std::path::Path;

/// Writes `contents` (JSON naming the bound addresses) to `path` atomically: a reader never
/// sees half a file, so a supervisor or test can poll for it.
pub fn write_ready_file(path: &Path, contents: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
}

/// Completes on SIGTERM (what Kubernetes sends) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
        let _ = ctrl_c.await;
        return;
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}

/// The exit of a service binary: success, or the error's whole chain on one line (`{:#}`), no
/// backtrace, because the operator needs the cause, not our stack.
pub fn exit_code<E: std::fmt::Display>(binary: &str, result: Result<(), E>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{binary}: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
