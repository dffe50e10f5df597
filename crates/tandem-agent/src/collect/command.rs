//! Running the few system tools the agent needs, with a time limit and the C locale, and
//! turning every way they can fail into a `not_collected` reason.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Folders searched after `PATH`: admin tools live in sbin, which a user's `PATH` may lack.
const EXTRA_DIRS: [&str; 5] = ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// The most output the agent reads from one tool.
const MAX_OUTPUT_BYTES: u64 = 64 * 1024 * 1024;

/// What a tool printed.
#[derive(Debug)]
pub struct ToolOutput {
    /// Standard output (lossy UTF-8).
    pub stdout: String,
    /// Standard error (lossy UTF-8).
    pub stderr: String,
    /// How it exited.
    pub status: ExitStatus,
}

/// Why a tool gave no usable answer.
#[derive(Debug)]
pub enum ToolError {
    /// The tool is not installed.
    Absent(String),
    /// It ran and failed.
    Failed {
        /// The tool.
        tool: String,
        /// Its exit code, if it exited normally.
        code: Option<i32>,
        /// The first line of its error output.
        message: String,
    },
    /// It ran past its time limit and was killed.
    TimedOut {
        /// The tool.
        tool: String,
        /// The limit.
        after: Duration,
    },
    /// It could not be started or read.
    Io {
        /// The tool.
        tool: String,
        /// The error.
        error: String,
    },
}

impl ToolError {
    /// Words for a `not_collected` reason.
    pub fn reason(&self) -> String {
        match self {
            ToolError::Absent(tool) => format!("tool absent: {tool}"),
            ToolError::Failed {
                tool,
                code,
                message,
            } => {
                let code = code.map_or_else(|| "a signal".to_string(), |c| c.to_string());
                if looks_like_permission_problem(message) {
                    format!("permission denied: `{tool}` exited with {code}: {message}")
                } else {
                    format!("`{tool}` exited with {code}: {message}")
                }
            }
            ToolError::TimedOut { tool, after } => {
                format!("`{tool}` did not finish within {} s", after.as_secs())
            }
            ToolError::Io { tool, error } => format!("cannot run `{tool}`: {error}"),
        }
    }
}

fn looks_like_permission_problem(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    [
        "permission denied",
        "operation not permitted",
        "must be root",
        "need to be root",
    ]
    .iter()
    .any(|p| lower.contains(p))
}

/// Whether systemd is the running init system (the same test as `sd_booted()`: the folder
/// `/run/systemd/system` exists). Its tools (`systemctl`, `loginctl`, `timedatectl`) can only
/// answer then; asking them anyway costs a process start each and tells nothing.
pub fn systemd_running() -> bool {
    std::path::Path::new("/run/systemd/system").is_dir()
}

/// The reason given for values only systemd can tell, when it is not running.
pub const NO_SYSTEMD: &str = "systemd is not the running init system (no /run/systemd/system)";

/// Finds a tool in `PATH` or the usual system folders.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let path = PathBuf::from(name);
        return path.is_file().then_some(path);
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Runs a tool and requires it to succeed.
pub fn run(tool: &str, args: &[&str], limit: Duration) -> Result<ToolOutput, ToolError> {
    let output = run_any_status(tool, args, limit)?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(failed(tool, &output))
    }
}

/// The error for a tool that exited unsuccessfully.
pub fn failed(tool: &str, output: &ToolOutput) -> ToolError {
    let message = output
        .stderr
        .lines()
        .chain(output.stdout.lines())
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no message")
        .chars()
        .take(200)
        .collect();
    ToolError::Failed {
        tool: tool.to_string(),
        code: output.status.code(),
        message,
    }
}

/// Runs a tool and returns its output whatever its exit status.
pub fn run_any_status(tool: &str, args: &[&str], limit: Duration) -> Result<ToolOutput, ToolError> {
    let program = find_tool(tool).ok_or_else(|| ToolError::Absent(tool.to_string()))?;
    let mut child = Command::new(&program)
        .args(args)
        .env("LC_ALL", "C")
        .env("LANG", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ToolError::Io {
            tool: tool.to_string(),
            error: e.to_string(),
        })?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let Some(status) = wait_with_limit(&mut child, limit) else {
        // The readers are left to finish on their own: a grandchild may still hold the
        // pipes open, and waiting for it would defeat the limit.
        return Err(ToolError::TimedOut {
            tool: tool.to_string(),
            after: limit,
        });
    };
    Ok(ToolOutput {
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        status,
    })
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(pipe) = pipe {
            let _ = pipe.take(MAX_OUTPUT_BYTES).read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Waits for the child, polling with growing pauses; kills it past the limit.
fn wait_with_limit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => {
                thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(25));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_tools_are_reported_as_absent() {
        let error = run("tandem-no-such-tool", &[], Duration::from_secs(1)).unwrap_err();
        assert_eq!(error.reason(), "tool absent: tandem-no-such-tool");
    }

    #[test]
    fn failing_tools_report_their_exit_code_and_message() {
        let error = run(
            "sh",
            &["-c", "echo 'Permission denied' >&2; exit 3"],
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert_eq!(
            error.reason(),
            "permission denied: `sh` exited with 3: Permission denied"
        );
    }

    #[test]
    fn slow_tools_are_killed_at_the_limit() {
        let started = Instant::now();
        let error = run("sleep", &["10"], Duration::from_millis(200)).unwrap_err();
        assert!(matches!(error, ToolError::TimedOut { .. }));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn output_is_read_in_the_c_locale() {
        let output = run("sh", &["-c", "echo $LC_ALL"], Duration::from_secs(5)).unwrap();
        assert_eq!(output.stdout.trim(), "C");
    }
}
