//! The `http` probe: a GET over a fresh connection each time, so a restarted service is seen as
//! it really is (a pooled connection could hide the restart or fail for reasons of its own).

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::ProbeError;

/// Bodies larger than this are not read in full; the body match only sees the first part.
const MAX_BODY: usize = 64 * 1024;
/// How much of an unexpected answer's body an error quotes.
const QUOTED_BODY: usize = 120;

/// A GET of one URL, matching the status and optionally a body substring.
#[derive(Clone, Debug)]
pub struct HttpCheck {
    url: String,
    uri: Uri,
    authority: String,
    expect_status: u16,
    expect_body: Option<String>,
}

impl HttpCheck {
    /// A check of `url` (`http://host[:port]/path`).
    pub fn new(
        url: &str,
        expect_status: u16,
        expect_body: Option<String>,
    ) -> Result<Self, ProbeError> {
        let uri: Uri = url
            .parse()
            .map_err(|e| ProbeError::Http(format!("invalid url {url:?}: {e}")))?;
        if uri.scheme_str() != Some("http") {
            return Err(ProbeError::Http(format!("url {url:?} is not http://")));
        }
        let host = uri
            .host()
            .ok_or_else(|| ProbeError::Http(format!("url {url:?} has no host")))?;
        let port = uri.port_u16().unwrap_or(80);
        // Bracket IPv6 literals again for the socket address.
        let authority = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Ok(Self {
            url: url.to_string(),
            uri,
            authority,
            expect_status,
            expect_body,
        })
    }

    /// One request. Its error names the URL and, for an answer that is not the expected
    /// one, quotes the start of the body (an error page says more than its status).
    pub async fn check(&self) -> Result<(), ProbeError> {
        self.exchange().await.map_err(|error| ProbeError::Request {
            url: self.url.clone(),
            error: Box::new(error),
        })
    }

    async fn exchange(&self) -> Result<(), ProbeError> {
        let stream = TcpStream::connect(&self.authority)
            .await
            .map_err(ProbeError::Connect)?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ProbeError::Http(e.to_string()))?;
        let driver = tokio::spawn(conn);
        let path = self
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let request = Request::get(path)
            .header(
                hyper::header::HOST,
                self.uri.authority().map_or("", |a| a.as_str()),
            )
            .header(hyper::header::USER_AGENT, "gameday-probe")
            .header(hyper::header::CONNECTION, "close")
            .body(Empty::<Bytes>::new())
            .map_err(|e| ProbeError::Http(e.to_string()))?;
        let result = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| ProbeError::Http(e.to_string()))?;
            let status = response.status().as_u16();
            if status != self.expect_status {
                // A body that cannot be read is left out: the status is the news.
                let body = Limited::new(response.into_body(), MAX_BODY)
                    .collect()
                    .await
                    .map(|b| quote_body(&b.to_bytes()))
                    .unwrap_or_default();
                return Err(ProbeError::Unexpected(format!(
                    "status {status}, expected {}{body}",
                    self.expect_status,
                )));
            }
            if let Some(needle) = &self.expect_body {
                let body = Limited::new(response.into_body(), MAX_BODY)
                    .collect()
                    .await
                    .map_err(|e| ProbeError::Http(format!("reading body: {e}")))?
                    .to_bytes();
                if !String::from_utf8_lossy(&body).contains(needle.as_str()) {
                    return Err(ProbeError::Unexpected(format!(
                        "body does not contain {needle:?}{}",
                        quote_body(&body)
                    )));
                }
            }
            Ok(())
        }
        .await;
        driver.abort();
        result
    }
}

/// `; body "…"`: the start of a body on one line, whitespace runs folded, control
/// characters escaped; empty for an empty body.
fn quote_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let folded = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if folded.is_empty() {
        return "; empty body".to_string();
    }
    let start: String = folded.chars().take(QUOTED_BODY).collect();
    let more = if start.len() < folded.len() {
        "…"
    } else {
        ""
    };
    format!("; body starts {start:?}{more}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A server on loopback that answers every request with `status` and `body`.
    async fn answering(
        status: &str,
        body: &str,
    ) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf).await;
                let _ = conn.write_all(response.as_bytes()).await;
                let _ = conn.shutdown().await;
            }
        });
        (addr, task)
    }

    #[tokio::test]
    async fn an_unexpected_status_names_the_url_and_quotes_the_body() {
        let (addr, server) = answering(
            "503 Service Unavailable",
            "<h1>Down for\n   maintenance</h1>\n\n\n\n\n\n",
        )
        .await;
        let url = format!("http://{addr}/healthz");
        let e = HttpCheck::new(&url, 200, None)
            .unwrap()
            .check()
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("GET {url}: status 503, expected 200; body starts \"<h1>Down for maintenance</h1>\"")
        );
        server.abort();
    }

    #[tokio::test]
    async fn a_body_mismatch_and_a_refused_connection_name_the_url() {
        let (addr, server) = answering("200 OK", "booting").await;
        let url = format!("http://{addr}/");
        let e = HttpCheck::new(&url, 200, Some("ok".into()))
            .unwrap()
            .check()
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("GET {url}: body does not contain \"ok\"; body starts \"booting\"")
        );
        server.abort();
        // A port nobody listens on: the connection error names the URL too.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/x", closed.local_addr().unwrap());
        drop(closed);
        let e = HttpCheck::new(&url, 200, None)
            .unwrap()
            .check()
            .await
            .unwrap_err();
        assert!(
            e.to_string().starts_with(&format!("GET {url}: connect: ")),
            "{e}"
        );
    }

    #[test]
    fn long_bodies_are_cut() {
        let body = "x".repeat(500);
        let quoted = quote_body(body.as_bytes());
        assert!(quoted.ends_with("\"…"), "{quoted}");
        assert_eq!(quoted.matches('x').count(), QUOTED_BODY);
        assert_eq!(quote_body(b"  \n"), "; empty body");
    }
}
