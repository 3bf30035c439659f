// SPDX-License-Identifier: GPL-3.0-only
//! The server role: accept QUIC clients and authenticate them
//! (spec/03-auth.md §4, spec/07-state-machines.md §1); accept user TCP
//! connections and open one data stream each (07 §5, spec/02-framing.md §4).

use crate::codes::{self, *};
use crate::ctl::{CtlError, FrameReader};
use crate::relay::{self, Abort};
use crate::tls::Timers;
use crate::wire::{self, Frame, StreamHeader};
use crate::{log_error, log_info, log_warn};
use rand::RngCore;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Opts {
    /// Service name -> TCP listen address; `default` is --local-port
    /// (spec/02-framing.md §3.7).
    pub services: Vec<(String, SocketAddr)>,
    /// UDP services: name -> UDP listen address (spec/10-udp.md).
    pub udp_services: Vec<(String, SocketAddr)>,
    /// Accept HELLO Flags bit 0 (spec/02-framing.md §3.1, §3.4).
    pub named_services: bool,
    pub quic: SocketAddr,
    /// Where TCP paths are accepted (spec/11-tcp-path.md §3.1); None: off.
    pub quic_tcp: Option<SocketAddr>,
    /// The PSK of the client `default` (empty: none).
    pub psk: Vec<u8>,
    /// Named clients and their PSKs (spec/03-auth.md §4.1).
    pub clients: Vec<(String, Vec<u8>)>,
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
    pub timers: Timers,
    pub auth_timeout: Duration,
    pub pending_timeout: Duration,
}

/// An authenticated client connection.
struct Tunnel {
    id: u64,
    conn: quinn::Connection,
    open: AtomicUsize,
    /// GOAWAY sent or received: no new data streams.
    goaway: AtomicBool,
    /// SERVICES negotiated on this connection (spec/02-framing.md §3.1).
    named: bool,
    /// The client's current services, ours only (§3.7); only with `named`.
    services: Mutex<Vec<String>>,
    /// DATAGRAMS negotiated (spec/10-udp.md §2).
    datagrams: bool,
}

impl Tunnel {
    /// Whether a user connection of `service` may go to this client
    /// (spec/02-framing.md §3.7, §4.4).
    fn serves(&self, service: &str) -> bool {
        if self.named {
            self.services.lock().unwrap().iter().any(|s| s == service)
        } else {
            service == "default"
        }
    }
}

struct Shared {
    tunnels: Mutex<Vec<Arc<Tunnel>>>,
    last: AtomicU64,
    /// Bumped whenever a tunnel becomes eligible.
    changed: watch::Sender<u64>,
    /// Set once on SIGINT/SIGTERM (spec/04-quic-profile.md §6.2).
    shutdown: watch::Sender<bool>,
    opts: Opts,
    ep: crate::keepalive::Endpoint,
    udp: crate::udp::Server,
}

impl Shared {
    /// A client for a new UDP flow of `service`: one that serves it and
    /// negotiated DATAGRAMS (spec/10-udp.md §4), the first found.
    fn pick_udp(&self, service: &str) -> Option<quinn::Connection> {
        let list = self.tunnels.lock().unwrap();
        list.iter()
            .find(|t| t.datagrams && !t.goaway.load(Ordering::SeqCst) && t.serves(service))
            .map(|t| t.conn.clone())
    }

    /// Fewest open data streams; ties in round-robin order after the one
    /// chosen last (spec/04-quic-profile.md §7).
    fn pick(&self, service: &str) -> Option<Arc<Tunnel>> {
        let list = self.tunnels.lock().unwrap();
        let eligible: Vec<&Arc<Tunnel>> =
            list.iter().filter(|t| !t.goaway.load(Ordering::SeqCst) && t.serves(service)).collect();
        let min = eligible.iter().map(|t| t.open.load(Ordering::SeqCst)).min()?;
        let best: Vec<&&Arc<Tunnel>> = eligible.iter().filter(|t| t.open.load(Ordering::SeqCst) == min).collect();
        let last = self.last.load(Ordering::SeqCst);
        let t = best.iter().find(|t| t.id > last).or_else(|| best.first())?;
        self.last.store(t.id, Ordering::SeqCst);
        t.open.fetch_add(1, Ordering::SeqCst);
        Some((**t).clone())
    }
}

static CONNS: AtomicU64 = AtomicU64::new(0);
static USERS: AtomicU64 = AtomicU64::new(0);

pub async fn run(opts: Opts, mut stop: watch::Receiver<bool>) -> i32 {
    let sc = match crate::tls::server_config(&opts.timers, opts.cert.clone(), opts.key.clone()) {
        Ok(c) => c,
        Err(e) => {
            log_error!("{}", e);
            return 2;
        }
    };
    let refusing = {
        let mut r = sc.clone();
        r.concurrent_connections(0);
        r
    };
    let kep = match opts.quic_tcp {
        None => match crate::keepalive::Endpoint::new(opts.quic, Some(sc)) {
            Ok(e) => e,
            Err(e) => {
                log_error!("cannot bind UDP {}: {}", opts.quic, e);
                return 1;
            }
        },
        // One endpoint for both kinds of path, so that a client may move
        // between them (spec/11-tcp-path.md §3.1, §3.2).
        Some(taddr) => {
            let udp = match std::net::UdpSocket::bind(opts.quic) {
                Ok(u) => u,
                Err(e) => {
                    log_error!("cannot bind UDP {}: {}", opts.quic, e);
                    return 1;
                }
            };
            let l = match TcpListener::bind(taddr).await {
                Ok(l) => l,
                Err(e) => {
                    log_error!("cannot listen on TCP {} (--quic-tcp-listen): {}", taddr, e);
                    return 1;
                }
            };
            let sock = match crate::tcppath::PathSocket::server(udp, opts.timers.idle) {
                Ok(s) => s,
                Err(e) => {
                    log_error!("cannot use UDP {}: {}", opts.quic, e);
                    return 1;
                }
            };
            let kep = match crate::keepalive::Endpoint::on_paths(sock.clone(), Some(sc)) {
                Ok(e) => e,
                Err(e) => {
                    log_error!("cannot start QUIC on {}: {}", opts.quic, e);
                    return 1;
                }
            };
            log_info!("QUIC TCP path listening on {} (spec/11-tcp-path.md)", taddr);
            tokio::spawn(sock.serve(l));
            kep
        }
    };
    let mut listeners = Vec::new();
    for (name, addr) in &opts.services {
        match TcpListener::bind(addr).await {
            Ok(l) => listeners.push((name.clone(), *addr, l)),
            Err(e) => {
                log_error!("cannot listen on TCP {} (service {}): {}", addr, name, e);
                return 1;
            }
        }
    }
    let mut udp_socks = Vec::new();
    for (name, addr) in &opts.udp_services {
        match tokio::net::UdpSocket::bind(addr).await {
            Ok(s) => udp_socks.push((name.clone(), *addr, Arc::new(s))),
            Err(e) => {
                log_error!("cannot listen on UDP {} (service {}): {}", addr, name, e);
                return 1;
            }
        }
    }
    let ep = kep.ep.clone();
    log_info!(
        "server certificate SHA-256 fingerprint {}, SANs {:?}",
        crate::cert::fingerprint(&opts.cert),
        crate::cert::sans(&opts.cert).unwrap_or_default()
    );
    log_info!("QUIC listening on {}", opts.quic);
    for (name, addr, _) in &listeners {
        log_info!("TCP listening on {} (service {})", addr, name);
    }
    if opts.named_services {
        log_info!("named services: accepting HELLO Flags bit 0");
    }
    let (changed, _) = watch::channel(0u64);
    let (shutdown, _) = watch::channel(false);
    let shared = Arc::new(Shared {
        tunnels: Mutex::new(Vec::new()),
        last: AtomicU64::new(0),
        changed,
        shutdown,
        opts,
        ep: kep,
        udp: crate::udp::Server::default(),
    });
    for (name, addr, sock) in udp_socks {
        log_info!("UDP listening on {} (service {})", addr, name);
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, peer)) = sock.recv_from(&mut buf).await {
                shared.udp.from_user(&sock, &name, peer, &buf[..n], || shared.pick_udp(&name));
            }
        });
    }
    let s2 = shared.clone();
    let ep2 = ep.clone();
    tokio::spawn(async move {
        while let Some(connecting) = ep2.accept().await {
            tokio::spawn(handle_quic(connecting, s2.clone()));
        }
    });
    let mut accepting = Vec::new();
    for (name, _, listener) in listeners {
        let shared = shared.clone();
        let mut stop = stop.clone();
        let name = Arc::new(name);
        accepting.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    r = listener.accept() => match r {
                        Ok((sock, peer)) => { tokio::spawn(handle_user(sock, peer, name.clone(), shared.clone())); }
                        Err(e) => log_warn!("accept: {}", e),
                    },
                    _ = stop.changed() => break,
                }
            }
        }));
    }
    let _ = stop.changed().await;
    // Shutdown (spec/04-quic-profile.md §6.2): stop accepting users, refuse
    // new QUIC connections (CONNECTION_REFUSED), GOAWAY(SHUTTING_DOWN) to
    // authenticated clients, close the others with SHUTTING_DOWN, then, once
    // every data stream has ended or --shutdown-grace has passed, close
    // everything with SHUTTING_DOWN.
    for a in accepting {
        let _ = a.await;
    }
    ep.set_server_config(Some(refusing));
    let list: Vec<Arc<Tunnel>> = shared.tunnels.lock().unwrap().clone();
    for t in &list {
        t.goaway.store(true, Ordering::SeqCst);
    }
    shared.shutdown.send_replace(true);
    // A relay counts as open until both directions have ended in QUIC: the
    // peer's FIN read and our FIN acknowledged (finish() resolved), or the
    // stream reset.
    let grace = shared.opts.timers.grace;
    let t0 = Instant::now();
    let mut busy = false;
    while list.iter().any(|t| t.open.load(Ordering::SeqCst) > 0) && t0.elapsed() < grace {
        busy = true;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if busy && t0.elapsed() < grace {
        // An acknowledgment says only that the peer's stack holds the
        // bytes: linger before the close, within the grace period.
        let l = list.iter().map(|t| relay::linger(t.conn.rtt())).max().unwrap_or_default();
        let l = l.min(grace - t0.elapsed());
        log_info!("every data stream has ended: closing in {} ms", l.as_millis());
        tokio::time::sleep(l).await;
    }
    ep.close(codes::varint(SHUTTING_DOWN), b"shutting down");
    let _ = tokio::time::timeout(Duration::from_secs(1), ep.wait_idle()).await;
    log_info!("server stopped");
    0
}

fn close(conn: &quinn::Connection, code: u64, why: &str) {
    conn.close(codes::varint(code), why.as_bytes());
}

/// One client connection: handshake, authentication, then the control
/// stream until the connection ends (spec/07-state-machines.md §1).
async fn handle_quic(connecting: quinn::Connecting, shared: Arc<Shared>) {
    let cid = CONNS.fetch_add(1, Ordering::SeqCst) + 1;
    let remote = connecting.remote_address();
    let conn = match connecting.await {
        Ok(c) => c,
        Err(e) => {
            if let quinn::ConnectionError::ConnectionClosed(c) = &e {
                if codes::is_cert_alert(u64::from(c.error_code)) {
                    log_warn!(
                        "[c{}] client {} rejected our certificate (its pin or expected name does not match): {}",
                        cid,
                        remote,
                        codes::describe(&e)
                    );
                    return;
                }
            }
            if let quinn::ConnectionError::ConnectionClosed(c) = &e {
                if u64::from(c.error_code) == 0x0c {
                    // spec/05-errors.md §3: some stacks (quinn 0.9 itself)
                    // send a certificate rejection as APPLICATION_ERROR.
                    log_warn!(
                        "[c{}] handshake with {} failed: the client aborted the handshake (it may have rejected our certificate): {}",
                        cid,
                        remote,
                        codes::describe(&e)
                    );
                    return;
                }
            }
            log_warn!("[c{}] handshake with {} failed: {}", cid, remote, codes::describe(&e));
            return;
        }
    };
    // IDLE -> WAIT_HELLO: E, a fresh challenge, the deadline.
    let mut e = [0u8; 32];
    if let Err(err) = conn.export_keying_material(&mut e, crate::auth::EXPORTER_LABEL, b"") {
        log_error!("[c{}] TLS exporter failed: {:?}", cid, err);
        close(&conn, INTERNAL_ERROR, "");
        return;
    }
    let mut challenge = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut challenge);
    let deadline = tokio::time::Instant::now() + shared.opts.auth_timeout;
    let mut sd = shared.shutdown.subscribe();
    if *sd.borrow() {
        close(&conn, SHUTTING_DOWN, "shutting down");
        return;
    }
    let stopping = |cid: u64| {
        log_info!("[c{}] shutting down before {} authenticated: closing with {}", cid, remote, codes::app(SHUTTING_DOWN));
        close(&conn, SHUTTING_DOWN, "shutting down");
    };
    let timeout = |why: &str| {
        log_warn!("[c{}] authentication failed from {}: {} ({}): closing with {}", cid, remote, why, "deadline", codes::app(AUTH_TIMEOUT));
        close(&conn, AUTH_TIMEOUT, "auth timeout");
    };
    let (mut ctl_send, ctl_recv) = tokio::select! {
        s = conn.accept_bi() => match s {
            Ok(s) => s,
            Err(err) => {
                log_warn!("[c{}] client {} left before authenticating: {}", cid, remote, codes::describe(&err));
                return;
            }
        },
        _ = tokio::time::sleep_until(deadline) => { timeout("no control stream"); return; }
        _ = sd.changed() => { stopping(cid); return; }
    };
    let mut reader = FrameReader::new(ctl_recv);
    let mut waiting_response = false;
    // The HELLO Flags bits we accept (spec/02-framing.md §3.1, §3.4).
    let mut accepted: Option<u64> = None;
    let client_name: String;
    loop {
        let f = tokio::select! {
            f = reader.next() => f,
            _ = tokio::time::sleep_until(deadline) => { timeout("no response"); return; }
            _ = sd.changed() => { stopping(cid); return; }
        };
        let f = match f {
            Ok(f) => f,
            Err(CtlError::ConnLost(err)) => {
                log_warn!("[c{}] client {} left before authenticating: {}", cid, remote, codes::describe(&err));
                return;
            }
            Err(err) => {
                log_warn!("[c{}] {} from {}: closing with {}", cid, err.describe(), remote, codes::app(PROTOCOL_ERROR));
                close(&conn, PROTOCOL_ERROR, "");
                return;
            }
        };
        // A well-formed frame processed at or after the deadline.
        if tokio::time::Instant::now() >= deadline {
            timeout("frame after the deadline");
            return;
        }
        match (waiting_response, f) {
            (false, Frame::Hello { version: 0, .. }) => {
                log_warn!("[c{}] HELLO version 0 from {}: closing with {}", cid, remote, codes::app(VERSION_MISMATCH));
                close(&conn, VERSION_MISMATCH, "");
                return;
            }
            (false, Frame::Hello { flags, .. }) => {
                // Client names are always accepted (spec/03-auth.md §4.1).
                let mut ours = (if shared.opts.named_services { wire::FEATURE_SERVICES } else { 0 }) | wire::FEATURE_CLIENT_NAME;
                if !shared.opts.udp_services.is_empty() {
                    ours |= wire::FEATURE_DATAGRAMS; // spec/10-udp.md §2
                }
                if flags != 0 {
                    // Flags answered only to a HELLO with Flags (§3.4); a
                    // server of the first text unless a bit of ours is
                    // offered or named services are on.
                    accepted = (shared.opts.named_services || flags & ours != 0).then_some(flags & ours);
                }
                // AUTH_RESPONSE carries a Name exactly when CLIENT_NAME was
                // offered (spec/02-framing.md §3.3).
                reader.features = flags & ours;
                let ch = Frame::AuthChallenge { version: 1, challenge: challenge.to_vec() };
                if ctl_send.write_all(&ch.encode()).await.is_err() {
                    return;
                }
                waiting_response = true;
            }
            (true, Frame::AuthResponse { mac, name }) => {
                // spec/03-auth.md §4.1: the named client's key, or "default"'s;
                // an unknown or invalid name is checked under a random key
                // all the same and fails like a wrong MAC.
                let who = name.clone().unwrap_or_else(|| b"default".to_vec());
                let key = if !wire::valid_client_name(&who) {
                    None
                } else if who == b"default" && !shared.opts.psk.is_empty() {
                    Some(shared.opts.psk.clone())
                } else {
                    shared.opts.clients.iter().find(|(n, _)| n.as_bytes() == who.as_slice()).map(|(_, k)| k.clone())
                };
                let known = key.is_some();
                let key = key.unwrap_or_else(|| rand::random::<[u8; 32]>().to_vec());
                let ok = crate::auth::verify(&key, &e, &challenge, name.as_deref(), &mac);
                let shown = String::from_utf8_lossy(&who).escape_debug().to_string();
                if ok && known {
                    if ctl_send.write_all(&Frame::AuthResult { status: 0, flags: accepted }.encode()).await.is_err() {
                        return;
                    }
                    client_name = shown;
                    break;
                }
                log_warn!(
                    "[c{}] authentication failed from {} as client \"{}\": {}: closing with {}",
                    cid,
                    remote,
                    shown,
                    if known { "wrong MAC" } else { "unknown client" },
                    codes::app(AUTH_FAILED)
                );
                let _ = ctl_send.write_all(&Frame::AuthResult { status: AUTH_FAILED, flags: accepted }.encode()).await;
                // Give AUTH_RESULT a moment to leave before the close, which
                // discards unsent stream data in quinn.
                tokio::time::sleep(Duration::from_millis(20)).await;
                close(&conn, AUTH_FAILED, "");
                return;
            }
            (_, f) => {
                log_warn!("[c{}] unexpected {} from {}: closing with {}", cid, f.name(), remote, codes::app(PROTOCOL_ERROR));
                close(&conn, PROTOCOL_ERROR, "");
                return;
            }
        }
    }
    e.iter_mut().for_each(|b| *b = 0);
    log_info!("[c{}] client authenticated from {} as \"{}\"", cid, remote, client_name);
    crate::keepalive::start(&shared.ep, &conn, &shared.opts.timers, &format!("[c{}] ", cid));
    let named = accepted.unwrap_or(0) & wire::FEATURE_SERVICES != 0;
    reader.features = accepted.unwrap_or(0);
    if named {
        log_info!("[c{}] named services negotiated with {}", cid, remote);
    }
    let t = Arc::new(Tunnel {
        id: cid,
        conn: conn.clone(),
        open: AtomicUsize::new(0),
        goaway: AtomicBool::new(false),
        named,
        services: Mutex::new(Vec::new()),
        datagrams: accepted.unwrap_or(0) & wire::FEATURE_DATAGRAMS != 0,
    });
    if t.datagrams {
        let (c, s) = (conn.clone(), shared.clone());
        tokio::spawn(async move {
            while let Ok(b) = c.read_datagram().await {
                s.udp.from_client(&c, &b).await;
            }
        });
    }
    shared.tunnels.lock().unwrap().push(t.clone());
    shared.changed.send_modify(|v| *v += 1);
    let mut watch_stop_sending = true;
    let mut goaway_due = true;
    let why = loop {
        tokio::select! {
            _ = sd.changed(), if goaway_due => {
                goaway_due = false;
                log_info!("[c{}] sending GOAWAY {} to {}", cid, codes::app(SHUTTING_DOWN), remote);
                // Bounded: stream 0 shares connection-level flow control
                // (spec/09-implementation-notes.md §3.5).
                let goaway = Frame::Goaway { code: SHUTTING_DOWN }.encode();
                let _ = tokio::time::timeout(Duration::from_millis(500), ctl_send.write_all(&goaway)).await;
            }
            f = reader.next() => match f {
                Ok(Frame::Goaway { code }) => {
                    log_info!("[c{}] client {} sent GOAWAY {}", cid, remote, codes::app(code));
                    t.goaway.store(true, Ordering::SeqCst);
                }
                // spec/02-framing.md §3.7: ours become the client's set; the
                // others are refused, in order, and logged.
                Ok(Frame::Services { names }) => {
                    let mut set = Vec::new();
                    for n in names {
                        if shared.opts.services.iter().chain(shared.opts.udp_services.iter()).any(|s| s.0 == n) {
                            set.push(n);
                            continue;
                        }
                        log_warn!("[c{}] client {} declared service {}, which we do not have: refusing with {}", cid, remote, n, codes::app(UNKNOWN_SERVICE));
                        let r = Frame::ServiceRefused { code: UNKNOWN_SERVICE, name: n };
                        let _ = tokio::time::timeout(Duration::from_millis(500), ctl_send.write_all(&r.encode())).await;
                    }
                    log_info!("[c{}] client {} serves: {}", cid, remote, set.join(" "));
                    *t.services.lock().unwrap() = set;
                    shared.changed.send_modify(|v| *v += 1);
                }
                Ok(f) => {
                    log_warn!("[c{}] unexpected {} after authentication: closing with {}", cid, f.name(), codes::app(PROTOCOL_ERROR));
                    close(&conn, PROTOCOL_ERROR, "");
                }
                Err(CtlError::ConnLost(err)) => break codes::describe(&err),
                Err(err) => {
                    log_warn!("[c{}] {}: closing with {}", cid, err.describe(), codes::app(PROTOCOL_ERROR));
                    close(&conn, PROTOCOL_ERROR, "");
                }
            },
            s = ctl_send.stopped(), if watch_stop_sending => {
                watch_stop_sending = false;
                if s.is_ok() {
                    log_warn!("[c{}] STOP_SENDING on the control stream: closing with {}", cid, codes::app(PROTOCOL_ERROR));
                    close(&conn, PROTOCOL_ERROR, "");
                }
            }
        }
    };
    shared.tunnels.lock().unwrap().retain(|x| x.id != cid);
    shared.udp.conn_gone(&conn);
    log_info!("[c{}] client {} disconnected: {}", cid, remote, why);
}

/// One user connection (spec/07-state-machines.md §5).
async fn handle_user(sock: TcpStream, peer: SocketAddr, service: Arc<String>, shared: Arc<Shared>) {
    let uid = USERS.fetch_add(1, Ordering::SeqCst) + 1;
    let local = match sock.local_addr() {
        Ok(a) => a,
        Err(_) => return,
    };
    let deadline = tokio::time::Instant::now() + shared.opts.pending_timeout;
    let mut rx = shared.changed.subscribe();
    let tunnel = loop {
        if let Some(t) = shared.pick(&service) {
            break t;
        }
        tokio::select! {
            r = rx.changed() => { if r.is_err() { return; } }
            _ = tokio::time::sleep_until(deadline) => {
                log_info!("[u{}] no authenticated client for {} (service {}): reset", uid, peer, service);
                relay::reset_tcp(sock);
                return;
            }
        }
    };
    let tag = format!("[c{}/u{}]", tunnel.id, uid);
    let result = async {
        let (mut send, recv) = tunnel.conn.open_bi().await.map_err(|e| codes::describe(&e))?;
        // SERVICE only to a negotiated client, and only when not `default`
        // (spec/02-framing.md §4.4); no port ranges here, so no PORT_OFFSET.
        let svc = (tunnel.named && service.as_str() != "default").then(|| service.to_string());
        let hdr = StreamHeader { source: peer, destination: Some(local), service: svc, port_offset: None };
        // The complete header at once, before any user byte (§1.2).
        send.write_all(&hdr.encode()).await.map_err(|e| e.to_string())?;
        Ok::<_, String>((send, recv))
    }
    .await;
    let (send, recv) = match result {
        Ok(x) => x,
        Err(e) => {
            log_warn!("{} cannot open a data stream: {}", tag, e);
            tunnel.open.fetch_sub(1, Ordering::SeqCst);
            relay::reset_tcp(sock);
            return;
        }
    };
    let id = quinn::VarInt::from(send.id()).into_inner();
    log_info!("{} forwarded {} (service {}) as stream {}", tag, peer, service, id);
    let out = relay::relay(send, recv, sock, Vec::new(), USER_RESET).await;
    tunnel.open.fetch_sub(1, Ordering::SeqCst);
    let line = format!("{} stream {} (user {}): {}", tag, id, peer, out.describe());
    match out.abort {
        None | Some(Abort::Peer(_)) | Some(Abort::TcpReset(_)) => log_info!("{}", line),
        Some(_) => log_warn!("{}", line),
    }
}
