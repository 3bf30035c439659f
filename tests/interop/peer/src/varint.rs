// SPDX-License-Identifier: GPL-3.0-only
//! QUIC variable-length integers with portredirect's minimal-encoding rule
//! (spec/02-framing.md §2).

/// Largest value a varint can hold, 2^62 - 1.
pub const MAX: u64 = (1u64 << 62) - 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The bytes end before the varint does (spec/02-framing.md §2: wait).
    NeedMore,
    /// Longer than the shortest encoding of its value.
    NonMinimal,
}

/// Number of bytes of the minimal encoding of `v`.
pub fn encoded_len(v: u64) -> usize {
    if v < 1 << 6 {
        1
    } else if v < 1 << 14 {
        2
    } else if v < 1 << 30 {
        4
    } else {
        8
    }
}

/// Appends the minimal encoding of `v` (which must be at most MAX).
pub fn encode(v: u64, out: &mut Vec<u8>) {
    assert!(v <= MAX, "varint out of range");
    match encoded_len(v) {
        1 => out.push(v as u8),
        2 => out.extend_from_slice(&((v as u16) | 0x4000).to_be_bytes()),
        4 => out.extend_from_slice(&((v as u32) | 0x8000_0000).to_be_bytes()),
        _ => out.extend_from_slice(&(v | 0xc000_0000_0000_0000).to_be_bytes()),
    }
}

/// Decodes one varint from the start of `buf`: the value and the bytes used.
pub fn decode(buf: &[u8]) -> Result<(u64, usize), Error> {
    let first = *buf.first().ok_or(Error::NeedMore)?;
    let len = 1usize << (first >> 6);
    if buf.len() < len {
        return Err(Error::NeedMore);
    }
    let mut v = u64::from(first & 0x3f);
    for b in &buf[1..len] {
        v = (v << 8) | u64::from(*b);
    }
    if encoded_len(v) != len {
        return Err(Error::NonMinimal);
    }
    Ok((v, len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vectors;

    /* spec/02-framing.md §2: the table of examples. */
    #[test]
    fn spec_examples() {
        let cases: &[(u64, &str)] = &[
            (0, "00"),
            (37, "25"),
            (63, "3f"),
            (64, "4040"),
            (15293, "7bbd"),
            (16384, "80004000"),
            (494878333, "9d7f3e7d"),
            (1073741824, "c000000040000000"),
            (151288809941952652, "c2197c5eff14e88c"),
            (4611686018427387903, "ffffffffffffffff"),
        ];
        for (v, h) in cases {
            let mut out = Vec::new();
            encode(*v, &mut out);
            assert_eq!(hex::encode(&out), *h, "encode {}", v);
            assert_eq!(decode(&out), Ok((*v, out.len())));
        }
        assert_eq!(decode(&[0x40, 0x25]), Err(Error::NonMinimal));
        assert_eq!(decode(&[0x80, 0, 0, 1]), Err(Error::NonMinimal));
    }

    /* spec/02-framing.md §2: spec/test-vectors/varints.txt, byte for byte. */
    #[test]
    fn test_vectors() {
        let blocks = vectors::load("varints.txt");
        let mut n = 0;
        for b in &blocks {
            let enc = b.hex("encoded");
            match b.get("kind") {
                "varint" => {
                    let v = b.int("value");
                    let mut out = Vec::new();
                    encode(v, &mut out);
                    assert_eq!(out, enc, "{}", b.get("name"));
                    assert_eq!(decode(&enc), Ok((v, enc.len())), "{}", b.get("name"));
                }
                "invalid-varint" => {
                    let want = match b.get("error") {
                        "NEED_MORE" => Error::NeedMore,
                        "VARINT_NONMINIMAL" => Error::NonMinimal,
                        e => panic!("unexpected error {}", e),
                    };
                    assert_eq!(decode(&enc).unwrap_err(), want, "{}", b.get("name"));
                }
                k => panic!("unexpected kind {}", k),
            }
            n += 1;
        }
        assert!(n >= 20, "only {} varint vectors", n);
    }
}
