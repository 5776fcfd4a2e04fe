//! IP networks as partitions and policies name them ([`Net`], from the proto crate), merged to
//! the fewest that cover the same addresses.

pub use gameday_proto::Net;

/// The fewest networks covering the same addresses: sorted, without duplicates or networks
/// inside another one. nft refuses overlapping intervals in one set, so this is also what
/// makes any list of peers installable.
pub fn minimal(nets: &[Net]) -> Vec<Net> {
    let mut sorted = nets.to_vec();
    sorted.sort();
    sorted.dedup();
    sorted
        .iter()
        .filter(|n| !sorted.iter().any(|o| o != *n && o.contains(n)))
        .copied()
        .collect()
}
