// SPDX-License-Identifier: GPL-3.0-only
//! Application error codes (spec/05-errors.md §2) and how connection
//! errors are described in the log.

pub const NO_ERROR: u64 = 0x00;
pub const INTERNAL_ERROR: u64 = 0x01;
pub const PROTOCOL_ERROR: u64 = 0x02;
pub const VERSION_MISMATCH: u64 = 0x03;
pub const AUTH_FAILED: u64 = 0x04;
pub const AUTH_TIMEOUT: u64 = 0x05;
pub const SHUTTING_DOWN: u64 = 0x06;
pub const DESTINATION_UNREACHABLE: u64 = 0x07;
pub const DESTINATION_RESET: u64 = 0x08;
pub const USER_RESET: u64 = 0x09;
pub const STREAM_REFUSED: u64 = 0x0a;
pub const UNKNOWN_SERVICE: u64 = 0x0b;

pub fn name(code: u64) -> &'static str {
    match code {
        NO_ERROR => "NO_ERROR",
        INTERNAL_ERROR => "INTERNAL_ERROR",
        PROTOCOL_ERROR => "PROTOCOL_ERROR",
        VERSION_MISMATCH => "VERSION_MISMATCH",
        AUTH_FAILED => "AUTH_FAILED",
        AUTH_TIMEOUT => "AUTH_TIMEOUT",
        SHUTTING_DOWN => "SHUTTING_DOWN",
        DESTINATION_UNREACHABLE => "DESTINATION_UNREACHABLE",
        DESTINATION_RESET => "DESTINATION_RESET",
        USER_RESET => "USER_RESET",
        STREAM_REFUSED => "STREAM_REFUSED",
        UNKNOWN_SERVICE => "UNKNOWN_SERVICE",
        _ => "UNKNOWN",
    }
}

/// "NAME (0x..)" for an application code.
pub fn app(code: u64) -> String {
    format!("{} (0x{:02x})", name(code), code)
}

/// Names of the transport and TLS codes of spec/05-errors.md §3.
pub fn transport(code: u64) -> String {
    let n = match code {
        0x00 => "NO_ERROR".to_string(),
        0x01 => "INTERNAL_ERROR".to_string(),
        0x02 => "CONNECTION_REFUSED".to_string(),
        0x03 => "FLOW_CONTROL_ERROR".to_string(),
        0x04 => "STREAM_LIMIT_ERROR".to_string(),
        0x0a => "PROTOCOL_VIOLATION".to_string(),
        0x0c => "APPLICATION_ERROR".to_string(),
        0x100..=0x1ff => {
            let alert = code - 0x100;
            let a = match alert {
                40 => "handshake_failure",
                42 => "bad_certificate",
                43 => "unsupported_certificate",
                44 => "certificate_revoked",
                45 => "certificate_expired",
                46 => "certificate_unknown",
                48 => "unknown_ca",
                70 => "protocol_version",
                109 => "missing_extension",
                120 => "no_application_protocol",
                _ => "alert",
            };
            format!("CRYPTO_ERROR {} ({})", a, alert)
        }
        _ => "transport error".to_string(),
    };
    format!("{} (0x{:x})", n, code)
}

/// Whether a transport code is a certificate-related TLS alert
/// (42-46, 48: spec/05-errors.md §3).
pub fn is_cert_alert(code: u64) -> bool {
    matches!(code, 0x12a..=0x12e | 0x130)
}

/// Describes why a connection ended, naming the code and its space.
pub fn describe(e: &quinn::ConnectionError) -> String {
    use quinn::ConnectionError as E;
    match e {
        E::ApplicationClosed(c) => {
            let code = c.error_code.into_inner();
            format!("peer closed the connection with {}", app(code))
        }
        E::ConnectionClosed(c) => {
            let code = u64::from(c.error_code);
            format!("peer aborted the connection with transport error {}", transport(code))
        }
        E::TransportError(t) => {
            let code = u64::from(t.code);
            format!("local transport error {}: {}", transport(code), t.reason)
        }
        E::LocallyClosed => "closed locally".to_string(),
        E::TimedOut => "idle timeout".to_string(),
        E::Reset => "stateless reset".to_string(),
        E::VersionMismatch => "QUIC version mismatch".to_string(),
    }
}

/// The application code a peer closed with, if it did.
pub fn app_close_code(e: &quinn::ConnectionError) -> Option<u64> {
    match e {
        quinn::ConnectionError::ApplicationClosed(c) => Some(c.error_code.into_inner()),
        _ => None,
    }
}

pub fn varint(code: u64) -> quinn::VarInt {
    quinn::VarInt::from_u64(code).unwrap_or(quinn::VarInt::from_u32(INTERNAL_ERROR as u32))
}
