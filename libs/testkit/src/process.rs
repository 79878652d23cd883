//! The workspace's binaries as child processes of a test: output captured to a log file (shown
//! when a test fails), stopped gracefully or killed, and always reaped on drop.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::TestkitError;

const LOG_FILE: &str = "output.log";

/// A spawned process, killed and reaped on drop.
#[derive(Debug)]
pub struct ChildProcess {
    child: Child,
    name: String,
    // Dropped after the process is reaped (see `Drop`), so the log outlives it.
    dir: tempfile::TempDir,
}

impl ChildProcess {
    /// Starts `program` with `args` and extra `env` (added to the inherited environment), its
    /// stdout and stderr appended to one log file in a fresh temporary directory, which is
    /// also its working directory.
    pub fn spawn<I, S>(program: &Path, args: I, env: &[(&str, &str)]) -> Result<ChildProcess, TestkitError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let name = program.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let dir = tempfile::Builder::new()
            .prefix(&format!("mixmon-{name}-"))
            .tempdir()
            .map_err(|e| TestkitError::io("creating process dir", e))?;
        let log = std::fs::File::create(dir.path().join(LOG_FILE))
            .map_err(|e| TestkitError::io("creating process log", e))?;
        let log_err = log.try_clone().map_err(|e| TestkitError::io("creating process log", e))?;
        let child = Command::new(program)
            .args(args)
            .envs(env.iter().copied())
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| TestkitError::io(format!("spawning {}", program.display()), e))?;
        Ok(ChildProcess { child, name, dir })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's own temporary directory (its working directory): a place for its ready
    /// file, data and config.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join(LOG_FILE)
    }

    /// The last `n` lines of its combined output, labelled, for assertion messages.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(n);
        let mut out = format!("--- last {} lines of {} (pid {}) ---\n", lines.len() - start, self.name, self.pid());
        for line in &lines[start..] {
            out.push_str(line);
            out.push('\n');
        }
        out
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        // An error means it already exited; `wait` reaps it either way.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, the graceful stop Kubernetes sends; follow with [`Self::wait_exit`].
    pub fn terminate(&mut self) -> Result<(), TestkitError> {
        if self.try_status()?.is_some() {
            return Ok(());
        }
        // `kill(1)` keeps this crate free of unsafe libc calls.
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .map_err(|e| TestkitError::io("running kill -TERM", e))?;
        if status.success() {
            Ok(())
        } else {
            Err(TestkitError::io(
                format!("kill -TERM {}", self.pid()),
                std::io::Error::other(format!("exited with {status}")),
            ))
        }
    }

    /// The exit status if it has exited, without waiting.
    pub fn try_status(&mut self) -> Result<Option<ExitStatus>, TestkitError> {
        self.child.try_wait().map_err(|e| TestkitError::io("checking process status", e))
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, TestkitError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(TestkitError::Timeout {
                    what: format!("{} (pid {}) to exit", self.name, self.pid()),
                    after: timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The path of a binary built by this workspace (`cargo build --workspace --bins`), in the
/// debug profile: `$CARGO_TARGET_DIR/debug/<name>`, else next to the running test binary,
/// else `<workspace>/target/debug/<name>`.
pub fn binary_path(name: &str) -> Result<PathBuf, TestkitError> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut candidates = Vec::new();
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        let target = PathBuf::from(target);
        let target = if target.is_relative() { workspace.join(target) } else { target };
        candidates.push(target.join("debug").join(name));
    }
    // Test binaries live in <target>/debug/deps, next to the binaries' <target>/debug.
    if let Ok(exe) = std::env::current_exe() {
        if let Some(profile_dir) = exe.parent().and_then(Path::parent) {
            candidates.push(profile_dir.join(name));
        }
    }
    candidates.push(workspace.join("target").join("debug").join(name));
    candidates
        .iter()
        .find(|path| path.is_file())
        .cloned()
        .ok_or_else(|| TestkitError::BinaryMissing { name: name.to_string(), searched: candidates })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // in tests a failed unwrap is a failed assertion
mod tests {
    use super::*;

    fn sh(script: &str) -> ChildProcess {
        ChildProcess::spawn(Path::new("/bin/sh"), ["-c", script], &[("GREETING", "hello")]).unwrap()
    }

    #[test]
    fn captures_output_and_exit_status() {
        let mut child = sh("echo out $GREETING; echo err >&2; exit 3");
        let status = child.wait_exit(Duration::from_secs(10)).unwrap();
        assert_eq!(status.code(), Some(3));
        let tail = child.log_tail(10);
        assert!(tail.contains("out hello") && tail.contains("err"), "{tail}");
        assert!(!child.log_tail(1).contains("out hello"), "only the last line: {}", child.log_tail(1));
    }

    #[test]
    fn terminate_stops_a_running_process() {
        let mut child = sh("trap 'echo got term; exit 0' TERM; echo started; while true; do sleep 0.05; done");
        crate::eventually_blocking(Duration::from_secs(10), Duration::from_millis(10), || {
            child.log_tail(5).contains("started")
        })
        .unwrap();
        assert!(matches!(child.wait_exit(Duration::from_millis(50)), Err(TestkitError::Timeout { .. })));
        child.terminate().unwrap();
        let status = child.wait_exit(Duration::from_secs(10)).unwrap();
        assert_eq!(status.code(), Some(0), "{}", child.log_tail(5));
        assert!(child.log_tail(5).contains("got term"));
    }

    #[test]
    fn kill_and_drop_reap_the_process() {
        let mut child = sh("sleep 30");
        let pid = child.pid();
        child.kill();
        assert!(child.try_status().unwrap().is_some());
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));
        assert!(!proc_dir.exists(), "reaped, not a zombie");

        let child = sh("sleep 30");
        let proc_dir = PathBuf::from(format!("/proc/{}", child.pid()));
        drop(child);
        assert!(!proc_dir.exists());
    }

    #[test]
    fn missing_binary_says_how_to_build_it() {
        let err = binary_path("no-such-mixmon-binary").unwrap_err();
        let message = err.to_string();
        assert!(message.contains("cargo build --workspace --bins"), "{message}");
        assert!(message.contains("no-such-mixmon-binary"), "{message}");
    }
}
