// SPDX-License-Identifier: GPL-3.0-only
//! Reading control frames from stream 0 (spec/02-framing.md §1.1, §3).

use crate::wire::{self, Frame};
use quinn::{ReadError, RecvStream};

pub enum CtlError {
    /// A malformed frame: close with PROTOCOL_ERROR.
    Malformed(wire::Error),
    /// FIN or RESET_STREAM on stream 0: close with PROTOCOL_ERROR.
    StreamEnded(&'static str),
    /// The connection is gone.
    ConnLost(quinn::ConnectionError),
}

impl CtlError {
    pub fn describe(&self) -> String {
        match self {
            CtlError::Malformed(e) => format!("malformed control frame ({})", e.name()),
            CtlError::StreamEnded(s) => format!("{} on the control stream", s),
            CtlError::ConnLost(e) => crate::codes::describe(e),
        }
    }
}

pub struct FrameReader {
    recv: RecvStream,
    buf: Vec<u8>,
    /// The HELLO Flags bits frames are decoded with (wire::decode_frame).
    pub features: u64,
}

impl FrameReader {
    pub fn new(recv: RecvStream) -> Self {
        FrameReader { recv, buf: Vec::with_capacity(2048), features: 0 }
    }

    /// The next complete frame. Cancel-safe: bytes are only appended after
    /// a read returns.
    pub async fn next(&mut self) -> Result<Frame, CtlError> {
        let mut tmp = [0u8; 2048];
        loop {
            match wire::decode_frame(&self.buf, self.features) {
                Ok((f, used)) => {
                    self.buf.drain(..used);
                    return Ok(f);
                }
                Err(wire::Error::NeedMore) => {}
                Err(e) => return Err(CtlError::Malformed(e)),
            }
            // A valid frame is at most 1027 bytes (§3): never buffer more.
            let room = 1040 - self.buf.len().min(1040);
            match self.recv.read(&mut tmp[..room.max(1)]).await {
                Ok(Some(n)) => self.buf.extend_from_slice(&tmp[..n]),
                Ok(None) => return Err(CtlError::StreamEnded("FIN")),
                Err(ReadError::Reset(_)) => return Err(CtlError::StreamEnded("RESET_STREAM")),
                Err(ReadError::ConnectionLost(e)) => return Err(CtlError::ConnLost(e)),
                Err(_) => return Err(CtlError::StreamEnded("read error")),
            }
        }
    }
}
