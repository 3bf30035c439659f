// SPDX-License-Identifier: GPL-3.0-only
//! The client role: dial out, authenticate (spec/03-auth.md §4,
//! spec/07-state-machines.md §2), relay data streams to the destination
//! (spec/02-framing.md §4, §6), reconnect with backoff (07 §4).

use crate::codes::{self, *};
use crate::ctl::{CtlError, FrameReader};
use crate::relay::{self, Abort};
use crate::tls::Timers;
use crate::wire::{self, Frame};
use crate::{log_debug, log_error, log_info, log_warn};
use quinn::{RecvStream, SendStream};
use rand::Rng;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

pub struct Opts {
    /// Service name -> destination host and port; `default` is the
    /// destination of the first text (spec/02-framing.md §3.7).
    pub services: Vec<(String, (String, u16))>,
    /// UDP services: name -> UDP destination (spec/10-udp.md).
    pub udp_services: Vec<(String, (String, u16))>,
    /// Offer named services: HELLO Flags bit 0 (spec/02-framing.md §3.1).
    pub named_services: bool,
    pub remote: (String, u16),
    /// Every packet over a TCP path (spec/11-tcp-path.md, --quic-transport tcp).
    pub tcp: bool,
    pub name: String,
    pub psk: Vec<u8>,
    pub pin: Vec<u8>,
    pub timers: Timers,
    pub max_streams: u32,
    /// Give up (exit 3) after this many connections that never reached
    /// AUTHENTICATED; 0 = never (the spec'd behaviour).
    pub max_attempts: u32,
    pub connect_timeout: Duration,
    pub auth_deadline: Duration,
    /// Our client name: HELLO Flags bit 1, the Name in AUTH_RESPONSE
    /// (spec/02-framing.md §3.1, §3.3); None: the client `default`.
    pub client_name: Option<String>,
}

enum End {
    /// The connection was authenticated and served for this long.
    Served(Duration),
    /// It never reached AUTHENTICATED.
    Failed,
    /// Local shutdown.
    Stopped,
}

static STREAMS: AtomicU64 = AtomicU64::new(0);

pub(crate) async fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    let mut it = tokio::net::lookup_host((h, port)).await.map_err(|e| format!("cannot resolve {}: {}", host, e))?;
    it.next().ok_or_else(|| format!("cannot resolve {}: no address", host))
}

/// Runs the client until a signal (exit 0) or --max-attempts (exit 3).
pub async fn run(opts: Opts, mut stop: watch::Receiver<bool>) -> i32 {
    let opts = Arc::new(opts);
    let qcfg = match crate::tls::client_config(&opts.timers, opts.max_streams, opts.pin.clone(), opts.name.clone()) {
        Ok(c) => c,
        Err(e) => {
            log_error!("{}", e);
            return 2;
        }
    };
    let mut endpoints: Vec<(bool, crate::keepalive::Endpoint)> = Vec::new();
    let mut n: u32 = 0;
    let mut failures: u32 = 0;
    loop {
        let end = match resolve(&opts.remote.0, opts.remote.1).await {
            Err(e) => {
                log_warn!("{}", e);
                End::Failed
            }
            Ok(addr) if opts.tcp => match crate::tcppath::PathSocket::dial(addr).await {
                // A fresh TCP path, and endpoint, per connection
                // (spec/11-tcp-path.md §3.2).
                Err(e) => {
                    log_warn!("{}", e);
                    End::Failed
                }
                Ok(sock) => match crate::keepalive::Endpoint::on_paths(sock.clone(), None) {
                    Err(e) => {
                        log_error!("cannot start QUIC on a TCP path: {}", e);
                        return 1;
                    }
                    Ok(mut ep) => {
                        ep.ep.set_default_client_config(qcfg.clone());
                        let end = one_connection(&ep, addr, &opts, &mut stop).await;
                        let _ = tokio::time::timeout(Duration::from_secs(1), ep.ep.wait_idle()).await;
                        sock.close();
                        end
                    }
                },
            },
            Ok(addr) => {
                let v6 = addr.is_ipv6();
                if !endpoints.iter().any(|(f, _)| *f == v6) {
                    let bind: SocketAddr = if v6 { "[::]:0".parse().unwrap() } else { "0.0.0.0:0".parse().unwrap() };
                    match crate::keepalive::Endpoint::new(bind, None) {
                        Ok(mut ep) => {
                            ep.ep.set_default_client_config(qcfg.clone());
                            endpoints.push((v6, ep));
                        }
                        Err(e) => {
                            log_error!("cannot open a UDP socket: {}", e);
                            return 1;
                        }
                    }
                }
                let ep = endpoints.iter().find(|(f, _)| *f == v6).unwrap().1.clone();
                one_connection(&ep, addr, &opts, &mut stop).await
            }
        };
        match end {
            End::Stopped => break,
            End::Served(d) => {
                if d >= Duration::from_secs(60) {
                    n = 0;
                }
            }
            End::Failed => {
                failures += 1;
                if opts.max_attempts != 0 && failures >= opts.max_attempts {
                    log_error!("giving up after {} failed attempts (--max-attempts)", failures);
                    for (_, ep) in &endpoints {
                        let _ = tokio::time::timeout(Duration::from_secs(1), ep.ep.wait_idle()).await;
                    }
                    return 3;
                }
            }
        }
        // Backoff (spec/07-state-machines.md §4): uniform in [d/2, d].
        let d = (0.5f64 * 2f64.powi(n.min(16) as i32)).min(30.0);
        let wait = rand::thread_rng().gen_range(d / 2.0..=d);
        n += 1;
        log_info!("reconnecting in {:.2} s", wait);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs_f64(wait)) => {}
            _ = stop.changed() => break,
        }
    }
    for (_, ep) in &endpoints {
        let _ = tokio::time::timeout(Duration::from_secs(1), ep.ep.wait_idle()).await;
    }
    log_info!("client stopped");
    0
}

fn close(conn: &quinn::Connection, code: u64, why: &str) {
    conn.close(codes::varint(code), why.as_bytes());
}

async fn one_connection(
    kep: &crate::keepalive::Endpoint,
    addr: SocketAddr,
    opts: &Arc<Opts>,
    stop: &mut watch::Receiver<bool>,
) -> End {
    // The TLS server name is N without the brackets of an IPv6 literal
    // (spec/03-auth.md §8.1); rustls sends no SNI for an IP (§8.3).
    let tls_name = opts.name.strip_prefix('[').and_then(|s| s.strip_suffix(']')).unwrap_or(&opts.name);
    let connecting = match kep.ep.connect(addr, tls_name) {
        Ok(c) => c,
        Err(e) => {
            log_error!("cannot connect to {}: {}", addr, e);
            return End::Failed;
        }
    };
    let conn = tokio::select! {
        r = connecting => match r {
            Ok(c) => c,
            Err(e) => {
                let d = codes::describe(&e);
                if let quinn::ConnectionError::TransportError(t) = &e {
                    if codes::is_cert_alert(u64::from(t.code)) {
                        log_error!("handshake with {} aborted: we rejected the server certificate, {}", addr, d);
                        return End::Failed;
                    }
                }
                log_warn!("handshake with {} failed: {}", addr, d);
                return End::Failed;
            }
        },
        _ = stop.changed() => return End::Stopped,
    };
    // The handshake is complete: compute E (spec/03-auth.md §2).
    let mut e = [0u8; 32];
    if let Err(err) = conn.export_keying_material(&mut e, crate::auth::EXPORTER_LABEL, b"") {
        log_error!("TLS exporter failed: {:?}", err);
        close(&conn, INTERNAL_ERROR, "exporter");
        return End::Failed;
    }
    let (mut ctl_send, ctl_recv) = match conn.open_bi().await {
        Ok(s) => s,
        Err(err) => {
            log_warn!("cannot open the control stream: {}", codes::describe(&err));
            return End::Failed;
        }
    };
    if quinn::VarInt::from(ctl_send.id()).into_inner() != 0 {
        log_error!("control stream is not stream 0");
        close(&conn, INTERNAL_ERROR, "");
        return End::Failed;
    }
    let mut hello_flags = (if opts.named_services { wire::FEATURE_SERVICES } else { 0 })
        | (if opts.client_name.is_some() { wire::FEATURE_CLIENT_NAME } else { 0 });
    if !opts.udp_services.is_empty() {
        hello_flags |= wire::FEATURE_DATAGRAMS; // spec/10-udp.md §2
    }
    if ctl_send.write_all(&Frame::Hello { version: 1, flags: hello_flags }.encode()).await.is_err() {
        log_warn!("connection lost while sending HELLO");
        return End::Failed;
    }
    // Data streams are accepted at once but not acted upon until
    // AUTH_RESULT(0): held, unread (spec/02-framing.md §1.3).
    let (tx, mut held) = mpsc::unbounded_channel::<(SendStream, RecvStream)>();
    let acc = conn.clone();
    tokio::spawn(async move {
        while let Ok(s) = acc.accept_bi().await {
            if tx.send(s).is_err() {
                break;
            }
        }
    });
    let mut reader = FrameReader::new(ctl_recv);
    // Until AUTH_RESULT, frames decode with the Flags we offered (§3.4).
    reader.features = hello_flags;
    let negotiated: u64;
    let deadline = tokio::time::sleep(opts.auth_deadline);
    tokio::pin!(deadline);
    let mut waiting_result = false;
    // Authentication (spec/07-state-machines.md §2).
    loop {
        let f = tokio::select! {
            f = reader.next() => f,
            _ = &mut deadline => {
                log_warn!("authentication did not complete within {:?}: closing with {}", opts.auth_deadline, codes::app(AUTH_TIMEOUT));
                close(&conn, AUTH_TIMEOUT, "auth timeout");
                return End::Failed;
            }
            s = ctl_send.stopped() => {
                if s.is_ok() {
                    log_warn!("STOP_SENDING on the control stream: closing with {}", codes::app(PROTOCOL_ERROR));
                    close(&conn, PROTOCOL_ERROR, "");
                }
                return End::Failed;
            }
            _ = stop.changed() => {
                close(&conn, SHUTTING_DOWN, "shutting down");
                return End::Stopped;
            }
        };
        let f = match f {
            Ok(f) => f,
            Err(CtlError::ConnLost(err)) => {
                report_auth_close(&err, addr);
                return End::Failed;
            }
            Err(err) => {
                log_warn!("{}: closing with {}", err.describe(), codes::app(PROTOCOL_ERROR));
                close(&conn, PROTOCOL_ERROR, "");
                return End::Failed;
            }
        };
        match (waiting_result, f) {
            (false, Frame::AuthChallenge { version, challenge }) => {
                if version != 1 {
                    log_error!("server selected protocol version {}: closing with {}", version, codes::app(VERSION_MISMATCH));
                    close(&conn, VERSION_MISMATCH, "");
                    return End::Failed;
                }
                let name = opts.client_name.as_ref().map(|n| n.as_bytes().to_vec());
                let mac = crate::auth::mac_named(&opts.psk, &e, &challenge, name.as_deref());
                if ctl_send.write_all(&Frame::AuthResponse { mac, name }.encode()).await.is_err() {
                    log_warn!("connection lost while sending AUTH_RESPONSE");
                    return End::Failed;
                }
                waiting_result = true;
            }
            (true, Frame::AuthResult { status: 0, flags }) => {
                negotiated = flags.unwrap_or(0);
                break;
            }
            (true, Frame::AuthResult { status, .. }) => {
                log_error!(
                    "authentication failed: the server sent AUTH_RESULT {}; check that both sides use the same PSK",
                    codes::app(status)
                );
                // The server closes with the same code; close ourselves only
                // if its CONNECTION_CLOSE does not arrive (spec/02-framing.md
                // §3.4).
                match tokio::time::timeout(Duration::from_secs(1), conn.closed()).await {
                    Ok(err) => log_info!("connection closed after AUTH_RESULT: {}", codes::describe(&err)),
                    Err(_) => close(&conn, status, ""),
                }
                return End::Failed;
            }
            (_, f) => {
                log_warn!("unexpected {} during authentication: closing with {}", f.name(), codes::app(PROTOCOL_ERROR));
                close(&conn, PROTOCOL_ERROR, "");
                return End::Failed;
            }
        }
    }
    e.iter_mut().for_each(|b| *b = 0);
    let t0 = Instant::now();
    log_info!("tunnel up: authenticated to {}", addr);
    reader.features = negotiated;
    // The services this connection serves (spec/02-framing.md §3.7, §4.4):
    // all of ours once SERVICES is negotiated, else only `default`.
    let served: Arc<Vec<(String, (String, u16))>> = Arc::new(if negotiated & wire::FEATURE_SERVICES != 0 {
        opts.services.clone()
    } else {
        opts.services.iter().filter(|s| s.0 == "default").cloned().collect()
    });
    if negotiated & wire::FEATURE_DATAGRAMS != 0 {
        log_info!("datagrams negotiated: serving UDP services");
        tokio::spawn(crate::udp::client_serve(conn.clone(), Arc::new(opts.udp_services.clone())));
    }
    if negotiated & wire::FEATURE_SERVICES != 0 {
        let mut names: Vec<String> = served.iter().map(|s| s.0.clone()).collect();
        if negotiated & wire::FEATURE_DATAGRAMS != 0 {
            names.extend(opts.udp_services.iter().map(|s| s.0.clone()));
        }
        log_info!("named services negotiated: declaring SERVICES {}", names.join(" "));
        if ctl_send.write_all(&Frame::Services { names }.encode()).await.is_err() {
            log_warn!("connection lost while sending SERVICES");
            return End::Failed;
        }
    } else if opts.named_services {
        log_info!("the server did not accept named services: serving only default");
    }
    crate::keepalive::start(kep, &conn, &opts.timers, "");
    let goaway_sent = Arc::new(AtomicBool::new(false));
    let open = Arc::new(AtomicU64::new(0));
    let mut stopping = false;
    let mut accepting = true;
    let mut watch_stop_sending = true;
    // AUTHENTICATED: serve streams (held ones first, in ID order).
    loop {
        tokio::select! {
            s = held.recv(), if accepting => match s {
                Some((send, recv)) => {
                    let opts = opts.clone();
                    let served = served.clone();
                    let goaway = goaway_sent.clone();
                    let open = open.clone();
                    open.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(async move {
                        serve_stream(send, recv, &opts, &served, goaway.load(Ordering::SeqCst)).await;
                        open.fetch_sub(1, Ordering::SeqCst);
                    });
                }
                None => accepting = false,
            },
            f = reader.next() => match f {
                Ok(Frame::Goaway { code }) => log_info!("server sent GOAWAY {}", codes::app(code)),
                // spec/02-framing.md §3.8: logged, the connection stays up.
                Ok(Frame::ServiceRefused { code, name }) => {
                    log_warn!("the server refused service {}: {}", name, codes::app(code))
                }
                Ok(f) => {
                    log_warn!("unexpected {} after authentication: closing with {}", f.name(), codes::app(PROTOCOL_ERROR));
                    close(&conn, PROTOCOL_ERROR, "");
                }
                Err(CtlError::ConnLost(err)) => {
                    log_info!("tunnel to {} down: {}", addr, codes::describe(&err));
                    return if stopping { End::Stopped } else { End::Served(t0.elapsed()) };
                }
                Err(err) => {
                    log_warn!("{}: closing with {}", err.describe(), codes::app(PROTOCOL_ERROR));
                    close(&conn, PROTOCOL_ERROR, "");
                }
            },
            s = ctl_send.stopped(), if watch_stop_sending => {
                watch_stop_sending = false;
                if s.is_ok() {
                    log_warn!("STOP_SENDING on the control stream: closing with {}", codes::app(PROTOCOL_ERROR));
                    close(&conn, PROTOCOL_ERROR, "");
                }
            }
            _ = stop.changed(), if !stopping => {
                // spec/04-quic-profile.md §6.3.
                stopping = true;
                goaway_sent.store(true, Ordering::SeqCst);
                // Bounded: GOAWAY shares connection-level flow control with
                // the data streams and may not be sendable at once.
                let goaway = Frame::Goaway { code: SHUTTING_DOWN }.encode();
                let _ = tokio::time::timeout(Duration::from_millis(500), ctl_send.write_all(&goaway)).await;
                let c = conn.clone();
                let open = open.clone();
                let grace = opts.timers.grace;
                tokio::spawn(async move {
                    // A stream counts as open until both directions have
                    // ended in QUIC: the server's FIN read, our FIN
                    // acknowledged (finish() resolved), or the stream reset.
                    let t = Instant::now();
                    let mut busy = false;
                    while open.load(Ordering::SeqCst) > 0 && t.elapsed() < grace {
                        busy = true;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    if busy && t.elapsed() < grace {
                        // Linger before the close, within the grace period
                        // (spec/04-quic-profile.md §6.3).
                        let l = relay::linger(c.rtt()).min(grace - t.elapsed());
                        log_info!("every data stream has ended: closing in {} ms", l.as_millis());
                        tokio::time::sleep(l).await;
                    }
                    c.close(codes::varint(SHUTTING_DOWN), b"shutting down");
                });
            }
        }
    }
}

fn report_auth_close(err: &quinn::ConnectionError, addr: SocketAddr) {
    match codes::app_close_code(err) {
        Some(AUTH_FAILED) => log_error!(
            "authentication failed: the server at {} closed with {}: it rejected our PSK; check that both sides use the same key",
            addr,
            codes::app(AUTH_FAILED)
        ),
        Some(VERSION_MISMATCH) => log_error!("the server at {} closed with {}", addr, codes::app(VERSION_MISMATCH)),
        _ => log_warn!("authentication with {} ended: {}", addr, codes::describe(err)),
    }
}

/// One data stream on the client (spec/07-state-machines.md §3.1).
async fn serve_stream(
    mut send: SendStream,
    mut recv: RecvStream,
    opts: &Opts,
    served: &[(String, (String, u16))],
    refuse: bool,
) {
    let id = quinn::VarInt::from(send.id()).into_inner();
    let sid = STREAMS.fetch_add(1, Ordering::SeqCst) + 1;
    if refuse {
        relay::abort_stream(&mut send, &mut recv, STREAM_REFUSED);
        log_info!("[s{}] stream {} refused after GOAWAY: {}", sid, id, codes::app(STREAM_REFUSED));
        return;
    }
    // HEADER: accumulate at most 512 bytes (§4, §5).
    let mut buf: Vec<u8> = Vec::with_capacity(512);
    let mut tmp = [0u8; 512];
    let (hdr, used) = loop {
        match wire::decode_header(&buf) {
            Ok(x) => break x,
            Err(wire::Error::NeedMore) => {}
            Err(err) => {
                log_warn!("[s{}] stream {}: invalid Stream Header ({}): aborting with {}", sid, id, err.name(), codes::app(PROTOCOL_ERROR));
                relay::abort_stream(&mut send, &mut recv, PROTOCOL_ERROR);
                return;
            }
        }
        let room = wire::MAX_HEADER as usize - buf.len();
        match recv.read(&mut tmp[..room]).await {
            Ok(Some(n)) => buf.extend_from_slice(&tmp[..n]),
            Ok(None) => {
                log_warn!("[s{}] stream {}: FIN before the Stream Header was complete: aborting with {}", sid, id, codes::app(PROTOCOL_ERROR));
                relay::abort_stream(&mut send, &mut recv, PROTOCOL_ERROR);
                return;
            }
            Err(quinn::ReadError::Reset(c)) => {
                let c = c.into_inner();
                log_info!("[s{}] stream {} aborted by peer before its header: {}", sid, id, codes::app(c));
                relay::abort_stream(&mut send, &mut recv, c);
                return;
            }
            Err(_) => return,
        }
    };
    let leftover = buf[used..].to_vec();
    log_debug!("[s{}] stream {}: user {} -> {:?} service {:?} offset {:?}", sid, id, hdr.source, hdr.destination, hdr.service, hdr.port_offset);
    // CONNECTING: the destination comes from our configuration only; the
    // header's SERVICE and PORT_OFFSET choose among our services
    // (spec/02-framing.md §4.4). A client of the first text (no
    // --named-services) skips both fields, as it did.
    let svc = hdr.service.as_deref().unwrap_or("default");
    let offset = hdr.port_offset.unwrap_or(0);
    let dest = if opts.named_services {
        served.iter().find(|s| s.0 == svc).filter(|_| offset == 0)
    } else {
        served.iter().find(|s| s.0 == "default")
    };
    let (dh, dp) = match dest {
        Some((_, (h, p))) => (h, *p),
        None => {
            log_warn!(
                "[s{}] stream {}: service {} offset {} is not ours: aborting with {}",
                sid,
                id,
                svc,
                offset,
                codes::app(UNKNOWN_SERVICE)
            );
            relay::abort_stream(&mut send, &mut recv, UNKNOWN_SERVICE);
            return;
        }
    };
    let connect = async {
        let a = resolve(dh, dp).await.map_err(|e| std::io::Error::new(std::io::ErrorKind::Other, e))?;
        TcpStream::connect(a).await
    };
    let tcp = tokio::select! {
        r = tokio::time::timeout(opts.connect_timeout, connect) => match r {
            Ok(Ok(t)) => t,
            Ok(Err(err)) => {
                log_warn!("[s{}] stream {}: destination {}:{} unreachable ({}): aborting with {}", sid, id, dh, dp, err, codes::app(DESTINATION_UNREACHABLE));
                relay::abort_stream(&mut send, &mut recv, DESTINATION_UNREACHABLE);
                return;
            }
            Err(_) => {
                log_warn!("[s{}] stream {}: destination {}:{} timed out: aborting with {}", sid, id, dh, dp, codes::app(DESTINATION_UNREACHABLE));
                relay::abort_stream(&mut send, &mut recv, DESTINATION_UNREACHABLE);
                return;
            }
        },
        s = send.stopped() => {
            if let Ok(c) = s {
                let c = c.into_inner();
                log_info!("[s{}] stream {} aborted by peer while connecting: {}", sid, id, codes::app(c));
                relay::abort_stream(&mut send, &mut recv, c);
            }
            return;
        }
    };
    let out = relay::relay(send, recv, tcp, leftover, DESTINATION_RESET).await;
    let line = format!("[s{}] stream {} (user {}): {}", sid, id, hdr.source, out.describe());
    match out.abort {
        Some(Abort::Peer(_)) | Some(Abort::TcpReset(_)) => log_info!("{}", line),
        Some(_) => log_warn!("{}", line),
        None => log_info!("{}", line),
    }
}
