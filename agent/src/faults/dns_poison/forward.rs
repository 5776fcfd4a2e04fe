//! The embedded resolver's query handling: poisoned answers, and forwarding to the real
//! upstream servers. Forwarded UDP queries get a fresh id and the upstream's answer is relayed
//! back byte for byte, so whatever it says (EDNS, DNSSEC records, truncation) reaches the
//! client unchanged; TCP queries are forwarded over TCP.

use std::collections::HashMap;
use std::hash::{BuildHasher as _, Hasher as _};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};
use tokio::task::JoinSet;

use super::answer::Verdict;
use super::server::{bump, Settings, Stats};
use crate::os::dns::DnsSockets;

/// Forwarded UDP queries waiting for an upstream answer; beyond this, new ones are dropped
/// (the client retries) rather than letting a flood grow memory without bound.
const MAX_PENDING: usize = 4096;
/// Concurrent TCP clients; more are closed at once.
const MAX_TCP_CLIENTS: usize = 64;
/// A TCP client that sends nothing for this long is closed.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// Forwarded UDP queries waiting for an answer, by the id we gave them upstream.
pub(super) struct Pending {
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
    pub(super) fn new() -> Pending {
        Pending {
            by_id: HashMap::new(),
            // Unpredictable ids make off-path spoofing of forwarded answers harder; std's
            // per-process random hasher keys are enough for that without another crate.
            // `| 1`: xorshift never leaves zero.
            seed: std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
                | 1,
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
pub(super) struct Sockets {
    pub(super) udp4: UdpSocket,
    pub(super) udp6: Option<UdpSocket>,
    pub(super) up4: Option<UdpSocket>,
    pub(super) up6: Option<UdpSocket>,
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

pub(super) async fn on_query(
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

pub(super) async fn on_upstream(
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
pub(super) async fn expire(s: &Sockets, settings: &Settings, pending: &mut Pending, stats: &Stats) {
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

pub(super) fn on_tcp_client(
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
