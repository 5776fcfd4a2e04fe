//! The `tcp` probe: healthy when a TCP connection to the address is accepted.

use tokio::net::TcpStream;

use super::ProbeError;

/// Connects to `host:port`.
#[derive(Clone, Debug)]
pub struct TcpCheck {
    address: String,
}

impl TcpCheck {
    /// A check of `address` (`host:port`).
    pub fn new(address: String) -> Self {
        Self { address }
    }

    /// One connect attempt.
    pub async fn check(&self) -> Result<(), ProbeError> {
        TcpStream::connect(&self.address)
            .await
            .map(drop)
            .map_err(ProbeError::Connect)
    }
}
