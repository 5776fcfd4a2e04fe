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

/// A GET of one URL, matching the status and optionally a body substring.
#[derive(Clone, Debug)]
pub struct HttpCheck {
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
            uri,
            authority,
            expect_status,
            expect_body,
        })
    }

    /// One request.
    pub async fn check(&self) -> Result<(), ProbeError> {
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
                return Err(ProbeError::Unexpected(format!(
                    "status {status}, expected {}",
                    self.expect_status
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
                        "body does not contain {needle:?}"
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
