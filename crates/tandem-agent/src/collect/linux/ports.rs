//! The `ports` section: listening sockets from sock_diag (or /proc/net/{tcp,tcp6,udp,udp6}),
//! and the owning process found by matching socket inodes against /proc/PID/fd links.

use std::net::{Ipv4Addr, Ipv6Addr};

use tandem_agent_protocol::inventory::{ListeningPort, PortsSection, TransportProtocol};

use super::{procs, sockdiag};
use crate::collect::text;
use crate::collect::Gaps;

/// TCP's LISTEN state in /proc/net/tcp.
const TCP_LISTEN: &str = "0A";
/// The CLOSE state an unconnected UDP socket shows.
const UDP_UNCONNECTED: &str = "07";

const TABLES: [(&str, TransportProtocol); 4] = [
    ("/proc/net/tcp", TransportProtocol::Tcp),
    ("/proc/net/tcp6", TransportProtocol::Tcp),
    ("/proc/net/udp", TransportProtocol::Udp),
    ("/proc/net/udp6", TransportProtocol::Udp),
];

/// A listening socket as /proc/net lists it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Socket {
    /// TCP or UDP.
    pub protocol: TransportProtocol,
    /// The local address.
    pub address: String,
    /// The local port.
    pub port: u16,
    /// The socket's inode, to find its process.
    pub inode: u64,
}

/// Reads the ports section; `None` when no socket table is readable.
pub fn collect(gaps: &mut Gaps) -> Option<PortsSection> {
    let sockets = match listening_sockets() {
        Ok(sockets) => sockets,
        Err(reason) => {
            gaps.add("ports", reason);
            return None;
        }
    };
    let owners = procs::socket_owners();
    let mut unresolved = 0usize;
    let mut listening: Vec<ListeningPort> = sockets
        .into_iter()
        .map(|s| {
            let owner = owners.owners.get(&s.inode);
            unresolved += usize::from(owner.is_none());
            ListeningPort {
                protocol: s.protocol,
                local_address: s.address,
                port: s.port,
                process: owner.map(|p| p.name.clone()),
                pid: owner.map(|p| p.pid),
            }
        })
        .collect();
    if unresolved > 0 {
        let reason = if owners.unreadable > 0 {
            format!(
                "permission denied reading the descriptors of {} processes (run as root)",
                owners.unreadable
            )
        } else {
            format!(
                "the owner of {unresolved} sockets is not visible in /proc \
                 (another PID namespace, or the process exited)"
            )
        };
        gaps.add_all(&["ports.listening.process", "ports.listening.pid"], &reason);
    }
    listening.sort();
    listening.dedup_by(|a, b| {
        (a.protocol, &a.local_address, a.port) == (b.protocol, &b.local_address, b.port)
    });
    Some(PortsSection { listening })
}

/// Every listening socket, from sock_diag (cheap), or from the /proc/net table where
/// sock_diag is unavailable for that table; fails only if nothing is readable.
pub fn listening_sockets() -> Result<Vec<Socket>, String> {
    let mut sockets = Vec::new();
    let mut first_error = None;
    let mut read_any = false;
    for (path, protocol) in TABLES {
        let found = sockdiag::listening(protocol, path.ends_with('6'))
            .or_else(|_| text::read(path).map(|table| parse_socket_table(&table, protocol)));
        match found {
            Ok(found) => {
                read_any = true;
                sockets.extend(found);
            }
            Err(reason) => {
                first_error.get_or_insert(reason);
            }
        }
    }
    if !read_any {
        return Err(first_error.unwrap_or_else(|| "no socket table".into()));
    }
    sockets.sort();
    sockets.dedup();
    Ok(sockets)
}

/// The listening sockets of one /proc/net table.
pub fn parse_socket_table(table: &str, protocol: TransportProtocol) -> Vec<Socket> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (local, remote, state, inode) = (f.get(1)?, f.get(2)?, f.get(3)?, f.get(9)?);
            let listening = match protocol {
                TransportProtocol::Tcp => *state == TCP_LISTEN,
                TransportProtocol::Udp => {
                    *state == UDP_UNCONNECTED
                        && remote.split(':').next()?.bytes().all(|b| b == b'0')
                }
            };
            if !listening {
                return None;
            }
            let (address, port) = parse_endpoint(local)?;
            Some(Socket {
                protocol,
                address,
                port,
                inode: inode.parse().ok()?,
            })
        })
        .collect()
}

/// `0100007F:1F90` → (`127.0.0.1`, 8080). Addresses are the kernel's in-memory words,
/// printed in hex in the machine's byte order.
pub fn parse_endpoint(field: &str) -> Option<(String, u16)> {
    let (address, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Vec<[u8; 4]> = (0..address.len() / 8)
        .map(|i| {
            let word = address.get(i * 8..i * 8 + 8)?;
            u32::from_str_radix(word, 16).ok().map(u32::to_ne_bytes)
        })
        .collect::<Option<_>>()?;
    let text = match words.as_slice() {
        [w] if address.len() == 8 => Ipv4Addr::from(*w).to_string(),
        [a, b, c, d] if address.len() == 32 => {
            let mut bytes = [0u8; 16];
            for (i, w) in [a, b, c, d].into_iter().enumerate() {
                bytes[i * 4..i * 4 + 4].copy_from_slice(w);
            }
            Ipv6Addr::from(bytes).to_string()
        }
        _ => return None,
    };
    Some((text, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 532 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000   106        0 7266 1 0000000000000000 100 0 0 10 0
   2: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000   106        0 7300 1 0000000000000000 100 0 0 10 0
";
    const TCP6: &str = "\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 900 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:0277 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 901 1 0000000000000000 100 0 0 10 0
";
    const UDP: &str = "\
   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  100: 3500007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   101        0 1234 2 0000000000000000 0
  101: 0A00020F:C000 08080808:0035 01 00000000:00000000 00:00000000 00000000     0        0 1235 2 0000000000000000 0
";

    #[test]
    fn proc_net_fixtures_list_listening_sockets_only() {
        let tcp = parse_socket_table(TCP, TransportProtocol::Tcp);
        assert_eq!(tcp.len(), 2);
        assert_eq!((tcp[0].address.as_str(), tcp[0].port), ("0.0.0.0", 2024));
        assert_eq!(
            (tcp[1].address.as_str(), tcp[1].port, tcp[1].inode),
            ("127.0.0.1", 8080, 7266)
        );
        let tcp6 = parse_socket_table(TCP6, TransportProtocol::Tcp);
        assert_eq!((tcp6[0].address.as_str(), tcp6[0].port), ("::", 22));
        assert_eq!((tcp6[1].address.as_str(), tcp6[1].port), ("::1", 631));
        let udp = parse_socket_table(UDP, TransportProtocol::Udp);
        assert_eq!(udp.len(), 1, "the connected socket is not listening");
        assert_eq!((udp[0].address.as_str(), udp[0].port), ("127.0.0.53", 53));
    }

    #[test]
    fn malformed_endpoints_are_skipped() {
        assert_eq!(parse_endpoint("zz:0016"), None);
        assert_eq!(parse_endpoint("0100007F"), None);
        assert_eq!(parse_endpoint("0100007F:1F90:1"), None);
        assert_eq!(parse_endpoint("01007F:1F90"), None);
    }

    #[test]
    fn a_listener_of_this_process_is_found_with_its_owner() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut gaps = Gaps::default();
        let section = collect(&mut gaps).unwrap();
        let found = section
            .listening
            .iter()
            .find(|p| p.port == port && p.local_address == "127.0.0.1")
            .expect("our listener");
        assert_eq!(found.pid, Some(std::process::id()));
    }
}
