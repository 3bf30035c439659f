// SPDX-License-Identifier: GPL-3.0-only
//! Reader for spec/test-vectors/*.txt (format: spec/test-vectors/README.md),
//! used by the unit tests only.

use std::collections::HashMap;
use std::path::PathBuf;

pub struct Block {
    fields: HashMap<String, String>,
}

impl Block {
    pub fn opt(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(|s| s.as_str())
    }

    pub fn get(&self, key: &str) -> &str {
        self.opt(key).unwrap_or_else(|| {
            panic!("vector {:?} has no {}", self.opt("name"), key)
        })
    }

    /// A *hex* value: pairs of digits, blanks ignored; empty is zero bytes.
    pub fn opt_hex(&self, key: &str) -> Option<Vec<u8>> {
        let s: String = self.opt(key)?.split_whitespace().collect();
        Some(hex::decode(s).unwrap_or_else(|e| panic!("{}: bad hex in {}: {}", self.get("name"), key, e)))
    }

    pub fn hex(&self, key: &str) -> Vec<u8> {
        self.opt_hex(key).unwrap_or_else(|| panic!("vector {} has no {}", self.get("name"), key))
    }

    /// An *integer*: decimal, or hexadecimal with 0x.
    pub fn int(&self, key: &str) -> u64 {
        let s = self.get(key);
        match s.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).unwrap(),
            None => s.parse().unwrap(),
        }
    }
}

/// The directory of the vectors: spec/test-vectors/ of this repository, or
/// $PRD_SPEC_DIR/test-vectors.
pub fn dir() -> PathBuf {
    match std::env::var_os("PRD_SPEC_DIR") {
        Some(d) => PathBuf::from(d).join("test-vectors"),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../spec/test-vectors"),
    }
}

pub fn parse(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut cur: HashMap<String, String> = HashMap::new();
    let mut last: Option<String> = None;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(Block { fields: std::mem::take(&mut cur) });
            }
            last = None;
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            let k = last.clone().expect("continuation line without a field");
            let v = cur.get_mut(&k).unwrap();
            if !v.is_empty() {
                v.push(' ');
            }
            v.push_str(line.trim());
            continue;
        }
        let (k, v) = line.split_once(':').expect("line without ':'");
        let k = k.to_string();
        assert!(!cur.contains_key(&k), "key {} twice", k);
        cur.insert(k.clone(), v.trim().to_string());
        last = Some(k);
    }
    if !cur.is_empty() {
        out.push(Block { fields: cur });
    }
    out
}

pub fn load(file: &str) -> Vec<Block> {
    let p = dir().join(file);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {}", p.display(), e));
    let blocks = parse(&text);
    assert!(!blocks.is_empty(), "{}: no vectors", p.display());
    blocks
}
