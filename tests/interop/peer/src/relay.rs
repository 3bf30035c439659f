// SPDX-License-Identifier: GPL-3.0-only
//! Relaying one data stream to a TCP connection: half-close, aborts and
//! backpressure (spec/02-framing.md §6, spec/07-state-machines.md §3).

use crate::codes;
use quinn::{ReadError, RecvStream, SendStream, WriteError};
use std::io::ErrorKind;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// Read size on either side; with the one buffer in flight per direction
/// this is the per-stream bound (§6.5): credit is returned by quinn only as
/// the application reads, and we read again only after writing.
const CHUNK: usize = 64 * 1024;

/// Why a stream was aborted.
#[derive(Debug, Clone, Copy)]
pub enum Abort {
    /// RESET_STREAM or STOP_SENDING received with this code.
    Peer(u64),
    /// Our TCP connection was reset (ECONNRESET/EPIPE): the local code.
    TcpReset(u64),
    /// Another local failure.
    Local(u64),
    /// The QUIC connection is gone.
    ConnLost,
    /// Internal to `relay`: the peer closed the connection with
    /// SHUTTING_DOWN or NO_ERROR after our FIN was sent, before its
    /// acknowledgment arrived (spec/04-quic-profile.md §6.4).
    FinUnacked,
}

fn tcp_failure(e: &std::io::Error, reset_code: u64) -> Abort {
    match e.kind() {
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted => {
            Abort::TcpReset(reset_code)
        }
        _ => Abort::Local(codes::INTERNAL_ERROR),
    }
}

/// Input half: stream -> TCP (§3.2). FIN becomes shutdown(SHUT_WR).
async fn input_half(
    recv: &mut RecvStream,
    wr: &mut OwnedWriteHalf,
    leftover: Vec<u8>,
    reset_code: u64,
    bytes: &mut u64,
) -> Result<(), Abort> {
    if !leftover.is_empty() {
        wr.write_all(&leftover).await.map_err(|e| tcp_failure(&e, reset_code))?;
        *bytes += leftover.len() as u64;
    }
    let mut buf = vec![0u8; CHUNK];
    loop {
        match recv.read(&mut buf).await {
            Ok(Some(n)) => {
                wr.write_all(&buf[..n]).await.map_err(|e| tcp_failure(&e, reset_code))?;
                *bytes += n as u64;
            }
            Ok(None) => {
                wr.shutdown().await.map_err(|e| tcp_failure(&e, reset_code))?;
                return Ok(());
            }
            Err(ReadError::Reset(code)) => return Err(Abort::Peer(code.into_inner())),
            Err(ReadError::ConnectionLost(_)) => return Err(Abort::ConnLost),
            Err(_) => return Err(Abort::Local(codes::INTERNAL_ERROR)),
        }
    }
}

/// Output half: TCP -> stream (§3.3). EOF becomes FIN; STOP_SENDING aborts
/// even while we wait for TCP bytes.
async fn output_half(
    rd: &mut OwnedReadHalf,
    send: &mut SendStream,
    reset_code: u64,
    bytes: &mut u64,
) -> Result<(), Abort> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = tokio::select! {
            r = rd.read(&mut buf) => r.map_err(|e| tcp_failure(&e, reset_code))?,
            s = send.stopped() => {
                return Err(match s {
                    Ok(code) => Abort::Peer(code.into_inner()),
                    Err(quinn::StoppedError::ConnectionLost(_)) => Abort::ConnLost,
                    Err(_) => Abort::Local(codes::INTERNAL_ERROR),
                });
            }
        };
        if n == 0 {
            // quinn 0.9: finish() completes when the peer has acknowledged
            // every byte and the FIN.
            return match send.finish().await {
                Ok(()) => Ok(()),
                Err(WriteError::ConnectionLost(quinn::ConnectionError::ApplicationClosed(c)))
                    if matches!(c.error_code.into_inner(), codes::SHUTTING_DOWN | codes::NO_ERROR) =>
                {
                    Err(Abort::FinUnacked)
                }
                Err(e) => Err(write_failure(e)),
            };
        }
        send.write_all(&buf[..n]).await.map_err(write_failure)?;
        *bytes += n as u64;
    }
}

fn write_failure(e: WriteError) -> Abort {
    match e {
        WriteError::Stopped(code) => Abort::Peer(code.into_inner()),
        WriteError::ConnectionLost(_) => Abort::ConnLost,
        _ => Abort::Local(codes::INTERNAL_ERROR),
    }
}

/// How a relayed stream ended, for the log line.
pub struct Outcome {
    pub abort: Option<Abort>,
    /// Ended normally although the peer's close came before the
    /// acknowledgment of our FIN (spec/04-quic-profile.md §6.4).
    pub fin_unacked: bool,
    pub up: u64,
    pub down: u64,
    pub secs: f64,
}

impl Outcome {
    pub fn describe(&self) -> String {
        let how = match self.abort {
            None if self.fin_unacked => "closed normally (the peer closed the connection before acknowledging our FIN)".to_string(),
            None => "closed normally".to_string(),
            Some(Abort::Peer(c)) => format!("aborted by peer: {}", codes::app(c)),
            Some(Abort::TcpReset(c)) => format!("aborted locally (TCP reset): {}", codes::app(c)),
            Some(Abort::Local(c)) => format!("aborted locally: {}", codes::app(c)),
            Some(Abort::ConnLost) | Some(Abort::FinUnacked) => "aborted: connection lost".to_string(),
        };
        format!("{}, {} bytes from stream, {} bytes to stream, {:.3} s", how, self.down, self.up, self.secs)
    }
}

/// Aborts a stream with `code`: RESET_STREAM and STOP_SENDING where still
/// due (quinn skips them when that part is already terminal).
pub fn abort_stream(send: &mut SendStream, recv: &mut RecvStream, code: u64) {
    let v = codes::varint(code);
    let _ = send.reset(v);
    let _ = recv.stop(v);
}

/// Resets a TCP connection: SO_LINGER 0, then close (spec/02-framing.md §6.3).
pub fn reset_tcp(tcp: TcpStream) {
    let _ = tcp.set_linger(Some(Duration::ZERO));
    drop(tcp);
}

/// Relays until both directions have ended or one aborts. `leftover` are
/// stream bytes already read after the Stream Header. `reset_code` is
/// USER_RESET on the server and DESTINATION_RESET on the client.
pub async fn relay(
    mut send: SendStream,
    mut recv: RecvStream,
    tcp: TcpStream,
    leftover: Vec<u8>,
    reset_code: u64,
) -> Outcome {
    let start = Instant::now();
    let _ = tcp.set_nodelay(true);
    let (mut rd, mut wr) = tcp.into_split();
    let (mut up, mut down) = (0u64, 0u64);
    let mut fin_unacked = false;
    let abort = {
        let input = input_half(&mut recv, &mut wr, leftover, reset_code, &mut down);
        let output = output_half(&mut rd, &mut send, reset_code, &mut up);
        tokio::pin!(input, output);
        let (mut idone, mut odone) = (false, false);
        loop {
            tokio::select! {
                r = &mut input, if !idone => match r {
                    Ok(()) => idone = true,
                    Err(a) => break Some(a),
                },
                r = &mut output, if !odone => match r {
                    Ok(()) => odone = true,
                    Err(Abort::FinUnacked) => {
                        // A graceful close after our FIN went out: the
                        // stream is complete if the peer's direction had
                        // ended too (its FIN received); else it is aborted
                        // like any stream a close cuts
                        // (spec/04-quic-profile.md §6.4). quinn 0.9 keeps
                        // what it received readable after a close and fails
                        // a read only once nothing is left: the input half
                        // either delivers everything up to the FIN or fails.
                        if !idone {
                            if let Err(a) = (&mut input).await {
                                break Some(a);
                            }
                            idone = true;
                        }
                        odone = true;
                        fin_unacked = true;
                    }
                    Err(a) => break Some(a),
                },
            }
            if idone && odone {
                break None;
            }
        }
    };
    match abort {
        None => {
            // Both halves CLOSED: close the socket normally (§3.4).
            drop(rd);
            drop(wr);
        }
        Some(a) => {
            let code = match a {
                Abort::Peer(c) | Abort::TcpReset(c) | Abort::Local(c) => c,
                Abort::ConnLost | Abort::FinUnacked => codes::INTERNAL_ERROR,
            };
            if !matches!(a, Abort::ConnLost | Abort::FinUnacked) {
                abort_stream(&mut send, &mut recv, code);
            }
            match rd.reunite(wr) {
                Ok(tcp) => {
                    if matches!(a, Abort::TcpReset(_)) {
                        drop(tcp); // its own reset: just close
                    } else {
                        reset_tcp(tcp);
                    }
                }
                Err(_) => {}
            }
        }
    }
    Outcome { abort, fin_unacked, up, down, secs: start.elapsed().as_secs_f64() }
}

/// The pause between the last stream's end and CONNECTION_CLOSE in a drain:
/// max(100 ms, 3 PTO), the PTO estimated from quinn's smoothed RTT as
/// 1.5 RTT + 25 ms (RFC 9002 §6.2.1 with rttvar = RTT/8 and the default
/// max_ack_delay). It gives a receiver whose stack discards unread data on
/// close time to read what it acknowledged (spec/04-quic-profile.md §6.2).
pub fn linger(rtt: Duration) -> Duration {
    let pto = rtt * 3 / 2 + Duration::from_millis(25);
    (pto * 3).max(Duration::from_millis(100))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linger_is_max_of_100ms_and_3_pto() {
        assert_eq!(linger(Duration::ZERO), Duration::from_millis(100));
        assert_eq!(linger(Duration::from_millis(1)), Duration::from_millis(100));
        // PTO 1.5 * 100 + 25 = 175 ms.
        assert_eq!(linger(Duration::from_millis(100)), Duration::from_millis(525));
    }
}
