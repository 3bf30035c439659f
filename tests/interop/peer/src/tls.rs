// SPDX-License-Identifier: GPL-3.0-only
//! The QUIC and TLS profile of spec/04-quic-profile.md §1-§2 on quinn +
//! rustls.

use std::sync::Arc;
use std::time::Duration;

pub const ALPN: &[u8] = b"portredirect/1";

pub struct Timers {
    pub idle: Duration,
    pub keepalive: Duration,
    /// Drain limit after SIGINT/SIGTERM (spec/04-quic-profile.md §6.2-§6.3).
    pub grace: Duration,
    /// 0: quinn's default, 1200 bytes throughout (quinn 0.9 has no path
    /// MTU discovery); otherwise this size from the first datagram on, so
    /// above 1200 only where the operator knows the path and the peer take
    /// it (spec/04-quic-profile.md §5).
    pub max_udp_payload: u16,
    /// UDP services: advertise max_datagram_frame_size (spec/10-udp.md §2).
    pub datagrams: bool,
}

/// Transport parameters (§2). `bidi` is how many bidirectional streams the
/// peer may open: 1 from the server (stream 0), the stream limit from the
/// client. Nobody may open unidirectional streams.
fn transport(t: &Timers, bidi: u32) -> Result<quinn::TransportConfig, String> {
    let mut tc = quinn::TransportConfig::default();
    tc.max_concurrent_bidi_streams(quinn::VarInt::from_u32(bidi));
    tc.max_concurrent_uni_streams(quinn::VarInt::from_u32(0));
    let idle = quinn::IdleTimeout::try_from(t.idle).map_err(|_| "--idle-timeout out of range".to_string())?;
    tc.max_idle_timeout(Some(idle));
    // min(--keepalive, our idle timeout / 2) from the start; the peer's idle
    // timeout is known only after the handshake (src/keepalive.rs).
    tc.keep_alive_interval(crate::keepalive::interval(t.keepalive, t.idle, 0));
    if t.max_udp_payload != 0 {
        tc.initial_max_udp_payload_size(t.max_udp_payload);
    }
    if t.datagrams {
        // max_datagram_frame_size, UDP services only (spec/10-udp.md §2)
        tc.datagram_receive_buffer_size(Some(4 << 20));
    } else {
        tc.datagram_receive_buffer_size(None); // no DATAGRAM frames
    }
    Ok(tc)
}

/// TLS 1.3 only, ALPN portredirect/1, no 0-RTT, no resumption, the pinned
/// certificate verifier (spec/03-auth.md §8).
pub fn client_config(t: &Timers, max_streams: u32, pin: Vec<u8>, name: String) -> Result<quinn::ClientConfig, String> {
    let mut tls = rustls::ClientConfig::builder()
        .with_safe_default_cipher_suites()
        .with_safe_default_kx_groups()
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_custom_certificate_verifier(crate::cert::verifier(pin, name))
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.enable_early_data = false;
    tls.enable_tickets = false;
    tls.session_storage = Arc::new(rustls::client::NoClientSessionStorage {});
    if std::env::var_os("SSLKEYLOGFILE").is_some() {
        tls.key_log = Arc::new(rustls::KeyLogFile::new());
    }
    let mut qc = quinn::ClientConfig::new(Arc::new(crate::keepalive::ClientCrypto(Arc::new(tls))));
    qc.transport_config(Arc::new(transport(t, max_streams)?));
    Ok(qc)
}

/// The server: one certificate, no client certificates, no tickets.
pub fn server_config(t: &Timers, cert: Vec<u8>, key: Vec<u8>) -> Result<quinn::ServerConfig, String> {
    let mut tls = rustls::ServerConfig::builder()
        .with_safe_default_cipher_suites()
        .with_safe_default_kx_groups()
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(vec![rustls::Certificate(cert)], rustls::PrivateKey(key))
        .map_err(|e| format!("cannot use the certificate and key: {}", e))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.max_early_data_size = 0;
    tls.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    if std::env::var_os("SSLKEYLOGFILE").is_some() {
        tls.key_log = Arc::new(rustls::KeyLogFile::new());
    }
    let mut sc = quinn::ServerConfig::with_crypto(Arc::new(crate::keepalive::ServerCrypto(Arc::new(tls))));
    sc.transport_config(Arc::new(transport(t, 1)?));
    sc.migration(true);
    Ok(sc)
}
