// SPDX-License-Identifier: GPL-3.0-only
//! The challenge-response MAC (spec/03-auth.md §2, §3) and the PSK file
//! rule (§7).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// TLS exporter label, 26 bytes, empty context, 32 bytes out (§2).
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-portredirect-auth";
/// MAC label, 20 bytes (§3).
pub const MAC_LABEL: &[u8] = b"portredirect-auth-v1";

type HmacSha256 = Hmac<Sha256>;

fn mac_state(psk: &[u8], exporter: &[u8; 32], challenge: &[u8], name: Option<&[u8]>) -> HmacSha256 {
    // HMAC accepts keys of any length and hashes long ones (RFC 2104).
    let mut m = HmacSha256::new_from_slice(psk).expect("HMAC takes any key length");
    m.update(MAC_LABEL);
    m.update(exporter);
    m.update(challenge);
    // §3: with a client name, NameLen (1 byte) || Name.
    if let Some(n) = name {
        m.update(&[n.len() as u8]);
        m.update(n);
    }
    m
}

/// MAC = HMAC-SHA256(PSK, "portredirect-auth-v1" || E || Challenge).
#[cfg(test)]
pub fn mac(psk: &[u8], exporter: &[u8; 32], challenge: &[u8]) -> [u8; 32] {
    mac_named(psk, exporter, challenge, None)
}

/// The MAC with a client name (spec/03-auth.md §3): the message ends with
/// NameLen || Name. `None` is the unnamed MAC.
pub fn mac_named(psk: &[u8], exporter: &[u8; 32], challenge: &[u8], name: Option<&[u8]>) -> [u8; 32] {
    let out = mac_state(psk, exporter, challenge, name).finalize().into_bytes();
    let mut m = [0u8; 32];
    m.copy_from_slice(&out);
    m
}

/// Compares a received MAC with the expected one in constant time
/// (spec/08-security.md §4); `name` as for `mac_named`.
pub fn verify(psk: &[u8], exporter: &[u8; 32], challenge: &[u8], name: Option<&[u8]>, received: &[u8; 32]) -> bool {
    mac_state(psk, exporter, challenge, name).verify_slice(received).is_ok()
}

/// Reads a PSK file: the contents minus one trailing CR LF, or else one
/// trailing LF (spec/03-auth.md §7). An empty result is an error.
pub fn psk_from_file_bytes(mut b: Vec<u8>) -> Result<Vec<u8>, &'static str> {
    if b.ends_with(b"\r\n") {
        b.truncate(b.len() - 2);
    } else if b.ends_with(b"\n") {
        b.truncate(b.len() - 1);
    }
    if b.is_empty() {
        return Err("the PSK is empty");
    }
    Ok(b)
}

/// HKDF-Expand-Label of RFC 8446 §7.1 over HMAC type `M`; used by the tests
/// to check the worked examples of spec/03-auth.md §2 (a real session's
/// exporter comes from the TLS stack).
#[cfg(test)]
pub fn hkdf_expand_label<M>(secret: &[u8], label: &[u8], context: &[u8], len: usize) -> Vec<u8>
where
    M: Mac + hmac::digest::KeyInit + Clone,
{
    let mut info = Vec::new();
    info.extend_from_slice(&(len as u16).to_be_bytes());
    info.push((6 + label.len()) as u8);
    info.extend_from_slice(b"tls13 ");
    info.extend_from_slice(label);
    info.push(context.len() as u8);
    info.extend_from_slice(context);
    // HKDF-Expand (RFC 5869 §2.3).
    let mut out = Vec::new();
    let mut t: Vec<u8> = Vec::new();
    let mut i = 1u8;
    while out.len() < len {
        let mut m = <M as hmac::digest::KeyInit>::new_from_slice(secret).unwrap();
        m.update(&t);
        m.update(&info);
        m.update(&[i]);
        t = m.finalize().into_bytes().to_vec();
        out.extend_from_slice(&t);
        i += 1;
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vectors;
    use sha2::{Digest, Sha384};

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.split_whitespace().collect::<String>()).unwrap()
    }

    /* spec/03-auth.md §2: the SHA-256 and SHA-384 worked examples. */
    #[test]
    fn exporter_worked_examples() {
        let secret: Vec<u8> = (0u8..32).collect();
        let h0 = Sha256::digest(b"");
        assert_eq!(hex::encode(h0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        let s = hkdf_expand_label::<Hmac<Sha256>>(&secret, EXPORTER_LABEL, &h0, 32);
        assert_eq!(hex::encode(&s), "f4df067626224ba66d2f976332e8f8c248d4ef66ef936b97e1b6cac3c46f854e");
        let e = hkdf_expand_label::<Hmac<Sha256>>(&s, b"exporter", &h0, 32);
        assert_eq!(hex::encode(&e), "51079ace4b199b7b243c32d2c106fb4af72fee4fea5e5ec9aead348809fdba69");

        let secret: Vec<u8> = (0u8..48).collect();
        let h0 = Sha384::digest(b"");
        let s = hkdf_expand_label::<Hmac<Sha384>>(&secret, EXPORTER_LABEL, &h0, 48);
        assert_eq!(
            hex::encode(&s),
            "b313a99d2135f3fed2400b2c276e1ebba20c102c8824385ce58db79db023b7e70f1335697351076a1193945bb64d9aa6"
        );
        let e = hkdf_expand_label::<Hmac<Sha384>>(&s, b"exporter", &h0, 32);
        assert_eq!(hex::encode(&e), "9597fc0cb5c5ec19c938c25d87b08f7901b7c1a03f5768343f654d05c5d01f7e");
    }

    /* spec/03-auth.md §2: the HkdfLabel bytes of the worked example. */
    #[test]
    fn hkdf_label_bytes() {
        let want = h("0020 20 746c73313320 4558504f525445522d706f727472656469726563742d61757468
                      20 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(want.len(), 2 + 1 + 32 + 1 + 32);
        assert_eq!(EXPORTER_LABEL.len(), 26);
        assert_eq!(&want[3..9], b"tls13 ");
        assert_eq!(&want[9..35], EXPORTER_LABEL);
    }

    /* spec/03-auth.md §3 and §4: the worked example and its wire bytes. */
    #[test]
    fn mac_worked_example() {
        let mut e = [0u8; 32];
        e.copy_from_slice(&h("51079ace4b199b7b243c32d2c106fb4af72fee4fea5e5ec9aead348809fdba69"));
        let ch: Vec<u8> = (0x20u8..0x40).collect();
        let m = mac(b"ilovespezifisch", &e, &ch);
        assert_eq!(hex::encode(m), "7f1fbc24a81788d82856d337c92b371eed563849a65a7f5e5e50b67f6e69d7a3");
        assert!(verify(b"ilovespezifisch", &e, &ch, None, &m));
        let mut bad = m;
        bad[31] ^= 1;
        assert!(!verify(b"ilovespezifisch", &e, &ch, None, &bad));
        assert_eq!(MAC_LABEL, &h("70 6f 72 74 72 65 64 69 72 65 63 74 2d 61 75 74 68 2d 76 31")[..]);
        let resp = crate::wire::Frame::AuthResponse { mac: m, name: None }.encode();
        assert_eq!(resp, h("03 20 7f1fbc24a81788d82856d337c92b371eed563849a65a7f5e5e50b67f6e69d7a3"));
        // §3 with the client name alice, and spec/02-framing.md §3.3.
        let n = mac_named(b"ilovespezifisch", &e, &ch, Some(b"alice"));
        assert_eq!(hex::encode(n), "3a433c00a2d1dcf4c26f7e95689b4628675c120269d793cf3ba8da3a2d803833");
        assert!(verify(b"ilovespezifisch", &e, &ch, Some(b"alice"), &n));
        assert!(!verify(b"ilovespezifisch", &e, &ch, Some(b"alicf"), &n));
        let resp = crate::wire::Frame::AuthResponse { mac: n, name: Some(b"alice".to_vec()) }.encode();
        assert_eq!(
            resp,
            h("03 25 3a433c00a2d1dcf4c26f7e95689b4628675c120269d793cf3ba8da3a2d803833 616c696365")
        );
    }

    /* spec/03-auth.md §3: spec/test-vectors/auth.txt, byte for byte. */
    #[test]
    fn mac_vectors() {
        let blocks = vectors::load("auth.txt");
        for b in &blocks {
            assert_eq!(b.get("kind"), "auth-mac");
            let mut e = [0u8; 32];
            e.copy_from_slice(&b.hex("exporter"));
            let psk = b.hex("psk");
            let ch = b.hex("challenge");
            let name = b.opt("client-name").map(|n| n.as_bytes().to_vec());
            let mut msg = MAC_LABEL.to_vec();
            msg.extend_from_slice(&e);
            msg.extend_from_slice(&ch);
            if let Some(n) = &name {
                msg.push(n.len() as u8);
                msg.extend_from_slice(n);
            }
            assert_eq!(msg, b.hex("message"), "{}", b.get("name"));
            let m = mac_named(&psk, &e, &ch, name.as_deref());
            assert_eq!(m.to_vec(), b.hex("mac"), "{}", b.get("name"));
        }
        assert!(blocks.len() >= 5);
    }

    /* spec/03-auth.md §7: the PSK file table. */
    #[test]
    fn psk_file_rule() {
        let f = |b: &[u8]| psk_from_file_bytes(b.to_vec());
        assert_eq!(f(b"secret\n").unwrap(), b"secret");
        assert_eq!(f(b"secret\r\n").unwrap(), b"secret");
        assert_eq!(f(b"secret").unwrap(), b"secret");
        assert_eq!(f(b"secret\n\n").unwrap(), b"secret\n");
        assert_eq!(f(b"secret \n").unwrap(), b"secret ");
        assert!(f(b"\n").is_err());
        assert!(f(b"").is_err());
    }
}
