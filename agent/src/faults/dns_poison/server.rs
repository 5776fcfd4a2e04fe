//! The embedded resolver of resolver mode: answers poisoned names itself (an address,
//! NXDOMAIN, SERVFAIL, or silence) and relays every other query to the host's real upstream
//! servers, over UDP and TCP.
//!
//! It runs on a thread of its own with a single-threaded tokio runtime, so it works the same
//! whether the caller is inside the agent's runtime, a blocking task or a plain test thread,
//! and it lives in the network namespace of the thread that started it.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::answer::Poison;
use super::forward::{expire, on_query, on_tcp_client, on_upstream, Pending, Sockets};
use crate::os::dns::{DnsOsError, DnsSockets};

/// How often forwarded queries are checked for an upstream that did not answer.
const SWEEP: Duration = Duration::from_millis(50);
/// How many ports to try when the kernel picks one that is free for UDP but not for TCP.
const BIND_ATTEMPTS: usize = 8;

/// How the resolver is set up.
#[derive(Clone, Debug)]
pub struct Settings {
    /// What to poison.
    pub poison: Poison,
    /// The real upstream servers, tried in order.
    pub upstream: Vec<SocketAddr>,
    /// How long to wait for one upstream before trying the next.
    pub upstream_timeout: Duration,
    /// Firewall mark on upstream sockets (exempt from the redirect).
    pub mark: u32,
    /// Port on loopback; 0 lets the kernel choose a free one.
    pub listen_port: u16,
}

/// What the resolver did, counted as it went.
#[derive(Debug, Default)]
pub(super) struct Stats {
    pub(super) answered: AtomicU64,
    pub(super) dropped: AtomicU64,
    pub(super) forwarded: AtomicU64,
    pub(super) failed: AtomicU64,
}

/// A snapshot of what the resolver did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Figures {
    /// Poisoned queries answered (address, NXDOMAIN or SERVFAIL).
    pub answered: u64,
    /// Poisoned queries left unanswered (the timeout answer).
    pub dropped: u64,
    /// Other queries sent on to an upstream.
    pub forwarded: u64,
    /// Forwarded queries no upstream answered in time (or that could not be sent).
    pub failed: u64,
}

impl Stats {
    fn figures(&self) -> Figures {
        Figures {
            answered: self.answered.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            forwarded: self.forwarded.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

/// Counts one.
pub(super) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A running resolver. Dropping it asks it to stop without waiting.
#[derive(Debug)]
pub struct Server {
    stop: watch::Sender<bool>,
    done: mpsc::Receiver<()>,
    stats: Arc<Stats>,
    port: u16,
    ipv6: bool,
}

/// The bound sockets, before they move to the server's thread.
struct Bound {
    udp4: std::net::UdpSocket,
    tcp4: std::net::TcpListener,
    v6: Option<(std::net::UdpSocket, std::net::TcpListener)>,
    port: u16,
}

fn bind(sockets: &dyn DnsSockets, wanted: u16) -> Result<Bound, DnsOsError> {
    let v4 = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let v6 = |port| SocketAddr::from((Ipv6Addr::LOCALHOST, port));
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = (|| {
            let udp4 = sockets.listen_udp(v4(wanted))?;
            let port = udp4.local_addr().map_or(wanted, |a| a.port());
            let tcp4 = sockets.listen_tcp(v4(port))?;
            // IPv6 is redirected only when the resolver listens on ::1; a host without IPv6
            // loopback keeps its (absent) IPv6 DNS untouched.
            let v6 = match sockets.listen_udp(v6(port)) {
                Ok(udp6) => Some((udp6, sockets.listen_tcp(v6(port))?)),
                Err(e) if e.is_addr_unavailable() => None,
                Err(e) => return Err(e),
            };
            Ok(Bound {
                udp4,
                tcp4,
                v6,
                port,
            })
        })();
        match result {
            // A kernel-chosen UDP port can be taken for TCP: choose again.
            Err(e) if wanted == 0 && e.is_addr_in_use() && attempt < BIND_ATTEMPTS => continue,
            other => return other,
        }
    }
}

fn nonblocking(what: &str, r: std::io::Result<()>) -> Result<(), DnsOsError> {
    r.map_err(|source| DnsOsError::Socket {
        what: format!("make {what} non-blocking"),
        source,
    })
}

impl Server {
    /// Binds the listening and upstream sockets (in the calling thread's network namespace)
    /// and starts serving on a thread of its own.
    pub fn start(settings: Settings, sockets: Arc<dyn DnsSockets>) -> Result<Server, DnsOsError> {
        let bound = bind(sockets.as_ref(), settings.listen_port)?;
        let up4 = if settings.upstream.iter().any(SocketAddr::is_ipv4) {
            Some(sockets.upstream_udp(false, settings.mark)?)
        } else {
            None
        };
        let up6 = if settings.upstream.iter().any(SocketAddr::is_ipv6) {
            Some(sockets.upstream_udp(true, settings.mark)?)
        } else {
            None
        };
        nonblocking("the UDP listener", bound.udp4.set_nonblocking(true))?;
        nonblocking("the TCP listener", bound.tcp4.set_nonblocking(true))?;
        if let Some((u, t)) = &bound.v6 {
            nonblocking("the UDP listener", u.set_nonblocking(true))?;
            nonblocking("the TCP listener", t.set_nonblocking(true))?;
        }
        for up in up4.iter().chain(up6.iter()) {
            nonblocking("an upstream socket", up.set_nonblocking(true))?;
        }
        let (stop, stop_rx) = watch::channel(false);
        let (done_tx, done) = mpsc::channel();
        let stats = Arc::new(Stats::default());
        let port = bound.port;
        let ipv6 = bound.v6.is_some();
        let thread_stats = stats.clone();
        std::thread::Builder::new()
            .name(format!("dns-poison-{port}"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                match runtime {
                    Ok(rt) => {
                        let served = rt.block_on(serve(
                            bound,
                            [up4, up6],
                            settings,
                            sockets,
                            thread_stats,
                            stop_rx,
                        ));
                        if let Err(e) = served {
                            tracing::error!(error = %e, "embedded resolver failed");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "cannot start the embedded resolver"),
                }
                let _ = done_tx.send(());
            })
            .map_err(|source| DnsOsError::Socket {
                what: "start the embedded resolver's thread".into(),
                source,
            })?;
        Ok(Server {
            stop,
            done,
            stats,
            port,
            ipv6,
        })
    }

    /// The port it listens on, on 127.0.0.1 (and ::1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether it also listens on ::1.
    pub fn ipv6(&self) -> bool {
        self.ipv6
    }

    /// Stops it and waits up to `grace`; `Err` (with the figures all the same) when it did
    /// not stop in time.
    pub fn stop(self, grace: Duration) -> Result<Figures, Figures> {
        let _ = self.stop.send(true);
        // Disconnected without a word (the thread panicked) is stopped too.
        let stopped = !matches!(
            self.done.recv_timeout(grace),
            Err(mpsc::RecvTimeoutError::Timeout)
        );
        let figures = self.stats.figures();
        if stopped {
            Ok(figures)
        } else {
            Err(figures)
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn recv(socket: Option<&UdpSocket>, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// The serving loop: every socket, the expiry sweep and the TCP clients, until told to stop.
async fn serve(
    bound: Bound,
    [up4, up6]: [Option<std::net::UdpSocket>; 2],
    settings: Settings,
    factory: Arc<dyn DnsSockets>,
    stats: Arc<Stats>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let (udp6, tcp6) = match bound.v6 {
        Some((u, t)) => (
            Some(UdpSocket::from_std(u)?),
            Some(TcpListener::from_std(t)?),
        ),
        None => (None, None),
    };
    let s = Sockets {
        udp4: UdpSocket::from_std(bound.udp4)?,
        udp6,
        up4: up4.map(UdpSocket::from_std).transpose()?,
        up6: up6.map(UdpSocket::from_std).transpose()?,
    };
    let tcp4 = TcpListener::from_std(bound.tcp4)?;
    let settings = Arc::new(settings);
    let mut pending = Pending::new();
    let mut clients = JoinSet::new();
    let mut sweep = tokio::time::interval(SWEEP);
    let (mut b4, mut b6, mut bu4, mut bu6) = (
        vec![0u8; 65_535],
        vec![0u8; 65_535],
        vec![0u8; 65_535],
        vec![0u8; 65_535],
    );
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            r = recv(Some(&s.udp4), &mut b4) => {
                if let Ok((n, from)) = r {
                    on_query(&b4[..n], from, &s, &settings, &mut pending, &stats).await;
                }
            }
            r = recv(s.udp6.as_ref(), &mut b6) => {
                if let Ok((n, from)) = r {
                    on_query(&b6[..n], from, &s, &settings, &mut pending, &stats).await;
                }
            }
            r = recv(s.up4.as_ref(), &mut bu4) => {
                if let Ok((n, from)) = r {
                    on_upstream(&mut bu4[..n], from, &s, &settings, &mut pending).await;
                }
            }
            r = recv(s.up6.as_ref(), &mut bu6) => {
                if let Ok((n, from)) = r {
                    on_upstream(&mut bu6[..n], from, &s, &settings, &mut pending).await;
                }
            }
            r = accept(Some(&tcp4)) => on_tcp_client(r, &mut clients, &settings, &factory, &stats),
            r = accept(tcp6.as_ref()) => on_tcp_client(r, &mut clients, &settings, &factory, &stats),
            _ = sweep.tick() => expire(&s, &settings, &mut pending, &stats).await,
            Some(_) = clients.join_next(), if !clients.is_empty() => {}
        }
    }
    clients.abort_all();
    Ok(())
}

#[cfg(test)]
pub(super) mod tests;
