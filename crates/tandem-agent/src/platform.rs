//! What differs between operating systems outside the collectors: keeping the agent's
//! files private, and naming the machine before the first inventory.
//!
//! Unix (Linux, macOS): modes 0600/0700 set as the file or folder is created. Windows: the
//! file is created, then `icacls` (part of every Windows installation) removes inherited
//! access and grants it to SYSTEM and Administrators only; if that fails, writing the file
//! fails rather than leaving a private key readable by every user. The Windows path is
//! compiled and checked in CI (`cargo clippy --target x86_64-pc-windows-gnu`) but not yet
//! run on a Windows host.

use std::fs;
use std::path::Path;

/// Opens a new file that only its owner (or, on Windows, the administrators) can read.
pub fn create_private(path: &Path) -> std::io::Result<fs::File> {
    let mut o = fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let f = o.open(path)?;
    restrict(path)?;
    Ok(f)
}

/// Takes every access but the owner's (Windows: SYSTEM's and Administrators') away from an
/// existing file.
pub fn restrict(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
    }
    #[cfg(windows)]
    {
        icacls(path, false)
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = path;
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "cannot make files private on this platform",
        ))
    }
}

/// Creates a folder (and its parents) only its owner can enter.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)?;
    #[cfg(windows)]
    icacls(dir, true)?;
    Ok(())
}

/// Whether others than the owner may read `path`, when this platform can tell.
pub fn readable_by_others(path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0)
            .then(|| format!("has mode {mode:o}; run `chmod 600 {}`", path.display()))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

#[cfg(windows)]
fn icacls(path: &Path, folder: bool) -> std::io::Result<()> {
    let grant = if folder { ":(OI)(CI)F" } else { ":F" };
    // By full path: a writable folder early in PATH must not choose what runs here.
    let icacls = std::env::var_os("SystemRoot")
        .map(|root| Path::new(&root).join("System32").join("icacls.exe"))
        .unwrap_or_else(|| "icacls".into());
    let status = std::process::Command::new(icacls)
        .arg(path)
        .args(["/inheritance:r", "/grant:r"])
        .arg(format!("*S-1-5-18{grant}"))
        .arg("/grant:r")
        .arg(format!("*S-1-5-32-544{grant}"))
        .stdout(std::process::Stdio::null())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "icacls could not restrict {} to SYSTEM and Administrators ({status})",
            path.display()
        )))
    }
}

/// The machine's name as the kernel knows it.
pub fn hostname() -> Option<String> {
    #[cfg(unix)]
    {
        nix::sys::utsname::uname()
            .ok()
            .map(|u| u.nodename().to_string_lossy().into_owned())
    }
    #[cfg(not(unix))]
    {
        std::env::var("COMPUTERNAME").ok()
    }
}

/// The machine's architecture as the kernel names it (`x86_64`, `aarch64`, …).
pub fn arch() -> String {
    #[cfg(unix)]
    {
        nix::sys::utsname::uname()
            .map(|u| u.machine().to_string_lossy().into_owned())
            .unwrap_or_else(|_| std::env::consts::ARCH.to_string())
    }
    #[cfg(not(unix))]
    {
        std::env::consts::ARCH.to_string()
    }
}
