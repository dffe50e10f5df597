//! Certificate pinning against a real TLS server (OpenSSL's `s_server`, where installed):
//! with a pinned CA the agent trusts that CA and nothing else.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tandem_agent::client::{ClientError, ServerClient};
use tandem_agent::server_url::ServerUrl;
use tandem_agent_protocol::EnrollRequest;

fn openssl(dir: &Path, args: &[&str]) -> bool {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Makes a CA (`{name}.pem`) in `dir`; false when openssl is not installed.
fn make_ca(dir: &Path, name: &str) -> bool {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
        ],
    )
}

fn make_server_cert(dir: &Path, ca: &str) {
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    assert!(openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    ));
    assert!(openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    ));
}

/// An `s_server` that takes one connection on a free loopback port.
fn serve_once(dir: &Path) -> (Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("openssl")
        .args([
            "s_server",
            "-naccept",
            "1",
            "-www",
            "-cert",
            "server.pem",
            "-key",
            "server.key",
        ])
        .arg("-accept")
        .arg(format!("127.0.0.1:{port}"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    // The port is bound when a plain TCP connection would succeed; probing would use up the
    // one connection, so wait for the listening socket to appear instead.
    while Instant::now() < deadline {
        let listening = std::fs::read_to_string("/proc/net/tcp")
            .unwrap_or_default()
            .contains(&format!(":{port:04X} 00000000:0000 0A"));
        if listening {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, port)
}

fn enroll(port: u16, ca_pem: &str) -> ClientError {
    let url = ServerUrl::parse(&format!("https://127.0.0.1:{port}")).unwrap();
    let client = ServerClient::new(url, Some(ca_pem)).unwrap();
    let request = EnrollRequest {
        protocol: 1,
        token: "t".into(),
        public_key: "k".into(),
        hostname: "h".into(),
        os: "linux".into(),
        arch: "x86_64".into(),
        agent_version: "0".into(),
    };
    client
        .enroll(&request)
        .expect_err("s_server is no Tandem server")
}

#[test]
fn only_the_pinned_ca_is_trusted() {
    let dir = tempfile::tempdir().unwrap();
    if !make_ca(dir.path(), "pinned") {
        eprintln!("openssl not installed; skipped");
        return;
    }
    assert!(make_ca(dir.path(), "other"));
    make_server_cert(dir.path(), "pinned");
    let pinned = std::fs::read_to_string(dir.path().join("pinned.pem")).unwrap();
    let other = std::fs::read_to_string(dir.path().join("other.pem")).unwrap();

    // After a good handshake s_server waits for a GET; ending it ends the request.
    let (server, port) = serve_once(dir.path());
    let stopper = std::thread::spawn(move || {
        let mut server = server;
        std::thread::sleep(Duration::from_secs(3));
        let _ = server.kill();
        let _ = server.wait();
    });
    let error = enroll(port, &pinned).to_string();
    stopper.join().unwrap();
    assert!(
        !error.to_lowercase().contains("certificate"),
        "the pinned CA is trusted: {error}"
    );

    let (mut server, port) = serve_once(dir.path());
    let error = enroll(port, &other).to_string();
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        error.contains("UnknownIssuer"),
        "another CA is not: {error}"
    );
}
