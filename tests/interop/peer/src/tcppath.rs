// SPDX-License-Identifier: GPL-3.0-only
//! The TCP path (spec/11-tcp-path.md): QUIC datagrams framed over TCP.
//!
//! quinn sees one abstract socket (`PathSocket`, quinn's `AsyncUdpSocket`):
//! - a client's holds one TCP connection to the server (§3.2, `tcp`);
//! - a server's holds its UDP socket and every accepted TCP connection
//!   (§3.1): a record from a TCP path is a datagram whose source is the TCP
//!   peer's address, and a datagram quinn sends to an address that has a TCP
//!   path goes onto that TCP connection, any other one over UDP. So a client
//!   moving between UDP and TCP is, to quinn, a peer that changed address
//!   (RFC 9000 §9.3).

use crate::{log_debug, log_info, log_warn};
use quinn::{AsyncTimer, AsyncUdpSocket, Runtime, Transmit};
use quinn_udp::{RecvMeta, UdpState};
use std::collections::HashMap;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// "PRD-QOT" (spec/11-tcp-path.md §2.1).
pub const MAGIC: [u8; 7] = *b"PRD-QOT";
/// The version this peer speaks (§2.1).
pub const VERSION: u8 = 1;
/// Our preface: `50 52 44 2d 51 4f 54 01` (§2.1).
pub const PREFACE: [u8; 8] = [b'P', b'R', b'D', b'-', b'Q', b'O', b'T', VERSION];
/// The largest record this peer accepts (§2.2: at least 65527; 65535 here).
pub const MAX_RECORD: usize = 65535;
/// The client's wait for the server's preface (§2.1: 3 s).
pub const PREFACE_ANSWER: Duration = Duration::from_secs(3);
/// The server's wait for a client's preface (§3.1: 5 s).
pub const PREFACE_WAIT: Duration = Duration::from_secs(5);
/// A server's bound on open TCP paths (§3.1).
const MAX_PATHS: usize = 256;
/// A server closes a TCP path quiet for this long at least (§3.1).
const PATH_QUIET: Duration = Duration::from_secs(30);
/// Datagrams queued for one TCP connection; beyond, they are dropped (§3.1, §4).
const QUEUE: usize = 800;
/// At most this many bytes per write to the TCP connection.
const BATCH: usize = 64 * 1024;

/// What 8 received bytes are (§2.1).
#[derive(Debug, PartialEq, Eq)]
pub enum Preface {
    /// Our Magic and our Version.
    Ours,
    /// Our Magic, another Version.
    OtherVersion(u8),
    /// Not the Magic: not a TCP path.
    NotMagic,
}

pub fn check_preface(b: &[u8; 8]) -> Preface {
    if b[..7] != MAGIC {
        Preface::NotMagic
    } else if b[7] != VERSION {
        Preface::OtherVersion(b[7])
    } else {
        Preface::Ours
    }
}

/// A framing error (§2.2): the receiver closes the TCP connection.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    ZeroLength,
}

/// Appends the record of one datagram (§2.2). None: the datagram cannot be
/// framed (empty, or longer than 65535 bytes).
pub fn encode_record(d: &[u8], out: &mut Vec<u8>) -> Option<()> {
    if d.is_empty() || d.len() > MAX_RECORD {
        return None;
    }
    out.extend_from_slice(&(d.len() as u16).to_be_bytes());
    out.extend_from_slice(d);
    Some(())
}

/// Splits a byte stream into records (§2.2): push what TCP delivered, then
/// take the complete datagrams.
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
    pos: usize,
}

impl Decoder {
    pub fn push(&mut self, b: &[u8]) {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > BATCH {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(b);
    }

    /// The next complete datagram, None when more bytes are needed.
    pub fn next(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let rest = &self.buf[self.pos..];
        if rest.len() < 2 {
            return Ok(None);
        }
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        if len == 0 {
            return Err(FrameError::ZeroLength);
        }
        if rest.len() < 2 + len {
            return Ok(None);
        }
        let d = rest[2..2 + len].to_vec();
        self.pos += 2 + len;
        Ok(Some(d))
    }
}

#[derive(Debug)]
struct Inner {
    /// The server's UDP socket; None on a client's TCP path.
    udp: Option<tokio::net::UdpSocket>,
    local: SocketAddr,
    /// Peer address -> (path number, that TCP connection's send queue).
    paths: Mutex<HashMap<SocketAddr, (u64, mpsc::Sender<Vec<u8>>)>>,
    /// Datagrams read from every TCP path, with their source.
    rx: Mutex<mpsc::Receiver<(SocketAddr, Vec<u8>)>>,
    tx: mpsc::Sender<(SocketAddr, Vec<u8>)>,
    /// Which of UDP and TCP paths poll_recv tries first this time.
    turn: AtomicBool,
    /// Server: TCP paths accepted and not yet closed (§3.1).
    npaths: AtomicUsize,
    /// Server: a TCP path that carries no record for this long is closed.
    quiet: Option<Duration>,
}

/// quinn's socket over UDP and/or TCP paths.
#[derive(Debug, Clone)]
pub struct PathSocket(Arc<Inner>);

impl PathSocket {
    fn new(udp: Option<tokio::net::UdpSocket>, local: SocketAddr, quiet: Option<Duration>) -> Self {
        let (tx, rx) = mpsc::channel(256);
        PathSocket(Arc::new(Inner {
            udp,
            local,
            paths: Mutex::new(HashMap::new()),
            rx: Mutex::new(rx),
            tx,
            turn: AtomicBool::new(false),
            npaths: AtomicUsize::new(0),
            quiet,
        }))
    }

    /// A server's socket: `udp` plus the TCP paths `serve` accepts. `idle`
    /// is the QUIC idle timeout (0: none): a TCP path quiet for longer than
    /// max(30 s, idle + 5 s) is closed, this peer's stand-in for §3.1's "no
    /// authenticated connection 30 s after the preface" and "left without a
    /// connection using it" (a connection on it would have sent something).
    pub fn server(udp: std::net::UdpSocket, idle: Duration) -> io::Result<Self> {
        udp.set_nonblocking(true)?;
        let local = udp.local_addr()?;
        let quiet = if idle.is_zero() { None } else { Some((idle + Duration::from_secs(5)).max(PATH_QUIET)) };
        Ok(Self::new(Some(tokio::net::UdpSocket::from_std(udp)?), local, quiet))
    }

    /// A client's TCP path to `server` (§2.1, §3.2): connect, send our
    /// preface, wait for the server's. Errors are one line for the log.
    pub async fn dial(server: SocketAddr) -> Result<Self, String> {
        let mut s = match tokio::time::timeout(PREFACE_ANSWER, TcpStream::connect(server)).await {
            Err(_) => return Err(format!("the server at {} offers no TCP path (connect timed out)", server)),
            Ok(Err(e)) => return Err(format!("the server at {} offers no TCP path ({})", server, e)),
            Ok(Ok(s)) => s,
        };
        let _ = s.set_nodelay(true);
        if let Err(e) = s.write_all(&PREFACE).await {
            return Err(format!("the server at {} offers no TCP path ({})", server, e));
        }
        let mut p = [0u8; 8];
        match tokio::time::timeout(PREFACE_ANSWER, s.read_exact(&mut p)).await {
            Err(_) => return Err(format!("the server at {} offers no TCP path (no preface in 3 s)", server)),
            Ok(Err(e)) => return Err(format!("the server at {} offers no TCP path (closed before its preface: {})", server, e)),
            Ok(Ok(_)) => {}
        }
        match check_preface(&p) {
            Preface::Ours => {}
            Preface::OtherVersion(v) => {
                return Err(format!("the server at {} speaks TCP path version {}, we speak {}", server, v, VERSION))
            }
            Preface::NotMagic => {
                return Err(format!("the server at {} offers no TCP path (not a preface: {})", server, hex::encode(p)))
            }
        }
        let local = s.local_addr().map_err(|e| e.to_string())?;
        let sock = Self::new(None, local, None);
        log_info!("TCP path to {} open (spec/11-tcp-path.md)", server);
        let _ = sock.attach(s, server);
        Ok(sock)
    }

    /// Datagrams from the TCP paths into `bufs`; 0 when none is waiting
    /// (the waker registered).
    fn recv_tcp(&self, cx: &mut Context, bufs: &mut [IoSliceMut<'_>], meta: &mut [RecvMeta]) -> usize {
        let mut n = 0;
        let mut rx = self.0.rx.lock().unwrap();
        while n < bufs.len().min(meta.len()) {
            let got = if n == 0 {
                match rx.poll_recv(cx) {
                    Poll::Ready(Some(x)) => Some(x),
                    _ => None,
                }
            } else {
                rx.try_recv().ok()
            };
            let (from, d) = match got {
                Some(x) => x,
                None => break,
            };
            let len = d.len().min(bufs[n].len());
            bufs[n][..len].copy_from_slice(&d[..len]);
            meta[n] = RecvMeta { addr: from, len, stride: len, ecn: None, dst_ip: None };
            n += 1;
        }
        n
    }

    /// One datagram from the UDP socket into `bufs[0]`; None when none is
    /// waiting (the waker registered) or there is no UDP socket.
    fn recv_udp(&self, cx: &mut Context, bufs: &mut [IoSliceMut<'_>], meta: &mut [RecvMeta]) -> Option<io::Result<usize>> {
        let u = self.0.udp.as_ref()?;
        let mut rb = tokio::io::ReadBuf::new(&mut bufs[0]);
        match u.poll_recv_from(cx, &mut rb) {
            Poll::Ready(Ok(from)) => {
                let len = rb.filled().len();
                meta[0] = RecvMeta { addr: from, len, stride: len, ecn: None, dst_ip: None };
                Some(Ok(1))
            }
            Poll::Ready(Err(e)) => Some(Err(e)),
            Poll::Pending => None,
        }
    }

    /// Closes every TCP path: their queues end, so their writers close
    /// their side and the readers end at the peer's close.
    pub fn close(&self) {
        self.0.paths.lock().unwrap().clear();
    }

    /// Accepts TCP paths on `l` until the listener fails (§3.1).
    pub async fn serve(self, l: TcpListener) {
        loop {
            match l.accept().await {
                Ok((s, peer)) => {
                    // A bounded number of TCP paths (§3.1).
                    if self.0.npaths.fetch_add(1, Ordering::SeqCst) >= MAX_PATHS {
                        self.0.npaths.fetch_sub(1, Ordering::SeqCst);
                        log_debug!("TCP path from {} refused: {} open already", peer, MAX_PATHS);
                        continue;
                    }
                    let me = self.clone();
                    tokio::spawn(async move {
                        if let Some(reader) = me.clone().server_path(s, peer).await {
                            let _ = reader.await;
                        }
                        me.0.npaths.fetch_sub(1, Ordering::SeqCst);
                    });
                }
                Err(e) => {
                    log_warn!("TCP path accept: {}", e);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// A server's TCP path, until its prefaces are done: then the task that
    /// reads it.
    async fn server_path(self, mut s: TcpStream, peer: SocketAddr) -> Option<tokio::task::JoinHandle<()>> {
        let _ = s.set_nodelay(true);
        let mut p = [0u8; 8];
        match tokio::time::timeout(PREFACE_WAIT, s.read_exact(&mut p)).await {
            Err(_) => {
                log_debug!("TCP path from {}: no preface in 5 s, closed", peer);
                return None;
            }
            Ok(Err(_)) => return None,
            Ok(Ok(_)) => {}
        }
        match check_preface(&p) {
            Preface::Ours => {}
            Preface::OtherVersion(v) => {
                log_info!("TCP path from {}: version {} (we speak {}), closed", peer, v, VERSION);
                let _ = s.write_all(&PREFACE).await;
                return None;
            }
            Preface::NotMagic => {
                log_info!("TCP path from {}: not a preface ({}), closed", peer, hex::encode(p));
                return None;
            }
        }
        log_info!("TCP path from {}: preface answered", peer);
        Some(self.attach(s, peer))
    }

    /// Runs a TCP path whose prefaces are done: a writer task drains the
    /// queue (the server writes its preface first), a reader task feeds
    /// records to quinn; the path ends at EOF or a framing error.
    fn attach(&self, s: TcpStream, peer: SocketAddr) -> tokio::task::JoinHandle<()> {
        let server = self.0.udp.is_some();
        let (mut rd, mut wr) = s.into_split();
        static PATHS: AtomicU64 = AtomicU64::new(0);
        let id = PATHS.fetch_add(1, Ordering::Relaxed);
        let (qtx, mut qrx) = mpsc::channel::<Vec<u8>>(QUEUE);
        self.0.paths.lock().unwrap().insert(peer, (id, qtx));
        tokio::spawn(async move {
            let mut out = Vec::with_capacity(BATCH + 2 + MAX_RECORD);
            if server {
                out.extend_from_slice(&PREFACE);
            }
            loop {
                if out.is_empty() {
                    match qrx.recv().await {
                        Some(d) => {
                            let _ = encode_record(&d, &mut out);
                        }
                        None => break,
                    }
                }
                while out.len() < BATCH {
                    match qrx.try_recv() {
                        Ok(d) => {
                            let _ = encode_record(&d, &mut out);
                        }
                        Err(_) => break,
                    }
                }
                if wr.write_all(&out).await.is_err() {
                    break;
                }
                out.clear();
            }
        });
        let inner = self.0.clone();
        tokio::spawn(async move {
            let quiet = inner.quiet;
            let mut dec = Decoder::default();
            let mut buf = vec![0u8; BATCH];
            'read: loop {
                let r = match quiet {
                    None => rd.read(&mut buf).await,
                    Some(q) => match tokio::time::timeout(q, rd.read(&mut buf)).await {
                        Ok(r) => r,
                        Err(_) => {
                            log_info!("TCP path from {}: no record in {} s, closed", peer, q.as_secs());
                            break;
                        }
                    },
                };
                let n = match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                dec.push(&buf[..n]);
                loop {
                    match dec.next() {
                        Ok(Some(d)) => {
                            if inner.tx.send((peer, d)).await.is_err() {
                                break 'read;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            log_warn!("TCP path with {}: framing error {:?} (spec/11-tcp-path.md §2.2), closed", peer, e);
                            break 'read;
                        }
                    }
                }
            }
            log_debug!("TCP path with {} closed", peer);
            let mut paths = inner.paths.lock().unwrap();
            if paths.get(&peer).map_or(false, |q| q.0 == id) {
                paths.remove(&peer);
            }
        })
    }
}

impl AsyncUdpSocket for PathSocket {
    fn poll_send(&mut self, _state: &UdpState, cx: &mut Context, transmits: &[Transmit]) -> Poll<io::Result<usize>> {
        let mut sent = 0;
        for t in transmits {
            let seg = t.segment_size.unwrap_or(t.contents.len()).max(1);
            let q = self.0.paths.lock().unwrap().get(&t.destination).map(|q| q.1.clone());
            if let Some(q) = q {
                // A full queue drops the datagram, as a router would (§3.1, §4).
                for d in t.contents.chunks(seg) {
                    let _ = q.try_send(d.to_vec());
                }
            } else if let Some(u) = &self.0.udp {
                for (i, d) in t.contents.chunks(seg).enumerate() {
                    match u.poll_send_to(cx, d, t.destination) {
                        Poll::Pending if i == 0 => {
                            return if sent == 0 { Poll::Pending } else { Poll::Ready(Ok(sent)) };
                        }
                        Poll::Pending => break,
                        // As quinn's own socket: a failed send is a lost datagram.
                        Poll::Ready(_) => {}
                    }
                }
            }
            // Else no path to that address (a client whose TCP path
            // closed): the datagram is lost.
            sent += 1;
        }
        Poll::Ready(Ok(sent))
    }

    fn poll_recv(&self, cx: &mut Context, bufs: &mut [IoSliceMut<'_>], meta: &mut [RecvMeta]) -> Poll<io::Result<usize>> {
        // UDP and the TCP paths take turns at going first, so that neither
        // starves the other.
        let udp_first = self.0.turn.fetch_xor(true, Ordering::Relaxed);
        if udp_first {
            if let Some(r) = self.recv_udp(cx, bufs, meta) {
                return Poll::Ready(r);
            }
        }
        let n = self.recv_tcp(cx, bufs, meta);
        if n > 0 {
            return Poll::Ready(Ok(n));
        }
        if !udp_first {
            if let Some(r) = self.recv_udp(cx, bufs, meta) {
                return Poll::Ready(r);
            }
        }
        Poll::Pending
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.0.local)
    }
}

/// Tokio, except that a socket quinn is handed (`Endpoint::rebind`, which
/// src/keepalive.rs uses to make quinn PING) becomes this `PathSocket` again.
#[derive(Debug)]
pub struct PathRuntime(pub PathSocket);

impl Runtime for PathRuntime {
    fn new_timer(&self, t: Instant) -> Pin<Box<dyn AsyncTimer>> {
        quinn::TokioRuntime.new_timer(t)
    }
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) {
        quinn::TokioRuntime.spawn(future)
    }
    fn wrap_udp_socket(&self, _t: std::net::UdpSocket) -> io::Result<Box<dyn AsyncUdpSocket>> {
        Ok(Box::new(self.0.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preface_bytes_of_section_2_1() {
        // spec/11-tcp-path.md §2.1: "The bytes are 50 52 44 2d 51 4f 54 01".
        assert_eq!(PREFACE, [0x50, 0x52, 0x44, 0x2d, 0x51, 0x4f, 0x54, 0x01]);
        assert_eq!(check_preface(&PREFACE), Preface::Ours);
        assert_eq!(check_preface(b"PRD-QOT\x02"), Preface::OtherVersion(2));
        assert_eq!(check_preface(b"GET / HT"), Preface::NotMagic);
        assert_eq!(check_preface(b"PRD-QOt\x01"), Preface::NotMagic);
    }

    #[test]
    fn records_of_section_2_2() {
        let mut out = Vec::new();
        encode_record(&[0xc0, 0x01, 0x02], &mut out).unwrap();
        assert_eq!(out, [0x00, 0x03, 0xc0, 0x01, 0x02]);
        assert!(encode_record(&[], &mut out).is_none());
        assert!(encode_record(&vec![0u8; 65536], &mut out).is_none());
        let mut big = Vec::new();
        encode_record(&vec![7u8; 65535], &mut big).unwrap();
        assert_eq!(&big[..2], &[0xff, 0xff]);
        assert_eq!(big.len(), 65537);
    }

    #[test]
    fn decoder_splits_records_across_reads() {
        let mut d = Decoder::default();
        // Two records, the second delivered one byte at a time.
        d.push(&[0x00, 0x02, 0xaa, 0xbb, 0x00]);
        assert_eq!(d.next(), Ok(Some(vec![0xaa, 0xbb])));
        assert_eq!(d.next(), Ok(None));
        d.push(&[0x01]);
        assert_eq!(d.next(), Ok(None));
        d.push(&[0xcc]);
        assert_eq!(d.next(), Ok(Some(vec![0xcc])));
        assert_eq!(d.next(), Ok(None));
        // The largest record.
        let mut r = Vec::new();
        encode_record(&vec![1u8; 65535], &mut r).unwrap();
        d.push(&r);
        assert_eq!(d.next().unwrap().unwrap().len(), 65535);
    }

    #[test]
    fn zero_length_is_a_framing_error() {
        // §2.2: "A Length of 0 is a protocol error".
        let mut d = Decoder::default();
        d.push(&[0x00, 0x01, 0x42, 0x00, 0x00, 0x00, 0x01, 0x42]);
        assert_eq!(d.next(), Ok(Some(vec![0x42])));
        assert_eq!(d.next(), Err(FrameError::ZeroLength));
    }

    #[test]
    fn vectors_of_tcp_path_txt() {
        // spec/test-vectors/tcp-path.txt (spec/11-tcp-path.md §2.1, §2.2).
        let mut n = 0;
        for b in crate::vectors::load("tcp-path.txt") {
            let enc = b.hex("encoded");
            match b.get("kind") {
                "tcp-path-preface" => {
                    let p: [u8; 8] = enc.as_slice().try_into().unwrap();
                    let want = match b.get("verdict") {
                        "ours" => Preface::Ours,
                        "other-version" => Preface::OtherVersion(p[7]),
                        _ => Preface::NotMagic,
                    };
                    assert_eq!(check_preface(&p), want, "{}", b.get("name"));
                }
                "tcp-path-records" => {
                    // Whole, then one byte at a time: the same datagrams.
                    for step in [enc.len().max(1), 1] {
                        let mut d = Decoder::default();
                        let mut got = Vec::new();
                        let mut err = "none";
                        'feed: for c in enc.chunks(step) {
                            d.push(c);
                            loop {
                                match d.next() {
                                    Ok(Some(x)) => got.push(x),
                                    Ok(None) => break,
                                    Err(FrameError::ZeroLength) => {
                                        err = "zero-length";
                                        break 'feed;
                                    }
                                }
                            }
                        }
                        assert_eq!(got.len() as u64, b.int("datagrams"), "{}", b.get("name"));
                        for (i, x) in got.iter().enumerate() {
                            assert_eq!(x, &b.hex(&format!("datagram-{}", i + 1)), "{}", b.get("name"));
                        }
                        assert_eq!(err, b.get("error"), "{}", b.get("name"));
                        if err == "none" {
                            assert_eq!((d.buf.len() - d.pos) as u64, b.int("pending"), "{}", b.get("name"));
                        }
                        // Encoding the datagrams gives the bytes back.
                        if err == "none" && b.int("pending") == 0 {
                            let mut out = Vec::new();
                            for x in &got {
                                encode_record(x, &mut out).unwrap();
                            }
                            assert_eq!(out, enc, "{}", b.get("name"));
                        }
                    }
                }
                k => panic!("unknown kind {}", k),
            }
            n += 1;
        }
        assert!(n >= 9);
    }

    #[test]
    fn garbage_is_a_datagram() {
        // §2.3: only the length is trusted; what is not QUIC is quinn's to drop.
        let mut d = Decoder::default();
        d.push(b"\x00\x04junk\x00\x01!");
        assert_eq!(d.next(), Ok(Some(b"junk".to_vec())));
        assert_eq!(d.next(), Ok(Some(b"!".to_vec())));
    }
}
