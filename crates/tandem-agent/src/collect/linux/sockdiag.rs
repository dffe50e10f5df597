//! Listening sockets through the kernel's sock_diag netlink interface (what `ss` uses).
//!
//! Reading /proc/net/tcp makes the kernel walk every bucket of the connection hash table,
//! which costs milliseconds on a large machine even when it is idle; sock_diag with a
//! state filter walks only the listening sockets. Messages are built and parsed as plain
//! bytes, in safe code.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::time::Duration;

use nix::sys::socket::{
    recv, sendto, setsockopt, socket, sockopt, AddressFamily, MsgFlags, NetlinkAddr, SockFlag,
    SockProtocol, SockType,
};
use nix::sys::time::TimeVal;
use tandem_agent_protocol::inventory::TransportProtocol;

use super::ports::Socket;

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const TCP_LISTEN: u8 = 10;
const UDP_UNCONNECTED: u8 = 7;
const HEADER: usize = 16;
const DIAG_MSG: usize = 72;

/// The listening sockets of one protocol and address family.
pub fn listening(protocol: TransportProtocol, ipv6: bool) -> Result<Vec<Socket>, String> {
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkSockDiag,
    )
    .map_err(|e| format!("sock_diag socket: {e}"))?;
    let timeout = TimeVal::new(ANSWER_TIMEOUT.as_secs() as _, 0);
    setsockopt(&fd, sockopt::ReceiveTimeout, &timeout).map_err(|e| format!("sock_diag: {e}"))?;
    let request = request(protocol, ipv6);
    sendto(
        fd.as_raw_fd(),
        &request,
        &NetlinkAddr::new(0, 0),
        MsgFlags::empty(),
    )
    .map_err(|e| format!("sock_diag request: {e}"))?;
    let mut sockets = Vec::new();
    let mut buffer = vec![0u8; 32 * 1024];
    loop {
        let n = recv(fd.as_raw_fd(), &mut buffer, MsgFlags::empty())
            .map_err(|e| format!("sock_diag answer: {e}"))?;
        if n == 0 {
            return Err("sock_diag closed without an answer".into());
        }
        match parse(&buffer[..n], protocol, &mut sockets)? {
            Progress::More => continue,
            Progress::Done => return Ok(sockets),
        }
    }
}

/// Time the kernel has to answer; the socket times out after it.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

fn request(protocol: TransportProtocol, ipv6: bool) -> Vec<u8> {
    let (proto, states) = match protocol {
        TransportProtocol::Tcp => (IPPROTO_TCP, 1u32 << TCP_LISTEN),
        TransportProtocol::Udp => (IPPROTO_UDP, 1u32 << UDP_UNCONNECTED),
    };
    let length = (HEADER + 56) as u32;
    let mut message = Vec::with_capacity(length as usize);
    message.extend_from_slice(&length.to_ne_bytes());
    message.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    message.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    message.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    message.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
                                                    // inet_diag_req_v2: family, protocol, extensions, padding, states, then a zero socket id.
    message.extend_from_slice(&[if ipv6 { AF_INET6 } else { AF_INET }, proto, 0, 0]);
    message.extend_from_slice(&states.to_ne_bytes());
    message.extend_from_slice(&[0u8; 48]);
    message
}

enum Progress {
    More,
    Done,
}

/// Parses one datagram of netlink messages into sockets.
fn parse(
    mut data: &[u8],
    protocol: TransportProtocol,
    out: &mut Vec<Socket>,
) -> Result<Progress, String> {
    while data.len() >= HEADER {
        let length = u32::from_ne_bytes(data[0..4].try_into().unwrap_or_default()) as usize;
        let kind = u16::from_ne_bytes(data[4..6].try_into().unwrap_or_default());
        if length < HEADER || length > data.len() {
            return Err("sock_diag answered a malformed message".into());
        }
        match kind {
            NLMSG_DONE => return Ok(Progress::Done),
            NLMSG_ERROR => {
                let code = data
                    .get(HEADER..HEADER + 4)
                    .and_then(|b| b.try_into().ok())
                    .map(i32::from_ne_bytes)
                    .unwrap_or_default();
                return Err(format!("sock_diag refused the request (error {})", -code));
            }
            SOCK_DIAG_BY_FAMILY => {
                if let Some(socket) = diag_message(&data[HEADER..length], protocol) {
                    out.push(socket);
                }
            }
            _ => {}
        }
        let aligned = (length + 3) & !3;
        data = data.get(aligned..).unwrap_or_default();
    }
    Ok(Progress::More)
}

/// An `inet_diag_msg`: family, state, timer, retransmits, socket id (ports and addresses
/// in network order), expires, queues, uid, inode.
fn diag_message(body: &[u8], protocol: TransportProtocol) -> Option<Socket> {
    if body.len() < DIAG_MSG {
        return None;
    }
    let family = body[0];
    let port = u16::from_be_bytes([body[4], body[5]]);
    let source = &body[8..24];
    let destination = &body[24..40];
    if protocol == TransportProtocol::Udp && destination.iter().any(|&b| b != 0) {
        return None;
    }
    let address = match family {
        AF_INET => Ipv4Addr::new(source[0], source[1], source[2], source[3]).to_string(),
        AF_INET6 => Ipv6Addr::from(<[u8; 16]>::try_from(source).ok()?).to_string(),
        _ => return None,
    };
    let inode = u32::from_ne_bytes(body[68..72].try_into().ok()?);
    Some(Socket {
        protocol,
        address,
        port,
        inode: u64::from(inode),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_listener_is_reported_with_its_inode() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let sockets = listening(TransportProtocol::Tcp, false).unwrap();
        let ours = sockets
            .iter()
            .find(|s| s.port == port)
            .expect("our listener");
        assert_eq!(ours.address, "127.0.0.1");
        assert!(ours.inode > 0);
    }

    #[test]
    fn an_unconnected_udp_socket_is_reported() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        match listening(TransportProtocol::Udp, false) {
            Ok(sockets) => assert!(sockets.iter().any(|s| s.port == port)),
            // udp_diag is a module some kernels lack; the caller falls back to /proc.
            Err(reason) => eprintln!("udp sock_diag unavailable: {reason}"),
        }
    }

    #[test]
    fn malformed_answers_are_errors_not_panics() {
        let mut out = Vec::new();
        let mut bogus = vec![0u8; 20];
        bogus[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(parse(&bogus, TransportProtocol::Tcp, &mut out).is_err());
        assert!(matches!(
            parse(&[1, 2, 3], TransportProtocol::Tcp, &mut out),
            Ok(Progress::More)
        ));
        let mut short = vec![0u8; HEADER + 10];
        short[0..4].copy_from_slice(&((HEADER + 10) as u32).to_ne_bytes());
        short[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        assert!(matches!(
            parse(&short, TransportProtocol::Tcp, &mut out),
            Ok(Progress::More)
        ));
        assert!(out.is_empty());
    }
}
