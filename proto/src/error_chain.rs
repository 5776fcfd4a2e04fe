//! Walking a transport error down to its root cause, for messages that say what happened
//! ("connection refused") instead of the outermost wrapper ("transport error"). Shared by the
//! agent's dialer and the CLI.

use std::error::Error;

/// The error and its sources, looking inside `io::Error`s too (whose `source()` skips the
/// error they wrap, where rustls puts its own). At most 32 deep.
pub fn chain<'a>(error: &'a (dyn Error + 'static)) -> Vec<&'a (dyn Error + 'static)> {
    let mut out = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        out.push(e);
        next = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn Error + 'static)),
            None => e.source(),
        };
        if out.len() > 32 {
            break;
        }
    }
    out
}

/// Whether the connection ended mid-record (an unexpected EOF somewhere in the chain): to be
/// said as "the connection closed", not as rustls' advice about close_notify.
pub fn closed_early(chain: &[&(dyn Error + 'static)]) -> bool {
    chain.iter().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::UnexpectedEof)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn the_chain_looks_inside_io_errors() {
        let inner = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "eof inside");
        let outer = Outer(std::io::Error::other(inner));
        let chain = chain(&outer);
        // outer, its io::Error, the io::Error inside that, and that one's message.
        assert_eq!(chain.len(), 4, "{chain:?}");
        assert_eq!(chain[3].to_string(), "eof inside");
        assert!(closed_early(&chain));
    }
}
