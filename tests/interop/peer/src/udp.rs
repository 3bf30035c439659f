// SPDX-License-Identifier: GPL-3.0-only
//! UDP services over QUIC DATAGRAM frames (spec/10-udp.md): the messages of
//! §3 and both roles' flows. Flows here never expire (the peer is a test
//! program); everything else follows the text.

use crate::varint;
use crate::wire::{unmap, valid_service_name};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use tokio::net::UdpSocket;

pub const FLOW_OPEN: u64 = 0x01;
pub const FLOW_DATA: u64 = 0x02;
pub const FLOW_CLOSE: u64 = 0x03;

#[derive(Debug, PartialEq)]
pub enum Msg {
    Open { flow: u64, service: String, offset: u64, source: SocketAddr, payload: Vec<u8> },
    Data { flow: u64, payload: Vec<u8> },
    Close { flow: u64 },
}

fn address(a: SocketAddr, out: &mut Vec<u8>) {
    let a = unmap(a);
    match a.ip() {
        IpAddr::V4(ip) => {
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(6);
            out.extend_from_slice(&ip.octets());
        }
    }
    out.extend_from_slice(&a.port().to_be_bytes());
}

impl Msg {
    /// spec/10-udp.md §3.1-§3.3.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Msg::Open { flow, service, offset, source, payload } => {
                varint::encode(FLOW_OPEN, &mut out);
                varint::encode(*flow, &mut out);
                varint::encode(service.len() as u64, &mut out);
                out.extend_from_slice(service.as_bytes());
                varint::encode(*offset, &mut out);
                address(*source, &mut out);
                out.extend_from_slice(payload);
            }
            Msg::Data { flow, payload } => {
                varint::encode(FLOW_DATA, &mut out);
                varint::encode(*flow, &mut out);
                out.extend_from_slice(payload);
            }
            Msg::Close { flow } => {
                varint::encode(FLOW_CLOSE, &mut out);
                varint::encode(*flow, &mut out);
            }
        }
        out
    }
}

/// Decodes one DATAGRAM frame payload (spec/10-udp.md §3); None for
/// anything malformed or unknown, which the caller drops.
pub fn decode(b: &[u8]) -> Option<Msg> {
    let mut p = 0;
    let v = |p: &mut usize| -> Option<u64> {
        let (x, n) = varint::decode(&b[*p..]).ok()?;
        *p += n;
        Some(x)
    };
    let ty = v(&mut p)?;
    let flow = v(&mut p)?;
    match ty {
        FLOW_OPEN => {
            let n = v(&mut p)? as usize;
            let name = b.get(p..p.checked_add(n)?)?;
            if !valid_service_name(name) {
                return None;
            }
            let service = String::from_utf8(name.to_vec()).ok()?;
            p += n;
            let offset = v(&mut p)?;
            if offset > crate::wire::MAX_PORT_OFFSET {
                return None;
            }
            let (source, used) = match b.get(p)? {
                4 => {
                    let a = b.get(p + 1..p + 7)?;
                    (SocketAddr::new(IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])), u16::from_be_bytes([a[4], a[5]])), 7)
                }
                6 => {
                    let a = b.get(p + 1..p + 19)?;
                    let mut o = [0u8; 16];
                    o.copy_from_slice(&a[..16]);
                    (SocketAddr::new(IpAddr::V6(Ipv6Addr::from(o)), u16::from_be_bytes([a[16], a[17]])), 19)
                }
                _ => return None,
            };
            p += used;
            Some(Msg::Open { flow, service, offset, source, payload: b[p..].to_vec() })
        }
        FLOW_DATA => Some(Msg::Data { flow, payload: b[p..].to_vec() }),
        FLOW_CLOSE if p == b.len() => Some(Msg::Close { flow }),
        _ => None,
    }
}

// ---- server ---------------------------------------------------------------

/// A server flow: the user, its listening socket, the client connection and
/// whether a reply confirmed it (§3.1).
struct SrvFlow {
    id: u64,
    conn: quinn::Connection,
    confirmed: bool,
}

/// The server's UDP side: per service socket, flows by user address, and
/// per connection the flows by ID.
#[derive(Default)]
pub struct Server {
    flows: Mutex<HashMap<(String, SocketAddr), SrvFlow>>,
    by_id: Mutex<HashMap<(usize, u64), (Arc<UdpSocket>, SocketAddr, String)>>,
    next: Mutex<HashMap<usize, u64>>,
}

fn conn_key(c: &quinn::Connection) -> usize {
    c.stable_id()
}

impl Server {
    /// A user's datagram `payload` from `peer` to service `name`'s socket:
    /// to the flow's client, FLOW_OPEN until confirmed.
    pub fn from_user(&self, sock: &Arc<UdpSocket>, name: &str, peer: SocketAddr, payload: &[u8], pick: impl FnOnce() -> Option<quinn::Connection>) {
        let mut flows = self.flows.lock().unwrap();
        let key = (name.to_string(), peer);
        if !flows.contains_key(&key) {
            let conn = match pick() {
                Some(c) => c,
                None => return, // no client: dropped
            };
            let id = {
                let mut next = self.next.lock().unwrap();
                let n = next.entry(conn_key(&conn)).or_insert(0);
                *n += 1;
                *n - 1
            };
            self.by_id.lock().unwrap().insert((conn_key(&conn), id), (sock.clone(), peer, name.to_string()));
            flows.insert(key.clone(), SrvFlow { id, conn, confirmed: false });
        }
        let f = flows.get(&key).unwrap();
        let m = if f.confirmed {
            Msg::Data { flow: f.id, payload: payload.to_vec() }
        } else {
            Msg::Open { flow: f.id, service: name.to_string(), offset: 0, source: peer, payload: payload.to_vec() }
        };
        let _ = f.conn.send_datagram(m.encode().into());
    }

    /// A message from the client of `conn` (§3.2, §3.3).
    pub async fn from_client(&self, conn: &quinn::Connection, b: &[u8]) {
        let (flow, payload, close) = match decode(b) {
            Some(Msg::Data { flow, payload }) => (flow, payload, false),
            Some(Msg::Close { flow }) => (flow, Vec::new(), true),
            _ => return,
        };
        let found = self.by_id.lock().unwrap().get(&(conn_key(conn), flow)).cloned();
        let (sock, peer, name) = match found {
            Some(x) => x,
            None => return,
        };
        if let Some(f) = self.flows.lock().unwrap().get_mut(&(name, peer)) {
            f.confirmed = !close;
        }
        if !close {
            let _ = sock.send_to(&payload, peer).await;
        }
    }

    /// The connection is gone: its flows end (§4).
    pub fn conn_gone(&self, conn: &quinn::Connection) {
        let k = conn_key(conn);
        self.flows.lock().unwrap().retain(|_, f| conn_key(&f.conn) != k);
        self.by_id.lock().unwrap().retain(|(c, _), _| *c != k);
        self.next.lock().unwrap().remove(&k);
    }
}

// ---- client ---------------------------------------------------------------

/// The client's flows of one connection: a connected UDP socket each, its
/// replies sent back as FLOW_DATA.
pub async fn client_serve(conn: quinn::Connection, services: Arc<Vec<(String, (String, u16))>>) {
    let flows: Arc<Mutex<HashMap<u64, Arc<UdpSocket>>>> = Arc::new(Mutex::new(HashMap::new()));
    while let Ok(b) = conn.read_datagram().await {
        let (flow, payload) = match decode(&b) {
            Some(Msg::Open { flow, service, offset, payload, .. }) => {
                let known = flows.lock().unwrap().contains_key(&flow);
                if !known {
                    let (host, port) = match services.iter().find(|s| s.0 == service) {
                        Some((_, hp)) => hp.clone(),
                        None => continue, // not ours: dropped (§3.1)
                    };
                    if offset != 0 {
                        continue;
                    }
                    let dest = match crate::client::resolve(&host, port).await {
                        Ok(a) => a,
                        Err(_) => continue,
                    };
                    let bind: SocketAddr = if dest.is_ipv4() { "0.0.0.0:0".parse().unwrap() } else { "[::]:0".parse().unwrap() };
                    let s = match UdpSocket::bind(bind).await {
                        Ok(s) => s,
                        Err(_) => continue,
                    };
                    if s.connect(dest).await.is_err() {
                        continue;
                    }
                    let s = Arc::new(s);
                    flows.lock().unwrap().insert(flow, s.clone());
                    let c = conn.clone();
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 65536];
                        while let Ok(n) = s.recv(&mut buf).await {
                            let m = Msg::Data { flow, payload: buf[..n].to_vec() };
                            if let Err(quinn::SendDatagramError::ConnectionLost(_)) = c.send_datagram(m.encode().into()) {
                                break;
                            }
                        }
                    });
                }
                (flow, payload)
            }
            Some(Msg::Data { flow, payload }) => {
                if !flows.lock().unwrap().contains_key(&flow) {
                    // Forgotten: the server reopens it (§3.2).
                    let _ = conn.send_datagram(Msg::Close { flow }.encode().into());
                    continue;
                }
                (flow, payload)
            }
            _ => continue,
        };
        let s = flows.lock().unwrap().get(&flow).cloned();
        if let Some(s) = s {
            let _ = s.send(&payload).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// spec/10-udp.md §3.4's worked examples.
    #[test]
    fn spec_examples() {
        let open = Msg::Open {
            flow: 0,
            service: "dns".into(),
            offset: 0,
            source: "203.0.113.7:51234".parse().unwrap(),
            payload: b"hi".to_vec(),
        };
        let enc = open.encode();
        assert_eq!(enc, hex::decode("010003646e730004cb007107c8226869").unwrap());
        assert_eq!(decode(&enc), Some(open));
        assert_eq!(Msg::Data { flow: 0, payload: b"ok".to_vec() }.encode(), hex::decode("02006f6b").unwrap());
        assert_eq!(Msg::Close { flow: 70 }.encode(), hex::decode("034046").unwrap());
        assert_eq!(decode(&hex::decode("03000000").unwrap()), None);
        assert_eq!(decode(&hex::decode("0400").unwrap()), None);
    }
}
