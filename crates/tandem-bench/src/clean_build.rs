//! Times a clean release build of the server and measures the binary.

use crate::machine::{self, Machine};
use crate::Flags;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest a build may take before it is stopped.
const BUILD_TIMEOUT: Duration = Duration::from_secs(60 * 60);

pub struct Options {
    target_dir: PathBuf,
    workspace: PathBuf,
    keep: bool,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Self> {
        let f = Flags::parse(args, &["keep"])?;
        f.only(&["target-dir", "workspace", "keep"])?;
        let target_dir = PathBuf::from(
            f.get("target-dir")
                .context("--target-dir EMPTY_DIR is required")?,
        );
        if target_dir.exists() && std::fs::read_dir(&target_dir)?.next().is_some() {
            bail!(
                "{} is not empty; a clean build needs an empty target folder",
                target_dir.display()
            );
        }
        Ok(Options {
            target_dir,
            workspace: PathBuf::from(f.get("workspace").unwrap_or(".")),
            keep: f.has("keep"),
        })
    }
}

pub fn run(o: Options) -> Result<()> {
    let machine = Machine::read();
    // Fetch first, so the timing is compiling and linking only.
    let fetched = Command::new("cargo")
        .arg("fetch")
        .current_dir(&o.workspace)
        .status()
        .context("cannot run cargo")?;
    if !fetched.success() {
        bail!("cargo fetch failed");
    }
    eprintln!(
        "building into {} (this takes minutes on 2 cores)",
        o.target_dir.display()
    );
    let m0 = machine::machine_ticks();
    let t = Instant::now();
    let mut child = Command::new("cargo")
        .args(["build", "--release", "-p", "tandem-server"])
        .env("CARGO_TARGET_DIR", &o.target_dir)
        .current_dir(&o.workspace)
        .stdin(Stdio::null())
        .spawn()
        .context("cannot run cargo")?;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if t.elapsed() > BUILD_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "the build took longer than {} min",
                BUILD_TIMEOUT.as_secs() / 60
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let wall = t.elapsed();
    let m1 = machine::machine_ticks();
    if !status.success() {
        bail!("the build failed ({status})");
    }
    let bin = o.target_dir.join("release").join("tandem");
    let built = std::fs::metadata(&bin)
        .with_context(|| format!("no {}", bin.display()))?
        .len();
    let stripped_path = o.target_dir.join("tandem.stripped");
    let strip = Command::new("strip")
        .arg("-o")
        .arg(&stripped_path)
        .arg(&bin)
        .status();
    let stripped = match strip {
        Ok(s) if s.success() => Some(std::fs::metadata(&stripped_path)?.len()),
        _ => None,
    };
    let spent = m0.until(m1);
    let busy = spent.busy as f64 / spent.total.max(1) as f64;
    let mb = |b: u64| b as f64 / 1024.0 / 1024.0;
    println!("## Clean release build\n");
    print!("{}", machine.markdown());
    println!("- command: `CARGO_TARGET_DIR={} cargo build --release -p tandem-server` (after `cargo fetch`)", o.target_dir.display());
    println!(
        "- wall time: {:.0} s ({}:{:02})",
        wall.as_secs_f64(),
        wall.as_secs() / 60,
        wall.as_secs() % 60
    );
    println!("- all CPUs busy during the build: {:.0} %", busy * 100.0);
    println!(
        "- load average (1/5/15 min) at the end: {}",
        machine::load_average()
    );
    println!(
        "- `tandem` as built (profile strips debuginfo, keeps symbols): {:.1} MiB ({built} bytes)",
        mb(built)
    );
    match stripped {
        Some(s) => println!("- `tandem` after `strip`: {:.1} MiB ({s} bytes)", mb(s)),
        None => println!("- `strip` is not available; stripped size not measured"),
    }
    if !o.keep {
        std::fs::remove_dir_all(&o.target_dir)
            .with_context(|| format!("cannot remove {}", o.target_dir.display()))?;
        eprintln!("removed {}", o.target_dir.display());
    }
    Ok(())
}
