// SPDX-License-Identifier: GPL-3.0-only
//! Certificate pinning and the subjectAltName check (spec/03-auth.md §8),
//! with a minimal DER reader (no X.509 crate is packaged in Debian 12).

use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

/// SHA-256 of the DER, upper-case hex pairs joined by colons
/// (spec/06-files-and-cli.md §2.1).
pub fn fingerprint(der: &[u8]) -> String {
    let d = Sha256::digest(der);
    d.iter().map(|b| format!("{:02X}", b)).collect::<Vec<_>>().join(":")
}

/// One DER TLV: tag byte, value, and the rest after it.
fn tlv(buf: &[u8]) -> Result<(u8, &[u8], &[u8]), &'static str> {
    let tag = *buf.first().ok_or("truncated DER")?;
    if tag & 0x1f == 0x1f {
        return Err("multi-byte DER tag");
    }
    let l0 = *buf.get(1).ok_or("truncated DER")?;
    let (len, hl) = if l0 < 0x80 {
        (l0 as usize, 2)
    } else {
        let n = (l0 & 0x7f) as usize;
        if n == 0 || n > 4 || buf.len() < 2 + n {
            return Err("bad DER length");
        }
        let mut l = 0usize;
        for b in &buf[2..2 + n] {
            l = (l << 8) | *b as usize;
        }
        (l, 2 + n)
    };
    if buf.len() - hl < len {
        return Err("truncated DER");
    }
    Ok((tag, &buf[hl..hl + len], &buf[hl + len..]))
}

fn der(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = value.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let b = (n as u32).to_be_bytes();
        let skip = b.iter().take_while(|x| **x == 0).count();
        out.push(0x80 | (4 - skip) as u8);
        out.extend_from_slice(&b[skip..]);
    }
    out.extend_from_slice(value);
    out
}

const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

/// key.der with the ECPrivateKey privateKey normalised to 32 bytes for a
/// P-256 key (spec/06-files-and-cli.md §2.1): a 33-byte value with a
/// leading zero, or a shorter one, is what GnuTLS 3.7 writes; RFC 5915 and
/// ring want exactly ceiling(log2(n)/8) = 32 bytes. Anything else is
/// returned unchanged, for the TLS library to judge.
pub fn normalize_key(key: &[u8]) -> Vec<u8> {
    fn go(key: &[u8]) -> Result<Option<Vec<u8>>, &'static str> {
        let (t, outer, _) = tlv(key)?;
        if t != 0x30 {
            return Ok(None);
        }
        let (t1, ver, r) = tlv(outer)?;
        let (t2, alg, r2) = tlv(r)?;
        let (t3, pk, attrs) = tlv(r2)?;
        if t1 != 0x02 || t2 != 0x30 || t3 != 0x04 {
            return Ok(None);
        }
        let (_, oid, _) = tlv(alg)?;
        if oid != OID_EC_PUBLIC_KEY {
            return Ok(None);
        }
        let (t, ec, _) = tlv(pk)?;
        let (ti, ecver, er) = tlv(ec)?;
        let (tp, private, rest) = tlv(er)?;
        if t != 0x30 || ti != 0x02 || tp != 0x04 || private.len() == 32 {
            return Ok(None);
        }
        let scalar: Vec<u8> = if private.len() > 32 {
            if private[..private.len() - 32].iter().any(|b| *b != 0) {
                return Ok(None);
            }
            private[private.len() - 32..].to_vec()
        } else {
            let mut v = vec![0u8; 32 - private.len()];
            v.extend_from_slice(private);
            v
        };
        let mut inner = der(0x02, ecver);
        inner.extend(der(0x04, &scalar));
        inner.extend_from_slice(rest);
        let mut body = der(0x02, ver);
        body.extend(der(0x30, alg));
        body.extend(der(0x04, &der(0x30, &inner)));
        body.extend_from_slice(attrs);
        Ok(Some(der(0x30, &body)))
    }
    match go(key) {
        Ok(Some(k)) => {
            crate::log_info!("key.der: ECPrivateKey privateKey normalised to 32 bytes (RFC 5915)");
            k
        }
        _ => key.to_vec(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum San {
    Dns(String),
    Ip(Vec<u8>),
}

const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11]; // 2.5.29.17

/// The dNSName and iPAddress entries of the leaf's subjectAltName.
pub fn sans(der: &[u8]) -> Result<Vec<San>, &'static str> {
    let (t, cert, _) = tlv(der)?;
    if t != 0x30 {
        return Err("certificate is not a SEQUENCE");
    }
    let (t, tbs, _) = tlv(cert)?;
    if t != 0x30 {
        return Err("tbsCertificate is not a SEQUENCE");
    }
    let mut rest = tbs;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (t, v, r) = tlv(rest)?;
        rest = r;
        if t != 0xa3 {
            continue; // [3] EXPLICIT Extensions
        }
        let (_, mut exts, _) = tlv(v)?;
        while !exts.is_empty() {
            let (_, ext, r) = tlv(exts)?;
            exts = r;
            let (t, oid, mut er) = tlv(ext)?;
            if t != 0x06 || oid != OID_SAN {
                continue;
            }
            let (mut t, mut val, r) = tlv(er)?;
            if t == 0x01 {
                // critical BOOLEAN
                er = r;
                let x = tlv(er)?;
                t = x.0;
                val = x.1;
            }
            if t != 0x04 {
                return Err("extnValue is not an OCTET STRING");
            }
            let (t, mut names, _) = tlv(val)?;
            if t != 0x30 {
                return Err("GeneralNames is not a SEQUENCE");
            }
            while !names.is_empty() {
                let (t, v, r) = tlv(names)?;
                names = r;
                match t {
                    0x82 => out.push(San::Dns(String::from_utf8_lossy(v).into_owned())),
                    0x87 => out.push(San::Ip(v.to_vec())),
                    _ => {}
                }
            }
        }
    }
    Ok(out)
}

/// Whether a SAN list names N (spec/03-auth.md §8.1 check 3).
pub fn name_matches(sans: &[San], n: &str) -> bool {
    let lit = n.strip_prefix('[').and_then(|s| s.strip_suffix(']')).unwrap_or(n);
    if let Ok(ip) = lit.parse::<IpAddr>() {
        let want = match ip {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        return sans.iter().any(|s| matches!(s, San::Ip(b) if *b == want));
    }
    sans.iter().any(|s| match s {
        San::Dns(d) => dns_match(d, n),
        San::Ip(_) => false,
    })
}

fn dns_match(san: &str, n: &str) -> bool {
    if san.eq_ignore_ascii_case(n) {
        return true;
    }
    // A SAN whose complete leftmost label is "*", followed by at least two
    // more labels, matches exactly one (non-empty) label in that position.
    match (san.split_once('.'), n.split_once('.')) {
        (Some(("*", srest)), Some((first, nrest))) => {
            srest.contains('.') && !first.is_empty() && srest.eq_ignore_ascii_case(nrest)
        }
        _ => false,
    }
}

/// The client's verifier: pin, then name; rustls still checks the
/// CertificateVerify signature (check 4) with its default method.
pub struct PinVerifier {
    /// The pin, or None for trust on first use (not used by the matrix).
    pub pin: Vec<u8>,
    pub name: String,
}

impl rustls::client::ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::Certificate,
        _intermediates: &[rustls::Certificate],
        _server_name: &rustls::ServerName,
        _scts: &mut dyn Iterator<Item = &[u8]>,
        _ocsp: &[u8],
        _now: SystemTime,
    ) -> Result<rustls::client::ServerCertVerified, rustls::Error> {
        if end_entity.0 != self.pin {
            crate::log_error!(
                "server certificate rejected (pin mismatch): pinned SHA-256 {}, presented {}",
                fingerprint(&self.pin),
                fingerprint(&end_entity.0)
            );
            return Err(rustls::Error::InvalidCertificateData("pin mismatch".into()));
        }
        let list = sans(&end_entity.0).map_err(|e| {
            crate::log_error!("server certificate rejected: cannot read its subjectAltName: {}", e);
            rustls::Error::InvalidCertificateData(e.into())
        })?;
        if !name_matches(&list, &self.name) {
            crate::log_error!(
                "server certificate rejected (name mismatch): no subjectAltName matches {:?} (SANs {:?}), SHA-256 {}",
                self.name,
                list,
                fingerprint(&end_entity.0)
            );
            return Err(rustls::Error::InvalidCertificateData("name mismatch".into()));
        }
        Ok(rustls::client::ServerCertVerified::assertion())
    }

    fn request_scts(&self) -> bool {
        false
    }
}

pub fn verifier(pin: Vec<u8>, name: String) -> Arc<PinVerifier> {
    Arc::new(PinVerifier { pin, name })
}

#[cfg(test)]
mod tests {
    use super::*;

    /* spec/03-auth.md §8.1 check 3: IP literals and DNS names. */
    #[test]
    fn names() {
        let s = vec![
            San::Ip(vec![127, 0, 0, 1]),
            San::Dns("LocalHost".into()),
            San::Ip([0u8; 15].iter().copied().chain([1u8]).collect()),
            San::Dns("*.example.org".into()),
        ];
        assert!(name_matches(&s, "127.0.0.1"));
        assert!(name_matches(&s, "localhost"));
        assert!(name_matches(&s, "::1"));
        assert!(name_matches(&s, "[::1]"));
        assert!(name_matches(&s, "a.example.org"));
        assert!(!name_matches(&s, "a.b.example.org"));
        assert!(!name_matches(&s, "example.org"));
        assert!(!name_matches(&s, "127.0.0.2"));
        assert!(!name_matches(&[San::Dns("127.0.0.1".into())], "127.0.0.1"));
        assert!(!name_matches(&s, "localhost.localdomain"));
        // "*" needs two more labels; no trailing-dot folding.
        assert!(!name_matches(&[San::Dns("*.org".into())], "example.org"));
        assert!(!name_matches(&[San::Dns("*".into())], "single"));
        assert!(!name_matches(&[San::Dns("f*.example.net".into())], "f.example.net"));
        assert!(!name_matches(&[San::Dns("single".into())], "single."));
        assert!(name_matches(&[San::Dns("single.".into())], "single."));
        // A "*" that is not the whole leftmost label is no wildcard; the
        // wildcard matches one non-empty label; no IDNA
        // (spec/09-implementation-notes.md §2.3).
        let px = [San::Dns("*x.example.org".into())];
        assert!(!name_matches(&px, "ax.example.org"));
        assert!(!name_matches(&px, "x.example.org"));
        assert!(name_matches(&px, "*x.example.org"));
        assert!(!name_matches(&s, ".example.org"));
        assert!(!name_matches(&[San::Dns("xn--bcher-kva.example".into())], "bücher.example"));
    }

    /* spec/06-files-and-cli.md §2.1: fingerprint format, 95 characters. */
    #[test]
    fn fingerprint_format() {
        let f = fingerprint(b"");
        assert_eq!(f.len(), 95);
        assert!(f.starts_with("E3:B0:C4:42"));
    }

    /* spec/06-files-and-cli.md §2.1: a 33-byte privateKey with a leading
     * zero is normalised to 32 bytes; a 32-byte one is left alone. */
    #[test]
    fn key_normalisation() {
        let scalar: Vec<u8> = (0x80u8..0xa0).collect();
        let mk = |p: &[u8]| {
            let mut ec = der(0x02, &[1]);
            ec.extend(der(0x04, p));
            ec.extend(der(0xa0, &der(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07])));
            let mut alg = der(0x06, OID_EC_PUBLIC_KEY);
            alg.extend(der(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]));
            let mut body = der(0x02, &[0]);
            body.extend(der(0x30, &alg));
            body.extend(der(0x04, &der(0x30, &ec)));
            der(0x30, &body)
        };
        let good = mk(&scalar);
        let mut long = vec![0u8];
        long.extend_from_slice(&scalar);
        assert_eq!(normalize_key(&mk(&long)), good);
        assert_eq!(normalize_key(&good), good);
        let short: Vec<u8> = scalar[1..].to_vec();
        let mut padded = vec![0u8];
        padded.extend_from_slice(&short);
        assert_eq!(normalize_key(&mk(&short)), mk(&padded));
        let mut bad = vec![1u8];
        bad.extend_from_slice(&scalar);
        assert_eq!(normalize_key(&mk(&bad)), mk(&bad));
    }

    #[test]
    fn der_reader() {
        // A minimal certificate-shaped structure holding one SAN extension
        // with a dNSName "a" and an iPAddress 10.0.0.1.
        let gn = [0x30, 0x09, 0x82, 0x01, b'a', 0x87, 0x04, 10, 0, 0, 1];
        let mut octet = vec![0x04, gn.len() as u8];
        octet.extend_from_slice(&gn);
        let mut ext = vec![0x06, 0x03, 0x55, 0x1d, 0x11];
        ext.extend_from_slice(&octet);
        let mut ext_seq = vec![0x30, ext.len() as u8];
        ext_seq.extend_from_slice(&ext);
        let mut exts = vec![0x30, ext_seq.len() as u8];
        exts.extend_from_slice(&ext_seq);
        let mut a3 = vec![0xa3, exts.len() as u8];
        a3.extend_from_slice(&exts);
        let mut tbs = vec![0x30, (a3.len() + 3) as u8, 0x02, 0x01, 0x01];
        tbs.extend_from_slice(&a3);
        let mut cert = vec![0x30, tbs.len() as u8];
        cert.extend_from_slice(&tbs);
        assert_eq!(sans(&cert).unwrap(), vec![San::Dns("a".into()), San::Ip(vec![10, 0, 0, 1])]);
        assert!(sans(&cert[..cert.len() - 1]).is_err());
    }
}
