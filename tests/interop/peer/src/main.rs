// SPDX-License-Identifier: GPL-3.0-only
//! prd-interop-peer: both roles of the portredirect/1 protocol, written from
//! spec/ only, on quinn + rustls, to test interoperability.

mod auth;
mod cert;
mod client;
mod codes;
mod ctl;
mod keepalive;
mod log;
mod relay;
mod server;
mod tcppath;
mod tls;
mod udp;
#[cfg(test)]
mod vectors;
mod varint;
mod wire;

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "prd-interop-peer", version, about = "portredirect/1 peer on quinn + rustls (interop tests)")]
struct Cli {
    /// off, error, warn, info, debug
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    role: Role,
}

#[derive(Subcommand)]
enum Role {
    /// Accept TCP users and QUIC clients; one data stream per user.
    Server(ServerArgs),
    /// Dial the server, authenticate, relay streams to the destination.
    Client(ClientArgs),
}

#[derive(Args)]
struct Common {
    /// Pre-shared key (visible in ps)
    #[arg(long)]
    quic_psk: Option<String>,
    /// File holding the pre-shared key (one trailing LF or CR LF removed)
    #[arg(long)]
    quic_psk_file: Option<PathBuf>,
    /// Configuration directory (cert.der, key.der)
    #[arg(long)]
    config_dir: Option<PathBuf>,
    /// Idle timeout, seconds
    #[arg(long, default_value_t = 30.0)]
    idle_timeout: f64,
    /// PING interval, seconds (0 = off)
    #[arg(long, default_value_t = 10.0)]
    keepalive: f64,
    /// After SIGINT/SIGTERM, how long open data streams may still run,
    /// seconds (spec/04-quic-profile.md §6.2-§6.3)
    #[arg(long, default_value_t = 10.0)]
    shutdown_grace: f64,
    /// Initial maximum UDP payload (0 = quinn's default, 1200)
    #[arg(long, default_value_t = 0)]
    max_udp_payload: u16,
}

#[derive(Args)]
struct ServerArgs {
    #[arg(long, default_value = "127.0.0.1")]
    local_host: String,
    /// Listen port of the service `default` (optional with --service)
    #[arg(long)]
    local_port: Option<u16>,
    /// A named service listening on HOST:PORT (repeatable; implies
    /// --named-services; spec/02-framing.md §3.7)
    #[arg(long = "service", value_name = "NAME=HOST:PORT")]
    services: Vec<String>,
    /// Accept HELLO Flags bit 0 (named services, spec/02-framing.md §3.1,
    /// §3.4); without it the peer answers as a server of the first text
    #[arg(long)]
    named_services: bool,
    #[arg(long, default_value = "127.0.0.1")]
    quic_server_host: String,
    #[arg(long, default_value_t = 4433)]
    quic_server_port: u16,
    /// Accept QUIC over TCP paths (spec/11-tcp-path.md) on HOST:PORT, or
    /// `off`. Default off (unlike portredirect_server, whose TCP path is on
    /// by default on its QUIC port): give it to test the TCP path
    #[arg(long, value_name = "HOST:PORT|off", default_value = "off")]
    quic_tcp_listen: String,
    /// Certificate, DER (default CONFIG-DIR/cert.der)
    #[arg(long)]
    cert: Option<PathBuf>,
    /// PKCS#8 private key, DER (default CONFIG-DIR/key.der)
    #[arg(long)]
    key: Option<PathBuf>,
    /// A named client and its PSK file (repeatable; spec/03-auth.md §4.1):
    /// it authenticates with HELLO Flags bit 1 and that key. The PSK options
    /// are the client `default` (optional with --client)
    #[arg(long = "client", value_name = "NAME:PSK-FILE")]
    clients: Vec<String>,
    /// Authentication deadline, seconds
    #[arg(long, default_value_t = 5.0)]
    auth_timeout: f64,
    /// How long a user connection waits for a client, seconds
    #[arg(long, default_value_t = 5.0)]
    pending_timeout: f64,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct ClientArgs {
    #[arg(long, default_value = "127.0.0.1")]
    destination_host: String,
    /// Destination port of the service `default` (optional with --service)
    #[arg(long)]
    destination_port: Option<u16>,
    /// A named service whose streams go to HOST:PORT (repeatable; implies
    /// --named-services; spec/02-framing.md §3.7, §4.4)
    #[arg(long = "service", value_name = "NAME=HOST:PORT")]
    services: Vec<String>,
    /// Set HELLO Flags bit 0 and declare the services in SERVICES
    /// (spec/02-framing.md §3.1, §3.7); without it the peer is a client of
    /// the first text
    #[arg(long)]
    named_services: bool,
    #[arg(long, default_value = "127.0.0.1")]
    quic_remote_host: String,
    #[arg(long, default_value_t = 4433)]
    quic_remote_port: u16,
    /// udp, or tcp: every packet over a TCP path from the first one
    /// (spec/11-tcp-path.md §3.2; no `auto` fallback in this peer)
    #[arg(long, value_name = "udp|tcp", default_value = "udp")]
    quic_transport: String,
    /// Name the server certificate must carry (default: --quic-remote-host)
    #[arg(long)]
    quic_remote_hostname_match: Option<String>,
    /// Pinned server certificate, DER (default CONFIG-DIR/cert.der)
    #[arg(long)]
    server_cert: Option<PathBuf>,
    /// Data streams the server may open at once
    #[arg(long, default_value_t = 32768)]
    max_streams: u32,
    /// Exit with status 3 after N connections that failed to authenticate
    /// (0 = retry forever, as spec/07-state-machines.md §4 requires)
    #[arg(long, default_value_t = 0)]
    max_attempts: u32,
    /// Client authentication deadline, seconds
    #[arg(long, default_value_t = 10.0)]
    auth_deadline: f64,
    /// Our name in the server's client table: HELLO Flags bit 1 and the
    /// name in AUTH_RESPONSE (spec/02-framing.md §3.3, spec/03-auth.md §3)
    #[arg(long)]
    client_name: Option<String>,
    #[command(flatten)]
    common: Common,
}

fn fail(msg: String) -> ! {
    log_error!("{}", msg);
    std::process::exit(2);
}

/// --client NAME:PSK-FILE (spec/03-auth.md §4.1, §7).
fn named_client(arg: &str) -> (String, Vec<u8>) {
    let (name, file) = arg.split_once(':').unwrap_or_else(|| fail(format!("--client {}: expected NAME:PSK-FILE", arg)));
    if !wire::valid_client_name(name.as_bytes()) {
        fail(format!("--client {}: invalid client name", arg));
    }
    let b = std::fs::read(file).unwrap_or_else(|e| fail(format!("--client {}: {}", arg, e)));
    let key = auth::psk_from_file_bytes(b).unwrap_or_else(|e| fail(format!("--client {}: {}", arg, e)));
    (name.to_string(), key)
}

/// PSK sources in order of precedence (spec/06-files-and-cli.md §4).
fn psk(c: &Common) -> Vec<u8> {
    let p = if let Some(v) = &c.quic_psk {
        log_warn!("--quic-psk is visible to other users in the process list; use --quic-psk-file");
        if v.is_empty() {
            fail("--quic-psk: the PSK is empty".into());
        }
        v.as_bytes().to_vec()
    } else if let Some(f) = &c.quic_psk_file {
        let b = std::fs::read(f).unwrap_or_else(|e| fail(format!("--quic-psk-file {}: {}", f.display(), e)));
        auth::psk_from_file_bytes(b).unwrap_or_else(|e| fail(format!("--quic-psk-file {}: {}", f.display(), e)))
    } else if let Some(v) = std::env::var_os("PORTREDIRECT_PSK") {
        use std::os::unix::ffi::OsStringExt;
        let v = v.into_vec();
        if v.is_empty() {
            fail("PORTREDIRECT_PSK: the PSK is empty".into());
        }
        v
    } else {
        fail("no PSK: use --quic-psk-file, --quic-psk or PORTREDIRECT_PSK".into());
    };
    if p.len() < 16 {
        log_warn!("the PSK is only {} bytes: whoever impersonates the server can guess it offline; make one with `openssl rand -base64 32`", p.len());
    }
    p
}

/// The configuration directory (spec/06-files-and-cli.md §1.1).
fn config_dir(c: &Common) -> PathBuf {
    if let Some(d) = &c.config_dir {
        return d.clone();
    }
    match std::env::var_os("XDG_CONFIG_HOME") {
        Some(x) if !x.is_empty() && PathBuf::from(&x).is_absolute() => PathBuf::from(x).join("portredirect"),
        _ => match std::env::var_os("HOME") {
            Some(h) => PathBuf::from(h).join(".config/portredirect"),
            None => fail("no configuration directory: use --config-dir".into()),
        },
    }
}

fn secs(v: f64, opt: &str) -> Duration {
    if !(v >= 0.0 && v < 1e9) {
        fail(format!("--{}: bad number of seconds", opt));
    }
    Duration::from_secs_f64(v)
}

fn timers(c: &Common) -> tls::Timers {
    tls::Timers {
        idle: secs(c.idle_timeout, "idle-timeout"),
        keepalive: secs(c.keepalive, "keepalive"),
        grace: secs(c.shutdown_grace, "shutdown-grace"),
        max_udp_payload: c.max_udp_payload,
        datagrams: false,
    }
}

fn sockaddr(host: &str, port: u16, opt: &str) -> SocketAddr {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    let h = if h == "localhost" { "127.0.0.1" } else { h };
    match h.parse::<std::net::IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port),
        Err(_) => fail(format!("--{}: {} is not an IP address", opt, host)),
    }
}

/// `NAME=[udp:]HOST:PORT` of --service: the name (spec/02-framing.md
/// §3.7), the host, the port, and whether it is a UDP service
/// (spec/10-udp.md).
fn service_arg(v: &str) -> (String, String, u16, bool) {
    let bad = |why: &str| -> ! { fail(format!("--service {}: {}", v, why)) };
    let (name, hp) = v.split_once('=').unwrap_or_else(|| bad("expected NAME=HOST:PORT"));
    let (hp, udp) = match hp.strip_prefix("udp:") {
        Some(rest) => (rest, true),
        None => (hp, false),
    };
    if !wire::valid_service_name(name.as_bytes()) {
        bad("a name is 1 to 63 letters, digits, '.', '_' or '-'");
    }
    let (host, port) = hp.rsplit_once(':').unwrap_or_else(|| bad("expected NAME=HOST:PORT"));
    let port: u16 = port.parse().ok().filter(|p| *p != 0).unwrap_or_else(|| bad("bad port"));
    if host.is_empty() {
        bad("no host");
    }
    (name.to_string(), host.to_string(), port, udp)
}

/// The services of --service plus `default` from the port option, each name
/// once.
fn services(list: &[String], default: Option<(String, u16)>, port_opt: &str) -> Vec<(String, String, u16, bool)> {
    let mut out: Vec<(String, String, u16, bool)> = Vec::new();
    if let Some((h, p)) = default {
        out.push(("default".to_string(), h, p, false));
    }
    for v in list {
        let s = service_arg(v);
        if out.iter().any(|o| o.0 == s.0) {
            fail(format!("--service {}: service {} given twice", v, s.0));
        }
        out.push(s);
    }
    if out.is_empty() {
        fail(format!("--{} or --service is required", port_opt));
    }
    out
}

fn read_file(p: &PathBuf, what: &str) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| fail(format!("{} {}: {}", what, p.display(), e)))
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = log::set_level(&cli.log_level) {
        fail(e);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = rt.block_on(async move {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
            let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            log_info!("shutting down");
            let _ = stop_tx.send(true);
        });
        match cli.role {
            Role::Server(a) => {
                let dir = config_dir(&a.common);
                let cert = read_file(&a.cert.clone().unwrap_or_else(|| dir.join("cert.der")), "certificate");
                let key = cert::normalize_key(&read_file(&a.key.clone().unwrap_or_else(|| dir.join("key.der")), "key"));
                let svcs = services(&a.services, a.local_port.map(|p| (a.local_host.clone(), p)), "local-port");
                let clients: Vec<(String, Vec<u8>)> = a.clients.iter().map(|c| named_client(c)).collect();
                let has_psk = a.common.quic_psk.is_some()
                    || a.common.quic_psk_file.is_some()
                    || std::env::var_os("PORTREDIRECT_PSK").is_some();
                let mut timers = timers(&a.common);
                timers.datagrams = svcs.iter().any(|s| s.3);
                let opts = server::Opts {
                    services: svcs.iter().filter(|s| !s.3).map(|(n, h, p, _)| (n.clone(), sockaddr(h, *p, "service"))).collect(),
                    udp_services: svcs.iter().filter(|s| s.3).map(|(n, h, p, _)| (n.clone(), sockaddr(h, *p, "service"))).collect(),
                    named_services: a.named_services || !a.services.is_empty(),
                    quic: sockaddr(&a.quic_server_host, a.quic_server_port, "quic-server-host"),
                    quic_tcp: if a.quic_tcp_listen == "off" {
                        None
                    } else {
                        let (h, p) = a
                            .quic_tcp_listen
                            .rsplit_once(':')
                            .unwrap_or_else(|| fail(format!("--quic-tcp-listen {}: expected HOST:PORT or off", a.quic_tcp_listen)));
                        let p: u16 = p.parse().ok().filter(|p| *p != 0).unwrap_or_else(|| fail(format!("--quic-tcp-listen {}: bad port", a.quic_tcp_listen)));
                        Some(sockaddr(h, p, "quic-tcp-listen"))
                    },
                    psk: if has_psk || clients.is_empty() { psk(&a.common) } else { Vec::new() },
                    clients,
                    cert,
                    key,
                    timers,
                    auth_timeout: secs(a.auth_timeout, "auth-timeout"),
                    pending_timeout: secs(a.pending_timeout, "pending-timeout"),
                };
                server::run(opts, stop_rx).await
            }
            Role::Client(a) => {
                let dir = config_dir(&a.common);
                let pin_path = a.server_cert.clone().unwrap_or_else(|| dir.join("cert.der"));
                let pin = read_file(&pin_path, "pinned certificate");
                log_info!("pinned server certificate {}, SHA-256 fingerprint {}", pin_path.display(), cert::fingerprint(&pin));
                let name = a.quic_remote_hostname_match.clone().unwrap_or_else(|| a.quic_remote_host.clone());
                let svcs = services(
                    &a.services,
                    a.destination_port.map(|p| (a.destination_host.clone(), p)),
                    "destination-port",
                );
                let mut timers = timers(&a.common);
                timers.datagrams = svcs.iter().any(|s| s.3);
                let opts = client::Opts {
                    udp_services: svcs.iter().filter(|s| s.3).map(|(n, h, p, _)| (n.clone(), (h.clone(), *p))).collect(),
                    services: svcs.into_iter().filter(|s| !s.3).map(|(n, h, p, _)| (n, (h, p))).collect(),
                    named_services: a.named_services || !a.services.is_empty(),
                    remote: (a.quic_remote_host.clone(), a.quic_remote_port),
                    tcp: match a.quic_transport.as_str() {
                        "udp" => false,
                        "tcp" => true,
                        v => fail(format!("--quic-transport {}: expected udp or tcp", v)),
                    },
                    name,
                    psk: psk(&a.common),
                    pin,
                    timers,
                    max_streams: a.max_streams,
                    max_attempts: a.max_attempts,
                    connect_timeout: Duration::from_secs(10),
                    auth_deadline: secs(a.auth_deadline, "auth-deadline"),
                    client_name: a.client_name.clone().map(|n| {
                        if !wire::valid_client_name(n.as_bytes()) {
                            fail(format!("--client-name {}: 1-64 of A-Z a-z 0-9 . _ -, not starting with . or -", n));
                        }
                        n
                    }),
                };
                client::run(opts, stop_rx).await
            }
        }
    });
    rt.shutdown_timeout(Duration::from_millis(200));
    std::process::exit(code);
}
