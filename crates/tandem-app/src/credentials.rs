//! Secrets: passwords hashed with Argon2id, random tokens, and their SHA-256 digests.

use crate::{Error, Result};
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

/// Argon2id cost for new hashes: OWASP's "m=7 MiB, t=5, p=1", which it rates as strong as
/// "m=19 MiB, t=2" while needing a third of the memory. Hashes made with other parameters
/// (older installations used 19 MiB) still verify: the parameters travel in the PHC string.
const MEMORY_KIB: u32 = 7 * 1024;
const PASSES: u32 = 5;

fn params() -> Params {
    Params::new(MEMORY_KIB, PASSES, 1, None).expect("constant Argon2 parameters are valid")
}

/// Hashes a password with Argon2id on the hashing threads.
pub async fn hash_password(password: &str) -> Result<String> {
    let password = password.to_string();
    on_hasher(move |scratch| hash_with(scratch, &password)).await?
}

/// Checks a password against a stored Argon2 PHC string on the hashing threads. A malformed
/// hash never matches.
pub async fn verify_password(password: &str, hash: &str) -> Result<bool> {
    let (password, hash) = (password.to_string(), hash.to_string());
    on_hasher(move |scratch| verify_with(scratch, &password, &hash)).await
}

/// A hash to verify against when the user does not exist, so that a wrong username takes
/// as long as a wrong password.
pub(crate) async fn decoy_hash() -> Result<&'static str> {
    static DECOY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DECOY
        .get_or_try_init(|| hash_password("decoy password, never valid"))
        .await
        .map(String::as_str)
}

fn hash_with(scratch: &mut Scratch, password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let failed =
        |e: &dyn std::fmt::Display| Error::Internal(format!("password hashing failed: {e}"));
    let mut salt_bytes = [0u8; 64];
    let salt_raw = salt
        .as_salt()
        .decode_b64(&mut salt_bytes)
        .map_err(|e| failed(&e))?;
    let params = params();
    let mut out = [0u8; 32];
    compute(scratch, &params, password.as_bytes(), salt_raw, &mut out).map_err(|e| failed(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| failed(&e))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| failed(&e))?),
    };
    Ok(phc.to_string())
}

fn verify_with(scratch: &mut Scratch, password: &str, hash: &str) -> bool {
    let Ok(phc) = PasswordHash::new(hash) else {
        return false;
    };
    let (Ok(algorithm), Some(salt), Some(expected)) =
        (Algorithm::try_from(phc.algorithm), phc.salt, phc.hash)
    else {
        return false;
    };
    let version = match phc.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(&phc) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_raw) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    // The parameters carry the stored hash's length.
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params.clone());
    let done = if params.block_count() <= scratch.reusable_blocks() {
        argon.hash_password_into_with_memory(
            password.as_bytes(),
            salt_raw,
            &mut out,
            scratch.blocks(params.block_count()),
        )
    } else {
        // A hash made with more memory than new hashes use: borrow that memory only for now.
        argon.hash_password_into(password.as_bytes(), salt_raw, &mut out)
    };
    done.is_ok() && same_bytes(&out, expected.as_bytes())
}

fn compute(
    scratch: &mut Scratch,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> argon2::Result<()> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone()).hash_password_into_with_memory(
        password,
        salt,
        out,
        scratch.blocks(params.block_count()),
    )
}

/// One hashing thread's Argon2 memory, allocated on first use and kept: a freshly allocated
/// block per hash is what made the server's memory grow by 19 MiB per concurrent sign-in
/// (the allocator keeps freed blocks of that size in per-thread arenas).
#[derive(Default)]
struct Scratch(Vec<Block>);

impl Scratch {
    /// Blocks this scratch will hold for good: enough for the current parameters.
    fn reusable_blocks(&self) -> usize {
        params().block_count()
    }

    fn blocks(&mut self, n: usize) -> &mut [Block] {
        if self.0.len() < n {
            self.0 = vec![Block::default(); n];
        }
        &mut self.0[..n]
    }
}

type Job = Box<dyn FnOnce(&mut Scratch) + Send>;

/// Runs `f` on one of the hashing threads (at most two, each with its own scratch memory),
/// so that password hashing never blocks the async threads and its memory is bounded.
async fn on_hasher<T: Send + 'static>(
    f: impl FnOnce(&mut Scratch) -> T + Send + 'static,
) -> Result<T> {
    static QUEUE: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let queue = QUEUE.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(2));
        for i in 0..threads {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("tandem-hash-{i}"))
                .spawn(move || hashing_thread(&rx))
                .expect("starting a password hashing thread");
        }
        Mutex::new(tx)
    });
    let (reply, answer) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move |scratch| {
        let _ = reply.send(f(scratch));
    });
    queue
        .lock()
        .map_err(|_| Error::Internal("password hashing queue poisoned".into()))?
        .send(job)
        .map_err(|_| Error::Internal("password hashing threads stopped".into()))?;
    answer
        .await
        .map_err(|_| Error::Internal("password hashing failed".into()))
}

fn hashing_thread(jobs: &Mutex<mpsc::Receiver<Job>>) {
    let mut scratch = Scratch::default();
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match job {
            // A panicking job loses only its own answer, not the thread.
            Ok(job) => {
                let _ =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut scratch)));
            }
            Err(_) => return,
        }
    }
}

fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `bytes` random bytes from the operating system, hex-encoded.
pub fn new_secret(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// SHA-256 of a string, hex-encoded. For high-entropy secrets (tokens, recovery codes)
/// this is enough; passwords use Argon2id.
pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Compares two strings in time that does not depend on where they differ.
pub(crate) fn same(a: &str, b: &str) -> bool {
    same_bytes(a.as_bytes(), b.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordHasher;

    #[tokio::test]
    async fn hashes_verify_and_wrong_passwords_do_not() {
        let h = hash_password("correct horse battery").await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"), "{h}");
        assert!(verify_password("correct horse battery", &h).await.unwrap());
        assert!(!verify_password("correct horse batterz", &h).await.unwrap());
        let again = hash_password("correct horse battery").await.unwrap();
        assert_ne!(h, again, "each hash has its own salt");
    }

    #[tokio::test]
    async fn hashes_made_with_other_parameters_still_verify() {
        // What earlier installations stored: the argon2 crate's defaults (19 MiB, 2 passes).
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let old = Argon2::default()
            .hash_password(b"an older password", &salt)
            .unwrap()
            .to_string();
        assert!(old.contains("m=19456"), "{old}");
        assert!(verify_password("an older password", &old).await.unwrap());
        assert!(!verify_password("an older passworD", &old).await.unwrap());
    }

    #[tokio::test]
    async fn malformed_hashes_never_match() {
        for bad in [
            "",
            "$argon2id$",
            "plain",
            "$argon2id$v=19$m=7168,t=5,p=1$c2FsdA$",
        ] {
            assert!(
                !verify_password("anything at all", bad).await.unwrap(),
                "{bad}"
            );
        }
    }
}
