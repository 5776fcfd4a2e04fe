//! The embedded resolver of resolver mode: answers poisoned names itself (an address,
//! NXDOMAIN, SERVFAIL, or silence) and relays every other query to the host's real upstream
//! servers, over UDP and TCP.
//!
//! It runs on a thread of its own with a single-threaded tokio runtime, so it works the same
//! whether the caller is inside the agent's runtime, a blocking task or a plain test thread,
//! and it lives in the network namespace of the thread that started it. Forwarded UDP
//! queries get a fresh id and are relayed back byte for byte, so whatever the upstream says
//! (EDNS, DNSSEC records, truncation) reaches the client unchanged.

use std::collections::HashMap;
use std::hash::{BuildHasher as _, Hasher as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::names::{normalize, NamePattern};
use super::Answer;
use crate::os::dns::{DnsOsError, DnsSockets};

/// TTL of poisoned answers: zero, so no cache keeps the poison after the revert.
const POISON_TTL: u32 = 0;
/// Forwarded UDP queries waiting for an upstream answer; beyond this, new ones are dropped
/// (the client retries) rather than letting a flood grow memory without bound.
const MAX_PENDING: usize = 4096;
/// Concurrent TCP clients; more are closed at once.
const MAX_TCP_CLIENTS: usize = 64;
/// A TCP client that sends nothing for this long is closed.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// How often forwarded queries are checked for an upstream that did not answer.
const SWEEP: Duration = Duration::from_millis(50);
/// How many ports to try when the kernel picks one that is free for UDP but not for TCP.
const BIND_ATTEMPTS: usize = 8;

/// What the resolver does with poisoned names.
#[derive(Clone, Debug)]
pub struct Poison {
    /// Poisoned names.
    pub names: Vec<NamePattern>,
    /// What they resolve to.
    pub answer: Answer,
}

/// What to do with one query.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send these bytes back.
    Reply(Vec<u8>),
    /// A poisoned name whose answer is a timeout: say nothing.
    Silence,
    /// Not poisoned (or not understood): let the upstream answer.
    Forward,
}

impl Poison {
    /// Decides what to do with a query, from its wire bytes.
    pub fn decide(&self, query: &[u8]) -> Verdict {
        // Anything we cannot read is the upstream's to judge, as it would be without us.
        let Ok(request) = Message::from_vec(query) else {
            return Verdict::Forward;
        };
        if request.message_type() != MessageType::Query || request.op_code() != OpCode::Query {
            return Verdict::Forward;
        }
        let Some(question) = request.queries().first() else {
            return Verdict::Forward;
        };
        let name = normalize(&question.name().to_ascii());
        if !self.names.iter().any(|p| p.matches(&name)) {
            return Verdict::Forward;
        }
        let (code, record) = match self.answer {
            Answer::Timeout => return Verdict::Silence,
            Answer::Nxdomain => (ResponseCode::NXDomain, None),
            Answer::Servfail => (ResponseCode::ServFail, None),
            // A name that has only an address of the other family answers NOERROR with no
            // records (NODATA), as a real zone would.
            Answer::Address(ip) => (
                ResponseCode::NoError,
                match (ip, question.query_type()) {
                    (IpAddr::V4(v4), RecordType::A) => Some(RData::A(A(v4))),
                    (IpAddr::V6(v6), RecordType::AAAA) => Some(RData::AAAA(AAAA(v6))),
                    _ => None,
                },
            ),
        };
        let mut response = Message::new();
        response
            .set_id(request.id())
            .set_message_type(MessageType::Response)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(request.recursion_desired())
            .set_recursion_available(true)
            .set_checking_disabled(request.checking_disabled())
            .set_response_code(code)
            .add_query(question.clone());
        if let Some(rdata) = record {
            // The question's own spelling: clients that randomise case check it comes back.
            response.add_answer(Record::from_rdata(
                question.name().clone(),
                POISON_TTL,
                rdata,
            ));
        }
        if request.extensions().is_some() {
            let mut edns = Edns::new();
            edns.set_max_payload(1232);
            response.set_edns(edns);
        }
        match response.to_vec() {
            Ok(bytes) => Verdict::Reply(bytes),
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode a poisoned answer; forwarding instead");
                Verdict::Forward
            }
        }
    }
}

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
struct Stats {
    answered: AtomicU64,
    dropped: AtomicU64,
    forwarded: AtomicU64,
    failed: AtomicU64,
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

fn bump(counter: &AtomicU64) {
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

/// Forwarded UDP queries waiting for an answer, by the id we gave them upstream.
struct Pending {
    by_id: HashMap<u16, Forwarded>,
    seed: u64,
}

struct Forwarded {
    client: SocketAddr,
    client_id: u16,
    /// The query as sent upstream (our id), kept to try the next upstream.
    query: Vec<u8>,
    /// Which upstream it was last sent to.
    upstream: usize,
    sent_at: Instant,
}

impl Pending {
    fn new() -> Pending {
        Pending {
            by_id: HashMap::new(),
            // Unpredictable ids make off-path spoofing of forwarded answers harder; std's
            // per-process random hasher keys are enough for that without another crate.
            seed: std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish(),
        }
    }

    fn fresh_id(&mut self) -> u16 {
        loop {
            // xorshift64: cheap, and its output is keyed by the random seed.
            self.seed ^= self.seed << 13;
            self.seed ^= self.seed >> 7;
            self.seed ^= self.seed << 17;
            let id = (self.seed >> 24) as u16;
            if !self.by_id.contains_key(&id) {
                return id;
            }
        }
    }
}

/// Sockets the serving loop owns.
struct Sockets {
    udp4: UdpSocket,
    udp6: Option<UdpSocket>,
    up4: Option<UdpSocket>,
    up6: Option<UdpSocket>,
}

impl Sockets {
    fn listener_for(&self, client: &SocketAddr) -> Option<&UdpSocket> {
        if client.is_ipv4() {
            Some(&self.udp4)
        } else {
            self.udp6.as_ref()
        }
    }

    fn upstream_for(&self, server: &SocketAddr) -> Option<&UdpSocket> {
        if server.is_ipv4() {
            self.up4.as_ref()
        } else {
            self.up6.as_ref()
        }
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

async fn on_query(
    query: &[u8],
    client: SocketAddr,
    s: &Sockets,
    settings: &Settings,
    pending: &mut Pending,
    stats: &Stats,
) {
    match settings.poison.decide(query) {
        Verdict::Reply(bytes) => {
            if let Some(listener) = s.listener_for(&client) {
                let _ = listener.send_to(&bytes, client).await;
            }
            bump(&stats.answered);
        }
        Verdict::Silence => bump(&stats.dropped),
        Verdict::Forward => {
            // Shorter than a DNS header: nothing any server would answer.
            if query.len() < 12 {
                return;
            }
            bump(&stats.forwarded);
            if pending.by_id.len() >= MAX_PENDING {
                bump(&stats.failed);
                return;
            }
            let id = pending.fresh_id();
            let mut sent = query.to_vec();
            let client_id = u16::from_be_bytes([sent[0], sent[1]]);
            sent[..2].copy_from_slice(&id.to_be_bytes());
            send_upstream(s, settings, &sent, 0).await;
            pending.by_id.insert(
                id,
                Forwarded {
                    client,
                    client_id,
                    query: sent,
                    upstream: 0,
                    sent_at: Instant::now(),
                },
            );
        }
    }
}

async fn send_upstream(s: &Sockets, settings: &Settings, query: &[u8], index: usize) {
    let server = settings.upstream[index];
    if let Some(socket) = s.upstream_for(&server) {
        if let Err(e) = socket.send_to(query, server).await {
            // The sweep moves it on to the next upstream when this one stays silent.
            tracing::debug!(%server, error = %e, "cannot send a query upstream");
        }
    }
}

async fn on_upstream(
    answer: &mut [u8],
    from: SocketAddr,
    s: &Sockets,
    settings: &Settings,
    pending: &mut Pending,
) {
    // Only our upstreams may answer, and only queries we sent.
    if answer.len() < 12 || !settings.upstream.contains(&from) {
        return;
    }
    let id = u16::from_be_bytes([answer[0], answer[1]]);
    let Some(forwarded) = pending.by_id.remove(&id) else {
        return;
    };
    answer[..2].copy_from_slice(&forwarded.client_id.to_be_bytes());
    if let Some(listener) = s.listener_for(&forwarded.client) {
        let _ = listener.send_to(answer, forwarded.client).await;
    }
}

/// Moves queries an upstream left unanswered on to the next upstream, and gives up on those
/// every upstream left unanswered (the client will retry or time out, as without us).
async fn expire(s: &Sockets, settings: &Settings, pending: &mut Pending, stats: &Stats) {
    let now = Instant::now();
    let late: Vec<u16> = pending
        .by_id
        .iter()
        .filter(|(_, f)| now.duration_since(f.sent_at) >= settings.upstream_timeout)
        .map(|(id, _)| *id)
        .collect();
    for id in late {
        let next = pending.by_id[&id].upstream + 1;
        if next < settings.upstream.len() {
            let query = pending.by_id[&id].query.clone();
            send_upstream(s, settings, &query, next).await;
            if let Some(f) = pending.by_id.get_mut(&id) {
                f.upstream = next;
                f.sent_at = now;
            }
        } else {
            pending.by_id.remove(&id);
            bump(&stats.failed);
        }
    }
}

fn on_tcp_client(
    accepted: std::io::Result<(TcpStream, SocketAddr)>,
    clients: &mut JoinSet<()>,
    settings: &Arc<Settings>,
    factory: &Arc<dyn DnsSockets>,
    stats: &Arc<Stats>,
) {
    let Ok((stream, _)) = accepted else { return };
    if clients.len() >= MAX_TCP_CLIENTS {
        return; // dropping the stream closes it
    }
    clients.spawn(tcp_client(
        stream,
        settings.clone(),
        factory.clone(),
        stats.clone(),
    ));
}

async fn read_frame(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let len = stream.read_u16().await?;
    let mut msg = vec![0u8; usize::from(len)];
    stream.read_exact(&mut msg).await?;
    Ok(msg)
}

async fn write_frame(stream: &mut TcpStream, msg: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(msg.len()).map_err(|_| std::io::ErrorKind::InvalidData)?;
    let mut framed = Vec::with_capacity(msg.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(msg);
    stream.write_all(&framed).await
}

/// One TCP client: length-prefixed queries, answered in order until it goes quiet.
async fn tcp_client(
    mut stream: TcpStream,
    settings: Arc<Settings>,
    factory: Arc<dyn DnsSockets>,
    stats: Arc<Stats>,
) {
    while let Ok(Ok(query)) = tokio::time::timeout(TCP_IDLE, read_frame(&mut stream)).await {
        let reply = match settings.poison.decide(&query) {
            Verdict::Reply(bytes) => {
                bump(&stats.answered);
                bytes
            }
            Verdict::Silence => {
                bump(&stats.dropped);
                continue;
            }
            Verdict::Forward => {
                bump(&stats.forwarded);
                match forward_tcp(&query, &settings, factory.as_ref()).await {
                    Some(bytes) => bytes,
                    None => {
                        bump(&stats.failed);
                        return; // closing tells the client at once
                    }
                }
            }
        };
        if write_frame(&mut stream, &reply).await.is_err() {
            return;
        }
    }
}

/// Sends one query to each upstream in turn over TCP until one answers.
async fn forward_tcp(
    query: &[u8],
    settings: &Settings,
    factory: &dyn DnsSockets,
) -> Option<Vec<u8>> {
    for server in &settings.upstream {
        let attempt = async {
            let std_stream = factory
                .upstream_tcp(server.is_ipv6(), settings.mark)
                .map_err(std::io::Error::other)?;
            std_stream.set_nonblocking(true)?;
            let mut upstream = TcpSocket::from_std_stream(std_stream)
                .connect(*server)
                .await?;
            write_frame(&mut upstream, query).await?;
            read_frame(&mut upstream).await
        };
        match tokio::time::timeout(settings.upstream_timeout, attempt).await {
            Ok(Ok(answer)) => return Some(answer),
            Ok(Err(e)) => tracing::debug!(%server, error = %e, "TCP upstream failed"),
            Err(_) => tracing::debug!(%server, "TCP upstream timed out"),
        }
    }
    None
}

#[cfg(test)]
pub(super) mod tests;
