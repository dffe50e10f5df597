//! Running `wrk` as a child process and reading its report.

use anyhow::{bail, Context, Result};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one `wrk` run reported.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WrkResult {
    pub requests: u64,
    pub seconds: f64,
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Answers that were not 2xx or 3xx.
    pub non_2xx: u64,
    /// Connect, read, write errors and timeouts.
    pub socket_errors: u64,
    /// CPU time `wrk` itself used, in clock ticks (last reading before it exited).
    pub cpu_ticks: u64,
}

/// The `wrk` version line; fails with advice when `wrk` is missing.
pub fn version() -> Result<String> {
    match Command::new("wrk").arg("-v").stdin(Stdio::null()).output() {
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stdout).to_string()
                + &String::from_utf8_lossy(&o.stderr);
            Ok(text.lines().next().unwrap_or("wrk").trim().to_string())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("wrk is not installed (on Debian: apt-get install wrk); it is needed for the load test")
        }
        Err(e) => Err(e).context("cannot run wrk"),
    }
}

/// One load run. Only loopback URLs are accepted.
pub fn run(
    url: &str,
    threads: u64,
    connections: u64,
    secs: u64,
    header: Option<&str>,
) -> Result<WrkResult> {
    if !url.starts_with("http://127.0.0.1:") {
        bail!("refusing to load {url}: the bench only targets 127.0.0.1");
    }
    let mut cmd = Command::new("wrk");
    cmd.arg("--latency")
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{secs}s"))
        .arg("--timeout")
        .arg("5s");
    if let Some(h) = header {
        cmd.arg("-H").arg(h);
    }
    cmd.arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().context("cannot start wrk")?;
    let mut stdout = child.stdout.take().context("wrk stdout")?;
    let mut stderr = child.stderr.take().context("wrk stderr")?;
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(secs + 30);
    let mut cpu_ticks = 0;
    let status = loop {
        if let Some(t) = crate::machine::process_ticks(child.id()) {
            cpu_ticks = t;
        }
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("wrk did not finish within {} s", secs + 30);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    if !status.success() {
        bail!("wrk failed ({status}): {err}{out}");
    }
    let mut r = parse(&out).with_context(|| format!("cannot read wrk's report:\n{out}{err}"))?;
    r.cpu_ticks = cpu_ticks;
    Ok(r)
}

/// Reads the report `wrk --latency` prints.
pub fn parse(out: &str) -> Result<WrkResult> {
    let mut r = WrkResult::default();
    let (mut p50, mut p99, mut rps, mut total) = (None, None, None, None);
    for line in out.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", v] => p50 = duration_ms(v),
            ["99%", v] => p99 = duration_ms(v),
            ["Requests/sec:", v] => rps = v.parse().ok(),
            [n, "requests", "in", secs, ..] => {
                total = n.parse().ok();
                r.seconds = duration_ms(secs.trim_end_matches(','))
                    .map(|ms| ms / 1000.0)
                    .unwrap_or(0.0);
            }
            ["Non-2xx", "or", "3xx", "responses:", n] => r.non_2xx = n.parse().unwrap_or(0),
            ["Socket", "errors:", rest @ ..] => {
                r.socket_errors = rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum();
            }
            _ => {}
        }
    }
    r.p50_ms = p50.context("no 50% latency (was --latency passed?)")?;
    r.p99_ms = p99.context("no 99% latency")?;
    r.requests_per_sec = rps.context("no Requests/sec")?;
    r.requests = total.context("no request count")?;
    Ok(r)
}

/// `wrk`'s durations: `812.00us`, `1.23ms`, `2.00s`, `1.50m`.
fn duration_ms(s: &str) -> Option<f64> {
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (n, unit) = s.split_at(split);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        "h" => n * 3_600_000.0,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Running 15s test @ http://127.0.0.1:8080/healthz
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   302.51us  201.10us   9.79ms   93.40%
    Req/Sec    52.10k     3.01k   58.50k    71.33%
  Latency Distribution
     50%  264.00us
     75%  320.00us
     90%  409.00us
     99%    1.10ms
  1555437 requests in 15.00s, 233.61MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec: 103675.15
Transfer/sec:     15.57MB
";

    #[test]
    fn reads_a_report() {
        let r = parse(SAMPLE).unwrap();
        assert_eq!(r.requests, 1_555_437);
        assert!((r.seconds - 15.0).abs() < 1e-9);
        assert!((r.requests_per_sec - 103_675.15).abs() < 1e-6);
        assert!((r.p50_ms - 0.264).abs() < 1e-9);
        assert!((r.p99_ms - 1.10).abs() < 1e-9);
        assert_eq!(r.non_2xx, 7);
        assert_eq!(r.socket_errors, 3);
    }

    #[test]
    fn refuses_a_report_without_latency() {
        let short = SAMPLE.replace("     50%  264.00us\n", "");
        assert!(parse(&short).is_err());
    }

    #[test]
    fn reads_units() {
        assert_eq!(duration_ms("812.00us"), Some(0.812));
        assert_eq!(duration_ms("2.00s"), Some(2000.0));
        assert_eq!(duration_ms("1.50m"), Some(90_000.0));
        assert_eq!(duration_ms("12"), None);
    }

    #[test]
    fn only_loopback() {
        assert!(run("http://10.0.0.1:80/", 1, 1, 1, None).is_err());
    }
}
