// SPDX-License-Identifier: GPL-3.0-only
//! Control frames (spec/02-framing.md §3) and the Stream Header (§4).

use crate::varint;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Largest control frame Payload (spec/02-framing.md §3, §5).
pub const MAX_PAYLOAD: u64 = 1024;
/// Largest Stream Header, Version + Length + Fields (spec/02-framing.md §4).
pub const MAX_HEADER: u64 = 512;

pub const HELLO: u64 = 0x01;
pub const AUTH_CHALLENGE: u64 = 0x02;
pub const AUTH_RESPONSE: u64 = 0x03;
pub const AUTH_RESULT: u64 = 0x04;
pub const GOAWAY: u64 = 0x05;
pub const SERVICES: u64 = 0x06;
pub const SERVICE_REFUSED: u64 = 0x07;

/// HELLO / AUTH_RESULT Flags bit 0: named services (spec/02-framing.md §3.1).
pub const FEATURE_SERVICES: u64 = 0x01;
/// HELLO / AUTH_RESULT Flags bit 1: the client names itself in
/// AUTH_RESPONSE (spec/02-framing.md §3.1, §3.3).
pub const FEATURE_CLIENT_NAME: u64 = 0x02;
/// Longest client name (spec/02-framing.md §3.3).
pub const MAX_CLIENT_NAME: usize = 64;

/// A valid client name: 1 to 64 bytes of ASCII letters, digits, `.`, `_`
/// and `-`, not starting with `.` or `-` (spec/02-framing.md §3.3).
pub fn valid_client_name(n: &[u8]) -> bool {
    !n.is_empty()
        && n.len() <= MAX_CLIENT_NAME
        && n[0] != b'.'
        && n[0] != b'-'
        && n.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-')
}
/// HELLO Flags bit 2: UDP services in DATAGRAM frames (spec/10-udp.md §2).
pub const FEATURE_DATAGRAMS: u64 = 0x04;
/// Longest service name (spec/02-framing.md §3.7).
pub const MAX_SERVICE_NAME: usize = 63;

pub const FIELD_SOURCE: u64 = 0x01;
pub const FIELD_DESTINATION: u64 = 0x02;
pub const FIELD_SERVICE: u64 = 0x03;
pub const FIELD_PORT_OFFSET: u64 = 0x04;
/// Largest PORT_OFFSET (spec/02-framing.md §4.4).
pub const MAX_PORT_OFFSET: u64 = 65534;

/// A valid service name: 1 to 63 bytes of ASCII letters, digits, `.`, `_`
/// and `-` (spec/02-framing.md §3.7).
pub fn valid_service_name(n: &[u8]) -> bool {
    !n.is_empty()
        && n.len() <= MAX_SERVICE_NAME
        && n.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-')
}

/// Decoding outcomes other than success; the names are those of
/// spec/test-vectors/README.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    NeedMore,
    FrameTooLarge,
    FrameUnknown,
    FrameEncoding,
    VarintNonMinimal,
    HeaderEncoding,
    Version,
}

impl Error {
    pub fn name(self) -> &'static str {
        match self {
            Error::NeedMore => "NEED_MORE",
            Error::FrameTooLarge => "FRAME_TOO_LARGE",
            Error::FrameUnknown => "FRAME_UNKNOWN",
            Error::FrameEncoding => "FRAME_ENCODING",
            Error::VarintNonMinimal => "VARINT_NONMINIMAL",
            Error::HeaderEncoding => "HEADER_ENCODING",
            Error::Version => "VERSION",
        }
    }
}

/// A varint at the start of `buf`, where the end of `buf` is the end of the
/// enclosing structure: being cut off is malformed (`cut`), not NEED_MORE.
fn varint_in(buf: &[u8], cut: Error) -> Result<(u64, usize), Error> {
    match varint::decode(buf) {
        Ok(x) => Ok(x),
        Err(varint::Error::NeedMore) => Err(cut),
        Err(varint::Error::NonMinimal) => Err(Error::VarintNonMinimal),
    }
}

/// A varint at the start of received bytes: being cut off means wait.
fn varint_stream(buf: &[u8]) -> Result<(u64, usize), Error> {
    match varint::decode(buf) {
        Ok(x) => Ok(x),
        Err(varint::Error::NeedMore) => Err(Error::NeedMore),
        Err(varint::Error::NonMinimal) => Err(Error::VarintNonMinimal),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Hello { version: u64, flags: u64 },
    AuthChallenge { version: u64, challenge: Vec<u8> },
    /// `name`: the Name after the MAC where CLIENT_NAME was offered
    /// (spec/02-framing.md §3.3), any bytes; the server checks them.
    AuthResponse { mac: [u8; 32], name: Option<Vec<u8>> },
    /// `flags` is the optional Flags of spec/02-framing.md §3.4.
    AuthResult { status: u64, flags: Option<u64> },
    Goaway { code: u64 },
    Services { names: Vec<String> },
    ServiceRefused { code: u64, name: String },
}

fn encode_service_name(name: &str, out: &mut Vec<u8>) {
    varint::encode(name.len() as u64, out);
    out.extend_from_slice(name.as_bytes());
}

/// One Service Name (spec/02-framing.md §3.7) at the start of `p`, the rest
/// of a Payload; returns the name and the bytes it used.
fn service_name_in(p: &[u8]) -> Result<(String, usize), Error> {
    let cut = Error::FrameEncoding;
    let (n, a) = varint_in(p, cut)?;
    if n == 0 || n > MAX_SERVICE_NAME as u64 || n > (p.len() - a) as u64 {
        return Err(cut);
    }
    let name = &p[a..a + n as usize];
    if !valid_service_name(name) {
        return Err(cut);
    }
    // Only ASCII after the check above.
    Ok((String::from_utf8(name.to_vec()).map_err(|_| cut)?, a + n as usize))
}

impl Frame {
    pub fn name(&self) -> &'static str {
        match self {
            Frame::Hello { .. } => "HELLO",
            Frame::AuthChallenge { .. } => "AUTH_CHALLENGE",
            Frame::AuthResponse { .. } => "AUTH_RESPONSE",
            Frame::AuthResult { .. } => "AUTH_RESULT",
            Frame::Goaway { .. } => "GOAWAY",
            Frame::Services { .. } => "SERVICES",
            Frame::ServiceRefused { .. } => "SERVICE_REFUSED",
        }
    }

    /// The encoded frame: Type, Length, Payload, all varints minimal.
    pub fn encode(&self) -> Vec<u8> {
        let mut payload = Vec::new();
        let ty = match self {
            Frame::Hello { version, flags } => {
                varint::encode(*version, &mut payload);
                varint::encode(*flags, &mut payload);
                HELLO
            }
            Frame::AuthChallenge { version, challenge } => {
                varint::encode(*version, &mut payload);
                payload.extend_from_slice(challenge);
                AUTH_CHALLENGE
            }
            Frame::AuthResponse { mac, name } => {
                payload.extend_from_slice(mac);
                if let Some(n) = name {
                    payload.extend_from_slice(n);
                }
                AUTH_RESPONSE
            }
            Frame::AuthResult { status, flags } => {
                varint::encode(*status, &mut payload);
                if let Some(f) = flags {
                    varint::encode(*f, &mut payload);
                }
                AUTH_RESULT
            }
            Frame::Goaway { code } => {
                varint::encode(*code, &mut payload);
                GOAWAY
            }
            Frame::Services { names } => {
                for n in names {
                    encode_service_name(n, &mut payload);
                }
                SERVICES
            }
            Frame::ServiceRefused { code, name } => {
                varint::encode(*code, &mut payload);
                encode_service_name(name, &mut payload);
                SERVICE_REFUSED
            }
        };
        let mut out = Vec::with_capacity(payload.len() + 3);
        varint::encode(ty, &mut out);
        varint::encode(payload.len() as u64, &mut out);
        out.extend_from_slice(&payload);
        out
    }
}

/// Decodes one control frame from the start of `buf` (the bytes received so
/// far on the control stream), applying the receiver rules 1-3 of
/// spec/02-framing.md §3 in order. `features` are the HELLO Flags bits of
/// the connection (§3.1): the client's HELLO Flags until AUTH_RESULT, then
/// the negotiated ones. SERVICES and SERVICE_REFUSED are known types only
/// with FEATURE_SERVICES (§3.6); AUTH_RESULT may carry Flags, a subset of
/// `features`, only when `features` is not 0 (§3.4). Returns the frame and
/// the bytes it used.
pub fn decode_frame(buf: &[u8], features: u64) -> Result<(Frame, usize), Error> {
    let (ty, tl) = varint_stream(buf)?;
    let last = if features & FEATURE_SERVICES != 0 { SERVICE_REFUSED } else { GOAWAY };
    if !(HELLO..=last).contains(&ty) {
        return Err(Error::FrameUnknown);
    }
    let (len, ll) = varint_stream(&buf[tl..])?;
    if len > MAX_PAYLOAD {
        return Err(Error::FrameTooLarge);
    }
    let start = tl + ll;
    let end = start + len as usize;
    if buf.len() < end {
        return Err(Error::NeedMore);
    }
    let p = &buf[start..end];
    let cut = Error::FrameEncoding;
    let frame = match ty {
        HELLO => {
            let (version, a) = varint_in(p, cut)?;
            let (flags, b) = varint_in(&p[a..], cut)?;
            if a + b != p.len() {
                return Err(cut);
            }
            Frame::Hello { version, flags }
        }
        AUTH_CHALLENGE => {
            let (version, a) = varint_in(p, cut)?;
            let challenge = &p[a..];
            if challenge.len() < 32 || challenge.len() > 64 {
                return Err(cut);
            }
            Frame::AuthChallenge { version, challenge: challenge.to_vec() }
        }
        AUTH_RESPONSE => {
            // §3.3: the MAC, and with CLIENT_NAME a Name of 1..64 bytes.
            let named = features & FEATURE_CLIENT_NAME != 0;
            if (!named && p.len() != 32) || (named && (p.len() < 33 || p.len() > 32 + MAX_CLIENT_NAME)) {
                return Err(cut);
            }
            let mut mac = [0u8; 32];
            mac.copy_from_slice(&p[..32]);
            Frame::AuthResponse { mac, name: named.then(|| p[32..].to_vec()) }
        }
        AUTH_RESULT => {
            let (status, a) = varint_in(p, cut)?;
            if a == p.len() {
                Frame::AuthResult { status, flags: None }
            } else {
                if features == 0 {
                    return Err(cut); // a trailing byte (§3.4)
                }
                let (flags, b) = varint_in(&p[a..], cut)?;
                if a + b != p.len() || flags & !features != 0 {
                    return Err(cut);
                }
                Frame::AuthResult { status, flags: Some(flags) }
            }
        }
        GOAWAY => {
            let (code, a) = varint_in(p, cut)?;
            if a != p.len() {
                return Err(cut);
            }
            Frame::Goaway { code }
        }
        SERVICES => {
            if p.is_empty() {
                return Err(cut);
            }
            let mut names: Vec<String> = Vec::new();
            let mut at = 0;
            while at < p.len() {
                let (name, n) = service_name_in(&p[at..])?;
                if names.contains(&name) {
                    return Err(cut);
                }
                names.push(name);
                at += n;
            }
            Frame::Services { names }
        }
        _ => {
            // SERVICE_REFUSED
            let (code, a) = varint_in(p, cut)?;
            let (name, n) = service_name_in(&p[a..])?;
            if a + n != p.len() {
                return Err(cut);
            }
            Frame::ServiceRefused { code, name }
        }
    };
    Ok((frame, end))
}

/// A decoded Stream Header. An IPv4-mapped IPv6 address received with
/// Family 6 stays an IPv6 address here (spec/02-framing.md §4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamHeader {
    pub source: SocketAddr,
    pub destination: Option<SocketAddr>,
    /// SERVICE (spec/02-framing.md §4.4); None means `default`.
    pub service: Option<String>,
    /// PORT_OFFSET (spec/02-framing.md §4.4); None means 0.
    pub port_offset: Option<u64>,
}

/// IPv4-mapped IPv6 addresses become IPv4 (spec/02-framing.md §4.1).
pub fn unmap(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => a,
        },
        v4 => v4,
    }
}

fn encode_address(field: u64, a: SocketAddr, out: &mut Vec<u8>) {
    let a = unmap(a);
    varint::encode(field, out);
    match a.ip() {
        IpAddr::V4(ip) => {
            varint::encode(7, out);
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            varint::encode(19, out);
            out.push(6);
            out.extend_from_slice(&ip.octets());
        }
    }
    out.extend_from_slice(&a.port().to_be_bytes());
}

impl StreamHeader {
    /// The canonical encoding (spec/02-framing.md §4): SOURCE, then
    /// DESTINATION, SERVICE and PORT_OFFSET, each if present.
    pub fn encode(&self) -> Vec<u8> {
        let mut fields = Vec::new();
        encode_address(FIELD_SOURCE, self.source, &mut fields);
        if let Some(d) = self.destination {
            encode_address(FIELD_DESTINATION, d, &mut fields);
        }
        if let Some(s) = &self.service {
            varint::encode(FIELD_SERVICE, &mut fields);
            varint::encode(s.len() as u64, &mut fields);
            fields.extend_from_slice(s.as_bytes());
        }
        if let Some(o) = self.port_offset {
            let mut v = Vec::new();
            varint::encode(o, &mut v);
            varint::encode(FIELD_PORT_OFFSET, &mut fields);
            varint::encode(v.len() as u64, &mut fields);
            fields.extend_from_slice(&v);
        }
        let mut out = Vec::with_capacity(fields.len() + 3);
        varint::encode(1, &mut out);
        varint::encode(fields.len() as u64, &mut out);
        out.extend_from_slice(&fields);
        out
    }
}

fn decode_address(v: &[u8]) -> Result<SocketAddr, Error> {
    let bad = Error::HeaderEncoding;
    match (v.first(), v.len()) {
        (Some(4), 7) => {
            let ip = Ipv4Addr::new(v[1], v[2], v[3], v[4]);
            Ok(SocketAddr::new(IpAddr::V4(ip), u16::from_be_bytes([v[5], v[6]])))
        }
        (Some(6), 19) => {
            let mut o = [0u8; 16];
            o.copy_from_slice(&v[1..17]);
            let port = u16::from_be_bytes([v[17], v[18]]);
            Ok(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(o)), port))
        }
        _ => Err(bad),
    }
}

/// Decodes the Stream Header at the start of `buf` (the bytes received so
/// far on a data stream), per spec/02-framing.md §4. Returns the header and
/// its length; the bytes after it are user data.
pub fn decode_header(buf: &[u8]) -> Result<(StreamHeader, usize), Error> {
    let (version, vl) = varint_stream(buf)?;
    if version != 1 {
        return Err(Error::Version);
    }
    let (len, ll) = varint_stream(&buf[vl..])?;
    // The whole header must fit in MAX_HEADER; known as soon as Length is.
    if len > MAX_HEADER || (vl + ll) as u64 + len > MAX_HEADER {
        return Err(Error::FrameTooLarge);
    }
    let start = vl + ll;
    let end = start + len as usize;
    if buf.len() < end {
        return Err(Error::NeedMore);
    }
    let mut f = &buf[start..end];
    let bad = Error::HeaderEncoding;
    let mut source = None;
    let mut destination = None;
    let mut service: Option<String> = None;
    let mut port_offset = None;
    while !f.is_empty() {
        let (ty, a) = varint_in(f, bad)?;
        let (flen, b) = varint_in(&f[a..], bad)?;
        let vstart = a + b;
        if flen > (f.len() - vstart) as u64 {
            return Err(bad);
        }
        let value = &f[vstart..vstart + flen as usize];
        match ty {
            FIELD_SOURCE | FIELD_DESTINATION => {
                let slot = if ty == FIELD_SOURCE { &mut source } else { &mut destination };
                if slot.is_some() {
                    return Err(bad);
                }
                *slot = Some(decode_address(value)?);
            }
            FIELD_SERVICE => {
                if service.is_some() || !valid_service_name(value) {
                    return Err(bad);
                }
                service = Some(String::from_utf8(value.to_vec()).map_err(|_| bad)?);
            }
            FIELD_PORT_OFFSET => {
                if port_offset.is_some() {
                    return Err(bad);
                }
                let (o, n) = varint_in(value, bad)?;
                if n != value.len() || o > MAX_PORT_OFFSET {
                    return Err(bad);
                }
                port_offset = Some(o);
            }
            _ => {} // unknown fields are skipped (spec/02-framing.md §4)
        }
        f = &f[vstart + flen as usize..];
    }
    let source = source.ok_or(bad)?;
    Ok((StreamHeader { source, destination, service, port_offset }, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vectors;

    fn from_hex(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    /* spec/02-framing.md §3.1, §3.4, §3.5: the examples in the text. */
    #[test]
    fn text_examples() {
        let h = Frame::Hello { version: 1, flags: 0 };
        assert_eq!(h.encode(), from_hex("01 02 01 00"));
        assert_eq!(Frame::AuthResult { status: 0, flags: None }.encode(), from_hex("04 01 00"));
        assert_eq!(Frame::AuthResult { status: 4, flags: None }.encode(), from_hex("04 01 04"));
        assert_eq!(Frame::Hello { version: 1, flags: 1 }.encode(), from_hex("01 02 01 01"));
        assert_eq!(Frame::AuthResult { status: 0, flags: Some(1) }.encode(), from_hex("04 02 00 01"));
        assert_eq!(Frame::AuthResult { status: 4, flags: Some(1) }.encode(), from_hex("04 02 04 01"));
        let sv = Frame::Services { names: vec!["default".into(), "web".into()] };
        assert_eq!(sv.encode(), from_hex("06 0c 07 64 65 66 61 75 6c 74 03 77 65 62"));
        let r = Frame::ServiceRefused { code: 0x0b, name: "web".into() };
        assert_eq!(r.encode(), from_hex("07 05 0b 03 77 65 62"));
        // Without SERVICES negotiated they are unknown types; a second
        // AUTH_RESULT varint is a trailing byte.
        assert_eq!(decode_frame(&sv.encode(), 0), Err(Error::FrameUnknown));
        assert_eq!(decode_frame(&r.encode(), 0), Err(Error::FrameUnknown));
        assert_eq!(decode_frame(&from_hex("04 02 00 01"), 0), Err(Error::FrameEncoding));
        assert_eq!(decode_frame(&sv.encode(), 1), Ok((sv, 14)));
        assert_eq!(Frame::Goaway { code: 6 }.encode(), from_hex("05 01 06"));
        let ch: Vec<u8> = (0x20..0x40).collect();
        let c = Frame::AuthChallenge { version: 1, challenge: ch };
        let mut want = from_hex("02 21 01");
        want.extend(0x20u8..0x40);
        assert_eq!(c.encode(), want);
    }

    /* spec/02-framing.md §4.3: the worked examples. */
    #[test]
    fn header_text_examples() {
        let h = StreamHeader {
            source: "203.0.113.7:51234".parse().unwrap(),
            destination: Some("192.0.2.1:443".parse().unwrap()),
            service: None,
            port_offset: None,
        };
        let enc = from_hex("01 12 01 07 04 cb 00 71 07 c8 22 02 07 04 c0 00 02 01 01 bb");
        assert_eq!(h.encode(), enc);
        assert_eq!(decode_header(&enc), Ok((h, 20)));
        let h6 = StreamHeader {
            source: "[2001:db8::7]:51234".parse().unwrap(),
            destination: Some("[2001:db8::1]:443".parse().unwrap()),
            service: None,
            port_offset: None,
        };
        assert_eq!(h6.encode().len(), 44);
        assert_eq!(&h6.encode()[..2], &[0x01, 0x2a]);
        // A dual-stack listener's IPv4-mapped peer is sent as Family 4.
        let m = StreamHeader {
            source: "[::ffff:203.0.113.7]:51234".parse().unwrap(),
            destination: Some("[::ffff:192.0.2.1]:443".parse().unwrap()),
            service: None,
            port_offset: None,
        };
        assert_eq!(m.encode(), enc);
        // spec/02-framing.md §4.4: the worked example.
        let g = StreamHeader {
            source: "203.0.113.7:51234".parse().unwrap(),
            destination: Some("192.0.2.1:27017".parse().unwrap()),
            service: Some("game".into()),
            port_offset: Some(2),
        };
        let genc = from_hex(
            "01 1b 01 07 04 cb 00 71 07 c8 22 02 07 04 c0 00 02 01 69 89 03 04 67 61 6d 65 04 01 02",
        );
        assert_eq!(g.encode(), genc);
        assert_eq!(decode_header(&genc), Ok((g, 29)));
    }

    fn check_frame_fields(b: &vectors::Block, f: &Frame) {
        let name = b.get("name");
        match f {
            Frame::Hello { version, flags } => {
                assert_eq!(b.int("type"), HELLO, "{}", name);
                assert_eq!(*version, b.int("version"), "{}", name);
                assert_eq!(*flags, b.int("flags"), "{}", name);
            }
            Frame::AuthChallenge { version, challenge } => {
                assert_eq!(b.int("type"), AUTH_CHALLENGE, "{}", name);
                assert_eq!(*version, b.int("version"), "{}", name);
                assert_eq!(*challenge, b.hex("challenge"), "{}", name);
            }
            Frame::AuthResponse { mac, name: n } => {
                assert_eq!(b.int("type"), AUTH_RESPONSE, "{}", name);
                assert_eq!(mac.to_vec(), b.hex("mac"), "{}", name);
                assert_eq!(n.clone(), b.opt("client-name").map(|_| b.get("client-name").as_bytes().to_vec()), "{}", name);
            }
            Frame::AuthResult { status, flags } => {
                assert_eq!(b.int("type"), AUTH_RESULT, "{}", name);
                assert_eq!(*status, b.int("status"), "{}", name);
                assert_eq!(*flags, b.opt("flags").map(|_| b.int("flags")), "{}", name);
            }
            Frame::Goaway { code } => {
                assert_eq!(b.int("type"), GOAWAY, "{}", name);
                assert_eq!(*code, b.int("error-code"), "{}", name);
            }
            Frame::Services { names } => {
                assert_eq!(b.int("type"), SERVICES, "{}", name);
                assert_eq!(names.join(" "), b.get("services"), "{}", name);
            }
            Frame::ServiceRefused { code, name: n } => {
                assert_eq!(b.int("type"), SERVICE_REFUSED, "{}", name);
                assert_eq!(*code, b.int("error-code"), "{}", name);
                assert_eq!(n, b.get("service"), "{}", name);
            }
        }
    }

    fn frame_from_fields(b: &vectors::Block) -> Frame {
        match b.int("type") {
            HELLO => Frame::Hello { version: b.int("version"), flags: b.int("flags") },
            AUTH_CHALLENGE => Frame::AuthChallenge {
                version: b.int("version"),
                challenge: b.hex("challenge"),
            },
            AUTH_RESPONSE => {
                let mut mac = [0u8; 32];
                mac.copy_from_slice(&b.hex("mac"));
                let name = b.opt("client-name").map(|_| b.get("client-name").as_bytes().to_vec());
                Frame::AuthResponse { mac, name }
            }
            AUTH_RESULT => Frame::AuthResult {
                status: b.int("status"),
                flags: b.opt("flags").map(|_| b.int("flags")),
            },
            GOAWAY => Frame::Goaway { code: b.int("error-code") },
            SERVICES => Frame::Services {
                names: b.get("services").split(' ').map(String::from).collect(),
            },
            SERVICE_REFUSED => Frame::ServiceRefused {
                code: b.int("error-code"),
                name: b.get("service").to_string(),
            },
            t => panic!("type {}", t),
        }
    }

    /// The HELLO Flags bits the vector is decoded with
    /// (spec/test-vectors/README.md): `features`, absent means 0.
    fn features(b: &vectors::Block) -> u64 {
        b.opt("features").map_or(0, |_| b.int("features"))
    }

    /* spec/02-framing.md §3: spec/test-vectors/frames.txt, both ways. */
    #[test]
    fn frame_vectors() {
        let blocks = vectors::load("frames.txt");
        let mut with_features = 0;
        for b in &blocks {
            assert_eq!(b.get("kind"), "frame");
            let enc = b.hex("encoded");
            let feat = features(b);
            with_features += (feat != 0) as usize;
            let (f, used) = decode_frame(&enc, feat).unwrap_or_else(|e| {
                panic!("{}: {}", b.get("name"), e.name());
            });
            assert_eq!(used, enc.len(), "{}", b.get("name"));
            check_frame_fields(b, &f);
            assert_eq!(frame_from_fields(b).encode(), enc, "{}", b.get("name"));
            // Every strict prefix is incomplete, never an error.
            for i in 0..enc.len() {
                assert_eq!(decode_frame(&enc[..i], feat), Err(Error::NeedMore), "{} [..{}]", b.get("name"), i);
            }
            // SERVICES and SERVICE_REFUSED exist only where SERVICES was
            // negotiated (spec/02-framing.md §3.6).
            if matches!(f, Frame::Services { .. } | Frame::ServiceRefused { .. }) {
                assert_eq!(decode_frame(&enc, 0), Err(Error::FrameUnknown), "{}", b.get("name"));
            }
        }
        assert!(blocks.len() >= 15);
        assert!(with_features >= 5, "only {} vectors with features", with_features);
    }

    fn addr(b: &vectors::Block, which: &str) -> Option<SocketAddr> {
        let fam = b.opt(&format!("{}-family", which))?;
        let ip: IpAddr = b.get(&format!("{}-address", which)).parse().unwrap();
        let port = b.int(&format!("{}-port", which)) as u16;
        match (fam, ip) {
            ("4", IpAddr::V4(_)) | ("6", IpAddr::V6(_)) => {}
            _ => panic!("{}: family {} for {}", b.get("name"), fam, ip),
        }
        Some(SocketAddr::new(ip, port))
    }

    /* spec/02-framing.md §4: spec/test-vectors/stream-headers.txt. */
    #[test]
    fn header_vectors() {
        let blocks = vectors::load("stream-headers.txt");
        for b in &blocks {
            let name = b.get("name");
            assert_eq!(b.get("kind"), "stream-header");
            let enc = b.hex("encoded");
            let (h, used) = decode_header(&enc).unwrap_or_else(|e| panic!("{}: {}", name, e.name()));
            assert_eq!(used, enc.len(), "{}", name);
            assert_eq!(b.int("version"), 1);
            assert_eq!(Some(h.source), addr(b, "source"), "{}", name);
            assert_eq!(h.destination, addr(b, "destination"), "{}", name);
            assert_eq!(h.service.as_deref(), b.opt("service"), "{}", name);
            assert_eq!(h.port_offset, b.opt("port-offset").map(|_| b.int("port-offset")), "{}", name);
            let want = b.opt_hex("reencoded").unwrap_or_else(|| enc.clone());
            // IPv4-mapped addresses are re-encoded as Family 4 by this
            // encoder (a sender MUST), so compare those after unmapping.
            let mapped = matches!(h.source.ip(), IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some());
            if !mapped {
                assert_eq!(h.encode(), want, "{}", name);
            } else {
                let (r, _) = decode_header(&h.encode()).unwrap();
                assert_eq!(r.source, unmap(h.source), "{}", name);
            }
            for i in 0..enc.len() {
                assert_eq!(decode_header(&enc[..i]).unwrap_err(), Error::NeedMore, "{} [..{}]", name, i);
            }
        }
        assert!(blocks.len() >= 10);
    }

    /* spec/02-framing.md §2-§5: spec/test-vectors/invalid.txt. */
    #[test]
    fn invalid_vectors() {
        let blocks = vectors::load("invalid.txt");
        let mut n = 0;
        for b in &blocks {
            let name = b.get("name");
            let enc = b.hex("encoded");
            let want = b.get("error");
            let feat = features(b);
            let dec = |x: &[u8]| -> Error {
                match b.get("kind") {
                    "invalid-frame" => decode_frame(x, feat).unwrap_err(),
                    "invalid-stream-header" => decode_header(x).unwrap_err(),
                    k => panic!("kind {}", k),
                }
            };
            assert_eq!(dec(&enc).name(), want, "{}", name);
            // Every prefix gives NEED_MORE or the same error
            // (spec/test-vectors/README.md).
            for i in 0..enc.len() {
                let e = dec(&enc[..i]);
                assert!(e == Error::NeedMore || e.name() == want, "{} [..{}]: {}", name, i, e.name());
            }
            n += 1;
        }
        assert!(n >= 40, "only {} invalid vectors", n);
    }
}
