// SPDX-License-Identifier: GPL-3.0-only
//! Log lines on stderr: "<UTC time> LEVEL message".

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub const ERROR: u8 = 1;
pub const WARN: u8 = 2;
pub const INFO: u8 = 3;
pub const DEBUG: u8 = 4;

static LEVEL: AtomicU8 = AtomicU8::new(INFO);

pub fn set_level(name: &str) -> Result<(), String> {
    let l = match name {
        "off" => 0,
        "error" => ERROR,
        "warn" => WARN,
        "info" => INFO,
        "debug" | "trace" => DEBUG,
        _ => return Err(format!("--log-level: unknown level {:?}", name)),
    };
    LEVEL.store(l, Ordering::Relaxed);
    Ok(())
}

pub fn enabled(l: u8) -> bool {
    l <= LEVEL.load(Ordering::Relaxed)
}

/// Days since 1970-01-01 to a civil date (H. Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

pub fn write(l: u8, msg: std::fmt::Arguments) {
    let name = match l {
        ERROR => "ERROR",
        WARN => "WARN ",
        INFO => "INFO ",
        _ => "DEBUG",
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (y, mo, d) = civil(secs.div_euclid(86400));
    let s = secs.rem_euclid(86400);
    eprintln!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z {} {}",
        y,
        mo,
        d,
        s / 3600,
        s / 60 % 60,
        s % 60,
        now.subsec_millis(),
        name,
        msg
    );
}

#[macro_export]
macro_rules! log_at {
    ($l:expr, $($a:tt)*) => {
        if $crate::log::enabled($l) { $crate::log::write($l, format_args!($($a)*)) }
    };
}
#[macro_export]
macro_rules! log_error { ($($a:tt)*) => { $crate::log_at!($crate::log::ERROR, $($a)*) }; }
#[macro_export]
macro_rules! log_warn { ($($a:tt)*) => { $crate::log_at!($crate::log::WARN, $($a)*) }; }
#[macro_export]
macro_rules! log_info { ($($a:tt)*) => { $crate::log_at!($crate::log::INFO, $($a)*) }; }
#[macro_export]
macro_rules! log_debug { ($($a:tt)*) => { $crate::log_at!($crate::log::DEBUG, $($a)*) }; }

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates() {
        assert_eq!(super::civil(0), (1970, 1, 1));
        assert_eq!(super::civil(19723), (2024, 1, 1));
        assert_eq!(super::civil(2932896), (9999, 12, 31));
    }
}
