// SPDX-License-Identifier: GPL-3.0-only
//! The keepalive interval from the effective idle timeout
//! (spec/04-quic-profile.md §2.2): min(--keepalive, half of the smaller of
//! both sides' max_idle_timeout).
//!
//! quinn 0.9 fixes `keep_alive_interval` when the connection is created and
//! neither tells the application the peer's max_idle_timeout nor lets it
//! send a PING. So:
//! - quinn's own keepalive is set to min(--keepalive, our idle / 2), all
//!   that is known before the handshake;
//! - the crypto session is wrapped to read the peer's transport parameters
//!   (quinn-proto's `Session::transport_parameters`) and hand the peer's
//!   max_idle_timeout out through `Connection::handshake_data()`;
//! - when half the effective idle timeout is shorter than quinn's interval,
//!   a task makes quinn send a PING every that often: `Endpoint::rebind` to
//!   a duplicate of the endpoint's own socket (same address, nothing
//!   migrates) queues a PING on every connection of the endpoint.

use crate::log_info;
use quinn_proto::crypto::{
    self, ExportKeyingMaterialError, HeaderKey, KeyPair, Keys, PacketKey, UnsupportedVersion,
};
use quinn_proto::transport_parameters::TransportParameters;
use quinn_proto::{ConnectError, ConnectionId, Side, TransportError};
use std::any::Any;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

/// What the wrapped session tells the application, through
/// `Connection::handshake_data()`.
pub struct PeerInfo {
    /// The peer's max_idle_timeout in ms; 0 = none (or not known yet).
    pub idle_ms: u64,
}

/// Lenient QUIC varint: (value, length).
fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let first = *b.first()?;
    let len = 1usize << (first >> 6);
    if b.len() < len {
        return None;
    }
    let mut v = u64::from(first & 0x3f);
    for x in &b[1..len] {
        v = (v << 8) | u64::from(*x);
    }
    Some((v, len))
}

/// max_idle_timeout (0x01) from encoded transport parameters; absent = 0.
pub fn idle_from_params(mut b: &[u8]) -> u64 {
    while !b.is_empty() {
        let (id, n) = match varint(b) {
            Some(x) => x,
            None => return 0,
        };
        b = &b[n..];
        let (len, n) = match varint(b) {
            Some(x) => x,
            None => return 0,
        };
        b = &b[n..];
        let len = len as usize;
        if b.len() < len {
            return 0;
        }
        if id == 0x01 {
            return varint(&b[..len]).map(|(v, _)| v).unwrap_or(0);
        }
        b = &b[len..];
    }
    0
}

/// The keepalive interval in use: min(configured, effective idle / 2), the
/// effective idle timeout being the smaller non-zero one of ours and the
/// peer's. None: no keepalive (configured 0).
pub fn interval(configured: Duration, local_idle: Duration, peer_idle_ms: u64) -> Option<Duration> {
    if configured.is_zero() {
        return None;
    }
    let mut idle = local_idle;
    if peer_idle_ms != 0 {
        let p = Duration::from_millis(peer_idle_ms);
        if idle.is_zero() || p < idle {
            idle = p;
        }
    }
    if idle.is_zero() {
        return Some(configured);
    }
    Some(configured.min(idle / 2))
}

struct Wrapped(Box<dyn crypto::Session>);

impl crypto::Session for Wrapped {
    fn initial_keys(&self, dst_cid: &ConnectionId, side: Side) -> Keys {
        self.0.initial_keys(dst_cid, side)
    }
    fn handshake_data(&self) -> Option<Box<dyn Any>> {
        // Available once the peer's first flight (with its transport
        // parameters) has been read.
        self.0.handshake_data()?;
        let mut enc = Vec::new();
        if let Ok(Some(p)) = self.0.transport_parameters() {
            p.write(&mut enc);
        }
        Some(Box::new(PeerInfo { idle_ms: idle_from_params(&enc) }))
    }
    fn peer_identity(&self) -> Option<Box<dyn Any>> {
        self.0.peer_identity()
    }
    fn early_crypto(&self) -> Option<(Box<dyn HeaderKey>, Box<dyn PacketKey>)> {
        self.0.early_crypto()
    }
    fn early_data_accepted(&self) -> Option<bool> {
        self.0.early_data_accepted()
    }
    fn is_handshaking(&self) -> bool {
        self.0.is_handshaking()
    }
    fn read_handshake(&mut self, buf: &[u8]) -> Result<bool, TransportError> {
        self.0.read_handshake(buf)
    }
    fn transport_parameters(&self) -> Result<Option<TransportParameters>, TransportError> {
        self.0.transport_parameters()
    }
    fn write_handshake(&mut self, buf: &mut Vec<u8>) -> Option<Keys> {
        self.0.write_handshake(buf)
    }
    fn next_1rtt_keys(&mut self) -> Option<KeyPair<Box<dyn PacketKey>>> {
        self.0.next_1rtt_keys()
    }
    fn is_valid_retry(&self, orig_dst_cid: &ConnectionId, header: &[u8], payload: &[u8]) -> bool {
        self.0.is_valid_retry(orig_dst_cid, header, payload)
    }
    fn export_keying_material(&self, output: &mut [u8], label: &[u8], context: &[u8]) -> Result<(), ExportKeyingMaterialError> {
        self.0.export_keying_material(output, label, context)
    }
}

/// rustls client configuration whose sessions report the peer's idle timeout.
pub struct ClientCrypto(pub Arc<rustls::ClientConfig>);

impl crypto::ClientConfig for ClientCrypto {
    fn start_session(
        self: Arc<Self>,
        version: u32,
        server_name: &str,
        params: &TransportParameters,
    ) -> Result<Box<dyn crypto::Session>, ConnectError> {
        let inner = crypto::ClientConfig::start_session(self.0.clone(), version, server_name, params)?;
        Ok(Box::new(Wrapped(inner)))
    }
}

/// rustls server configuration whose sessions report the peer's idle timeout.
pub struct ServerCrypto(pub Arc<rustls::ServerConfig>);

impl crypto::ServerConfig for ServerCrypto {
    fn initial_keys(&self, version: u32, dst_cid: &ConnectionId, side: Side) -> Result<Keys, UnsupportedVersion> {
        crypto::ServerConfig::initial_keys(&*self.0, version, dst_cid, side)
    }
    fn retry_tag(&self, version: u32, orig_dst_cid: &ConnectionId, packet: &[u8]) -> [u8; 16] {
        crypto::ServerConfig::retry_tag(&*self.0, version, orig_dst_cid, packet)
    }
    fn start_session(self: Arc<Self>, version: u32, params: &TransportParameters) -> Box<dyn crypto::Session> {
        Box::new(Wrapped(crypto::ServerConfig::start_session(self.0.clone(), version, params)))
    }
}

/// The peer's max_idle_timeout in ms (0 = none), once the handshake has it.
pub fn peer_idle_ms(conn: &quinn::Connection) -> u64 {
    conn.handshake_data().and_then(|d| d.downcast::<PeerInfo>().ok()).map(|p| p.idle_ms).unwrap_or(0)
}

/// An endpoint together with a duplicate of its socket, to make quinn send
/// a PING on its connections.
#[derive(Clone)]
pub struct Endpoint {
    pub ep: quinn::Endpoint,
    spare: Arc<UdpSocket>,
}

impl Endpoint {
    pub fn new(bind: SocketAddr, server: Option<quinn::ServerConfig>) -> std::io::Result<Self> {
        let sock = UdpSocket::bind(bind)?;
        let spare = sock.try_clone()?;
        let ep = quinn::Endpoint::new(quinn::EndpointConfig::default(), server, sock, quinn::TokioRuntime)?;
        Ok(Endpoint { ep, spare: Arc::new(spare) })
    }

    /// An endpoint on a socket with TCP paths (spec/11-tcp-path.md); the
    /// spare socket only carries the address family into `rebind`, which
    /// `PathRuntime` turns back into `sock`.
    pub fn on_paths(sock: crate::tcppath::PathSocket, server: Option<quinn::ServerConfig>) -> std::io::Result<Self> {
        use quinn::AsyncUdpSocket;
        let any: SocketAddr = if sock.local_addr()?.is_ipv6() { "[::1]:0".parse().unwrap() } else { "127.0.0.1:0".parse().unwrap() };
        let spare = UdpSocket::bind(any)?;
        let rt = crate::tcppath::PathRuntime(sock.clone());
        let ep = quinn::Endpoint::new_with_abstract_socket(quinn::EndpointConfig::default(), server, sock, rt)?;
        Ok(Endpoint { ep, spare: Arc::new(spare) })
    }

    /// Queues a PING on every connection of the endpoint: quinn does that
    /// on a rebind, here to the very same socket.
    pub fn ping(&self) {
        if let Ok(s) = self.spare.try_clone() {
            let _ = self.ep.rebind(s);
        }
    }
}

/// After authentication: if half the effective idle timeout is shorter than
/// the interval quinn was given, PING that often until the connection ends.
pub fn start(ep: &Endpoint, conn: &quinn::Connection, t: &crate::tls::Timers, tag: &str) {
    let peer = peer_idle_ms(conn);
    let quinn_ka = interval(t.keepalive, t.idle, 0);
    let want = interval(t.keepalive, t.idle, peer);
    let w = match want {
        Some(w) => w,
        None => return,
    };
    if quinn_ka.map_or(false, |q| q <= w) {
        return;
    }
    log_info!(
        "{}keepalive every {} ms: half the effective idle timeout (peer {} ms, ours {} ms)",
        tag,
        w.as_millis(),
        peer,
        t.idle.as_millis()
    );
    let ep = ep.clone();
    let conn = conn.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(w) => ep.ping(),
                _ = conn.closed() => break,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_is_min_of_configured_and_half_effective_idle() {
        let s = Duration::from_secs;
        assert_eq!(interval(s(10), s(30), 0), Some(s(10)));
        assert_eq!(interval(s(10), s(30), 3000), Some(Duration::from_millis(1500)));
        assert_eq!(interval(s(10), s(4), 30000), Some(s(2)));
        assert_eq!(interval(s(1), s(30), 3000), Some(s(1)));
        assert_eq!(interval(s(10), s(0), 3000), Some(Duration::from_millis(1500)));
        assert_eq!(interval(s(10), s(0), 0), Some(s(10)));
        assert_eq!(interval(s(0), s(30), 3000), None);
    }

    #[test]
    fn idle_timeout_from_encoded_parameters() {
        // initial_max_data (0x04) = 1000000, max_idle_timeout (0x01) = 3000.
        let b = [0x04, 0x04, 0x80, 0x0f, 0x42, 0x40, 0x01, 0x02, 0x4b, 0xb8];
        assert_eq!(idle_from_params(&b), 3000);
        assert_eq!(idle_from_params(&b[..6]), 0);
        assert_eq!(idle_from_params(&[0x01, 0x04, 0x4b]), 0); // truncated
        assert_eq!(idle_from_params(&[]), 0);
    }
}
