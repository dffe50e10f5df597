//! TLS certificates served on this machine's listening TCP ports (protocol 1.1).
//!
//! The ports come from the `ports` section the same pass already collected (nothing is read
//! twice). For each TCP port, once, the agent connects to the local address the socket is
//! bound to (a wildcard bind, `0.0.0.0` or `::`, is reached on `127.0.0.1` or `::1`) and
//! performs a TLS handshake. A port whose peer completes the handshake reports the first
//! certificate it presented — the leaf, CA flag or not, since it is what clients see — as a
//! `tls_certificates` entry with `source` `tcp:<port>`. Anything else (connection refused, a
//! service that speaks another protocol, closes, or stays silent) is skipped without a trace:
//! a port that is not TLS is not a gap, and nothing is invented for it.
//!
//! Why accepting any certificate is safe here: the certificate is only read, never trusted.
//! The agent sends nothing but its ClientHello, its side of the handshake and a
//! `close_notify` — no request, no credentials, no application data — and closes the
//! connection as soon as the handshake is done; the target is a socket on this machine. A
//! self-signed or expired certificate is exactly what the check wants to see, so it must not
//! be refused. The handshake signatures are still checked with the provider's algorithms
//! (cheap, and it means the peer really holds the certificate's key).
//!
//! No server name (SNI) is sent, as the address is an IP: a server choosing its certificate
//! by name presents its default one. Ports where a handshake can only leave an error in the
//! service's log — protocols that speak first or upgrade with STARTTLS, see
//! [`DEFAULT_EXCLUDED_PORTS`] — are skipped unless the configuration says otherwise.
//!
//! Bounds: connect [`Limits::connect`], handshake [`Limits::handshake`], at most
//! [`Limits::max_ports`] ports per pass (the lowest numbers), a few at a time, and no new
//! probe once [`Limits::budget`] is spent; ports left out are named in `not_collected` as
//! `tls_certificates.ports`.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};
use tandem_agent_protocol::inventory::{ListeningPort, TlsCertificate, TransportProtocol};

use super::Gaps;

/// Ports not probed by default: their services speak first or expect a plaintext protocol
/// (possibly upgraded with STARTTLS), so a direct handshake finds no certificate and only
/// logs an error there — SSH, SMTP and submission, DNS, POP3, rpcbind, IMAP, NetBIOS, SMB,
/// MySQL, PostgreSQL, Redis, memcached.
pub const DEFAULT_EXCLUDED_PORTS: [u16; 13] = [
    22, 25, 53, 110, 111, 139, 143, 445, 587, 3306, 5432, 6379, 11211,
];

/// The `source` of a certificate served on TCP port `port`: `tcp:443`.
pub fn source(port: u16) -> String {
    format!("tcp:{port}")
}

/// How long and how much one scan may take.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// To establish the TCP connection.
    pub connect: Duration,
    /// From connected to handshake done.
    pub handshake: Duration,
    /// Ports probed in one pass at most.
    pub max_ports: usize,
    /// No probe starts after this much time since the scan began.
    pub budget: Duration,
    /// Probes in flight at once.
    pub parallel: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connect: Duration::from_millis(500),
            handshake: Duration::from_millis(1500),
            max_ports: 64,
            budget: Duration::from_secs(8),
            parallel: 4,
        }
    }
}

/// The address to probe for each listening TCP port not in `excluded`, one per port, sorted
/// by port. A wildcard bind is reached on loopback; among several binds of one port a
/// loopback one is preferred. IPv6 link-local binds are left out (they need a scope).
pub fn targets(listening: &[ListeningPort], excluded: &[u16]) -> Vec<SocketAddr> {
    let mut best: std::collections::BTreeMap<u16, (u8, IpAddr)> = Default::default();
    for l in listening {
        if l.protocol != TransportProtocol::Tcp || l.port == 0 || excluded.contains(&l.port) {
            continue;
        }
        let Ok(ip) = l.local_address.parse::<IpAddr>() else {
            continue;
        };
        let ip = match ip {
            IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80 => continue,
            other => other,
        };
        let candidate = (u8::from(!ip.is_loopback()), ip);
        best.entry(l.port)
            .and_modify(|b| *b = (*b).min(candidate))
            .or_insert(candidate);
    }
    best.into_iter()
        .map(|(port, (_, ip))| SocketAddr::new(ip, port))
        .collect()
}

/// The certificates served on `targets`, sorted by source; what was left unprobed is named
/// in `gaps`.
pub fn scan(targets: &[SocketAddr], limits: &Limits, gaps: &mut Gaps) -> Vec<TlsCertificate> {
    let started = Instant::now();
    let total = targets.len();
    let targets = &targets[..total.min(limits.max_ports)];
    if targets.is_empty() {
        return Vec::new();
    }
    let config = client_config();
    let next = AtomicUsize::new(0);
    let found = Mutex::new(Vec::new());
    let unprobed = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..limits.parallel.clamp(1, targets.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(addr) = targets.get(i) else {
                    break;
                };
                if started.elapsed() >= limits.budget {
                    unprobed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let cert = probe(*addr, config.clone(), limits)
                    .and_then(|der| super::tls_certs::from_der(&der, &source(addr.port())));
                if let Some(cert) = cert {
                    found.lock().unwrap_or_else(|e| e.into_inner()).push(cert);
                }
            });
        }
    });
    let unprobed = unprobed.into_inner();
    if total > targets.len() {
        gaps.add(
            "tls_certificates.ports",
            format!(
                "only the lowest {} of {total} listening TCP ports are probed for certificates",
                targets.len()
            ),
        );
    }
    if unprobed > 0 {
        gaps.add(
            "tls_certificates.ports",
            format!(
                "{unprobed} listening TCP ports were not probed: the scan's {} s were spent",
                limits.budget.as_secs()
            ),
        );
    }
    let mut found = found.into_inner().unwrap_or_else(|e| e.into_inner());
    found.sort();
    found
}

/// The DER of the first certificate the peer at `addr` presents in a completed TLS
/// handshake; `None` for anything else.
pub fn probe(addr: SocketAddr, config: Arc<ClientConfig>, limits: &Limits) -> Option<Vec<u8>> {
    let mut socket = TcpStream::connect_timeout(&addr, limits.connect).ok()?;
    let _ = socket.set_nodelay(true);
    let deadline = Instant::now() + limits.handshake;
    let mut io = Deadline {
        socket: &mut socket,
        deadline,
    };
    let mut tls = ClientConnection::new(config, ServerName::IpAddress(addr.ip().into())).ok()?;
    loop {
        while tls.wants_write() {
            tls.write_tls(&mut io).ok()?;
        }
        if !tls.is_handshaking() {
            break;
        }
        if tls.read_tls(&mut io).ok()? == 0 {
            return None; // closed before the handshake was done
        }
        tls.process_new_packets().ok()?;
    }
    let leaf = tls.peer_certificates()?.first()?.as_ref().to_vec();
    tls.send_close_notify();
    let _ = tls.write_tls(&mut io);
    let _ = socket.shutdown(Shutdown::Both);
    Some(leaf)
}

/// A socket whose reads and writes fail once `deadline` has passed, so a peer that trickles
/// bytes cannot stretch the handshake.
struct Deadline<'a> {
    socket: &'a mut TcpStream,
    deadline: Instant,
}

impl Deadline<'_> {
    fn left(&self) -> io::Result<Duration> {
        self.deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| io::Error::from(io::ErrorKind::TimedOut))
    }
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.left()?;
        self.socket.set_read_timeout(Some(left))?;
        self.socket.read(buf)
    }
}

impl Write for Deadline<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let left = self.left()?;
        self.socket.set_write_timeout(Some(left))?;
        self.socket.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.socket.flush()
    }
}

/// A client configuration that reads any certificate (see the module's note on safety).
pub fn client_config() -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ReadOnly(provider)))
        .with_no_client_auth();
    Arc::new(config)
}

/// Accepts every certificate: it is read, never trusted. Handshake signatures are still
/// verified against the presented certificate.
#[derive(Debug)]
struct ReadOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for ReadOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Servers for the tests: TLS with an rcgen certificate, and a few that are not TLS.
#[cfg(test)]
pub(crate) mod testing {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener};
    use std::sync::Arc;
    use std::thread::{self, JoinHandle};
    use std::time::Duration;

    use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair};
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use rustls::{ServerConfig, ServerConnection};

    /// What the test server presents.
    pub struct Served {
        pub common_name: &'static str,
        pub dns_names: Vec<String>,
        pub not_after: i64,
        /// Marked as a CA, as `openssl req -x509` certificates are.
        pub ca: bool,
        /// TLS 1.2 only (else rustls's defaults, 1.3 preferred).
        pub tls12_only: bool,
    }

    /// A TLS server on 127.0.0.1 for one connection: its port, and the thread, which ends
    /// once the client has gone.
    pub fn tls_server(served: Served) -> (u16, JoinHandle<()>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(served.dns_names.clone()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, served.common_name);
        params.distinguished_name = dn;
        params.is_ca = if served.ca {
            IsCa::Ca(BasicConstraints::Unconstrained)
        } else {
            IsCa::ExplicitNoCa
        };
        params.not_before = time::OffsetDateTime::from_unix_timestamp(1_600_000_000).unwrap();
        params.not_after = time::OffsetDateTime::from_unix_timestamp(served.not_after).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider);
        let builder = if served.tls12_only {
            builder.with_protocol_versions(&[&rustls::version::TLS12])
        } else {
            builder.with_safe_default_protocol_versions()
        };
        let config = builder
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let thread = thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            socket
                .set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            let mut tls = ServerConnection::new(config).unwrap();
            while tls.is_handshaking() {
                tls.complete_io(&mut socket).expect("the handshake");
            }
            // Until the client's close_notify, or its side of the connection closing.
            let _ = tls.complete_io(&mut socket);
        });
        (port, thread)
    }

    /// What a plain TCP service does with the agent's ClientHello.
    #[derive(Clone, Copy)]
    pub enum Plain {
        /// Accepts, reads and never answers.
        Silent,
        /// Accepts and closes at once.
        Closes,
        /// Answers like an HTTP server and closes.
        Http,
    }

    /// A plain TCP service on 127.0.0.1; its port. The thread is left behind: if the scan
    /// never connects, it waits in `accept` until the test process ends.
    pub fn plain_server(kind: Plain) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        thread::spawn(move || {
            let Ok((mut socket, _)) = listener.accept() else {
                return;
            };
            let _ = socket.set_read_timeout(Some(Duration::from_secs(30)));
            match kind {
                Plain::Silent => {
                    let mut buf = [0u8; 1024];
                    while matches!(socket.read(&mut buf), Ok(n) if n > 0) {}
                }
                Plain::Closes => {
                    let _ = socket.shutdown(Shutdown::Both);
                }
                Plain::Http => {
                    let mut buf = [0u8; 1024];
                    let _ = socket.read(&mut buf);
                    let _ = socket.write_all(
                        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                }
            }
        });
        port
    }

    /// A port nothing listens on (bound, then released).
    pub fn closed_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{closed_port, plain_server, tls_server, Plain, Served};
    use super::*;

    fn tcp(address: &str, port: u16) -> ListeningPort {
        ListeningPort {
            protocol: TransportProtocol::Tcp,
            local_address: address.into(),
            port,
            process: None,
            pid: None,
        }
    }

    #[test]
    fn a_tls_port_reports_the_certificate_it_serves() {
        let (port, server) = tls_server(Served {
            common_name: "svc.example.test",
            dns_names: vec!["svc.example.test".into(), "api.example.test".into()],
            not_after: 1_900_000_000,
            ca: false,
            tls12_only: false,
        });
        // Bound to every address: reached on loopback.
        let targets = targets(&[tcp("0.0.0.0", port)], &[]);
        assert_eq!(targets, [SocketAddr::from(([127, 0, 0, 1], port))]);
        let mut gaps = Gaps::default();
        let found = scan(&targets, &Limits::default(), &mut gaps);
        server.join().expect("the server saw a whole handshake");
        assert!(gaps.into_sorted().is_empty());
        assert_eq!(found.len(), 1, "{found:#?}");
        let c = &found[0];
        assert_eq!(c.source, format!("tcp:{port}"));
        assert_eq!(c.subject, "CN=svc.example.test");
        assert_eq!(c.issuer, "CN=svc.example.test");
        assert_eq!(c.not_after, 1_900_000_000);
        assert_eq!(c.dns_names, ["svc.example.test", "api.example.test"]);
    }

    #[test]
    fn an_expired_self_signed_ca_certificate_over_tls_1_2_is_still_read() {
        // What a hand-made `openssl req -x509` certificate on an old service looks like: the
        // verifier must not refuse it, that is the point of the check.
        let (port, server) = tls_server(Served {
            common_name: "legacy.example.test",
            dns_names: vec!["legacy.example.test".into()],
            not_after: 1_650_000_000,
            ca: true,
            tls12_only: true,
        });
        let mut gaps = Gaps::default();
        let found = scan(
            &targets(&[tcp("127.0.0.1", port)], &[]),
            &Limits::default(),
            &mut gaps,
        );
        server.join().expect("the server saw a whole handshake");
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].subject, "CN=legacy.example.test");
        assert_eq!(found[0].not_after, 1_650_000_000);
    }

    #[test]
    fn ports_that_are_not_tls_are_skipped_without_a_gap() {
        let silent = plain_server(Plain::Silent);
        let closes = plain_server(Plain::Closes);
        let http = plain_server(Plain::Http);
        let closed = closed_port();
        let (tls, server) = tls_server(Served {
            common_name: "only.example.test",
            dns_names: vec![],
            not_after: 1_900_000_000,
            ca: false,
            tls12_only: false,
        });
        let listening: Vec<_> = [silent, closes, http, closed, tls]
            .into_iter()
            .map(|p| tcp("127.0.0.1", p))
            .collect();
        let mut gaps = Gaps::default();
        let found = scan(&targets(&listening, &[]), &Limits::default(), &mut gaps);
        server.join().unwrap();
        assert!(gaps.into_sorted().is_empty());
        let sources: Vec<&str> = found.iter().map(|c| c.source.as_str()).collect();
        assert_eq!(sources, [format!("tcp:{tls}")]);
        assert!(found[0].dns_names.is_empty());
    }

    #[test]
    fn targets_are_one_local_address_per_tcp_port_not_excluded() {
        let udp = ListeningPort {
            protocol: TransportProtocol::Udp,
            ..tcp("0.0.0.0", 443)
        };
        let listening = [
            udp,
            tcp("0.0.0.0", 22),
            tcp("::", 8443),
            tcp("192.0.2.10", 443),
            tcp("127.0.0.1", 443),
            tcp("fe80::1", 9000),
            tcp("::", 9000),
            tcp("192.0.2.10", 636),
            tcp("not an address", 1),
        ];
        assert_eq!(
            targets(&listening, &[22]),
            [
                "127.0.0.1:443".parse::<SocketAddr>().unwrap(),
                "192.0.2.10:636".parse().unwrap(),
                "[::1]:8443".parse().unwrap(),
                "[::1]:9000".parse().unwrap(),
            ]
        );
        assert!(DEFAULT_EXCLUDED_PORTS.contains(&22) && !DEFAULT_EXCLUDED_PORTS.contains(&443));
    }

    #[test]
    fn ports_beyond_the_bounds_are_named_as_not_probed() {
        let targets: Vec<SocketAddr> = (0..3)
            .map(|_| SocketAddr::from(([127, 0, 0, 1], closed_port())))
            .collect();
        let mut gaps = Gaps::default();
        let limits = Limits {
            max_ports: 2,
            ..Limits::default()
        };
        assert!(scan(&targets, &limits, &mut gaps).is_empty());
        let gaps = gaps.into_sorted();
        assert_eq!(gaps.len(), 1, "{gaps:?}");
        assert_eq!(gaps[0].field, "tls_certificates.ports");
        assert!(
            gaps[0].reason.contains("lowest 2 of 3"),
            "{}",
            gaps[0].reason
        );

        // A spent budget starts no probe.
        let mut gaps = Gaps::default();
        let limits = Limits {
            budget: Duration::ZERO,
            ..Limits::default()
        };
        assert!(scan(&targets, &limits, &mut gaps).is_empty());
        let gaps = gaps.into_sorted();
        assert_eq!(gaps.len(), 1, "{gaps:?}");
        assert!(gaps[0]
            .reason
            .starts_with("3 listening TCP ports were not probed"));
    }
}
