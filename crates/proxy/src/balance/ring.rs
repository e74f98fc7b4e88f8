//! Consistent hashing: the same key goes to the same endpoint, and removing an endpoint
//! moves only the keys it had.
//!
//! A ring of virtual nodes (ketama style) rather than Maglev or jump hash: jump hash cannot
//! remove an arbitrary endpoint without remapping others, and Maglev's table remaps a few
//! keys of the survivors; a ring remaps only the removed endpoint's keys, which is the
//! promise sticky sessions and caches need. Each endpoint gets virtual nodes in proportion
//! to its weight (the heaviest [`VNODES_PER_HEAVIEST`]); a node's place depends only on the
//! endpoint's address, so every proxy instance (and every reload) builds the same ring.
//!
//! Hashes are [`stable_hash`], FNV-1a finished with a 64-bit mixer: fixed across processes
//! and Rust versions, unlike `std`'s hasher, so many proxies agree on where a key goes.

use std::net::SocketAddr;

use http::header::COOKIE;
use http::request::Parts;

use crate::config::HashKey;

/// Virtual nodes of the heaviest endpoint; lighter ones get fewer, by weight (at least 1).
pub(crate) const VNODES_PER_HEAVIEST: u32 = 160;

/// A consistent-hash ring over a list of endpoints.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ring {
    /// (position, index of the endpoint), sorted by position.
    points: Vec<(u64, u32)>,
}

impl Ring {
    /// A ring over endpoints given as (address, weight); `max_weight` is the heaviest weight
    /// configured in the cluster, so node counts do not change when others come and go.
    pub(crate) fn new(
        endpoints: impl IntoIterator<Item = (SocketAddr, u32)>,
        max_weight: u32,
    ) -> Self {
        let max_weight = max_weight.max(1);
        let mut points = Vec::new();
        for (index, (address, weight)) in endpoints.into_iter().enumerate() {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            let nodes = (u64::from(VNODES_PER_HEAVIEST) * u64::from(weight.min(max_weight))
                / u64::from(max_weight))
            .max(1);
            let base = stable_hash(address.to_string().as_bytes());
            for node in 0..nodes {
                points.push((mix(base ^ mix(node.wrapping_add(1))), index));
            }
        }
        // Ties (vanishingly rare) are broken by index so the ring does not depend on order.
        points.sort_unstable();
        Self { points }
    }

    /// The index of the endpoint that owns `hash`: the first node at or after it, wrapping.
    pub(crate) fn get(&self, hash: u64) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let at = self.points.partition_point(|(point, _)| *point < hash);
        let (_, index) = self.points[at % self.points.len()];
        Some(index as usize)
    }

    /// Number of virtual nodes.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.points.len()
    }
}

/// The request's hash key, or `None` when it has none (the request is then balanced by
/// least requests). An empty value counts as none.
pub(crate) fn request_key(key: &HashKey, request: &Parts) -> Option<u64> {
    let value = match key {
        HashKey::Header(name) => request.headers.get(name).map(|value| value.as_bytes()),
        HashKey::Cookie(name) => cookie(request, name),
    }?;
    (!value.is_empty()).then(|| stable_hash(value))
}

/// A cookie's value from the request's `Cookie` headers, without allocating.
fn cookie<'a>(request: &'a Parts, name: &str) -> Option<&'a [u8]> {
    request
        .headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|header| header.as_bytes().split(|byte| *byte == b';'))
        .find_map(|pair| {
            let pair = pair.trim_ascii();
            let at = pair.iter().position(|byte| *byte == b'=')?;
            (pair[..at].trim_ascii() == name.as_bytes()).then(|| pair[at + 1..].trim_ascii())
        })
}

/// FNV-1a over the bytes, then [`mix`]: stable across processes and versions.
pub(crate) fn stable_hash(bytes: &[u8]) -> u64 {
    let fnv = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    mix(fnv)
}

/// The 64-bit finalizer of MurmurHash3: spreads every input bit over the output.
pub(crate) fn mix(mut value: u64) -> u64 {
    value ^= value >> 33;
    value = value.wrapping_mul(0xff51_afd7_ed55_8ccd);
    value ^= value >> 33;
    value = value.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    value ^ (value >> 33)
}

/// A number in `[0, 1)` derived from a key, independent of its place on the ring (used to
/// choose a priority level for keyed requests, so a key sticks to a level too).
pub(crate) fn unit_interval(hash: u64) -> f64 {
    (mix(hash ^ 0x9e37_79b9_7f4a_7c15) >> 11) as f64 / (1_u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use http::Request;
    use proptest::prelude::*;

    use super::*;

    fn addresses(count: u16) -> Vec<SocketAddr> {
        (0..count)
            .map(|port| SocketAddr::from(([10, 0, 0, 1], 8000 + port)))
            .collect()
    }

    fn ring(addresses: &[SocketAddr]) -> Ring {
        Ring::new(addresses.iter().map(|address| (*address, 1)), 1)
    }

    #[test]
    fn the_same_key_goes_to_the_same_endpoint() {
        let ring = ring(&addresses(5));
        let key = stable_hash(b"user-42");
        assert_eq!(ring.get(key), ring.get(key));
        assert_eq!(ring.len(), 5 * VNODES_PER_HEAVIEST as usize);
    }

    #[test]
    fn keys_spread_over_every_endpoint_roughly_evenly() {
        let ring = ring(&addresses(4));
        let mut counts = [0_u32; 4];
        for key in 0..10_000_u32 {
            counts[ring.get(stable_hash(&key.to_le_bytes())).expect("a node")] += 1;
        }
        for count in counts {
            assert!((1_500..=3_500).contains(&count), "{counts:?}");
        }
    }

    #[test]
    fn weight_buys_virtual_nodes() {
        let all = addresses(2);
        let ring = Ring::new([(all[0], 1), (all[1], 4)], 4);
        assert_eq!(ring.len(), 40 + 160);
        let light = (0..10_000_u32)
            .filter(|key| ring.get(stable_hash(&key.to_le_bytes())) == Some(0))
            .count();
        assert!((1_000..=3_000).contains(&light), "{light}");
    }

    #[test]
    fn cookies_and_headers_give_keys_and_missing_ones_do_not() {
        let (parts, _) = Request::builder()
            .header("x-user", "alice")
            .header("cookie", "theme=dark; session=abc123")
            .header("cookie", "other=1")
            .body(())
            .expect("a request")
            .into_parts();
        let header = HashKey::Header(http::HeaderName::from_static("x-user"));
        assert_eq!(request_key(&header, &parts), Some(stable_hash(b"alice")));
        let session = HashKey::Cookie("session".to_owned());
        assert_eq!(request_key(&session, &parts), Some(stable_hash(b"abc123")));
        assert_eq!(
            request_key(&HashKey::Cookie("other".to_owned()), &parts),
            Some(stable_hash(b"1"))
        );
        assert_eq!(
            request_key(&HashKey::Cookie("sess".to_owned()), &parts),
            None
        );
        let missing = HashKey::Header(http::HeaderName::from_static("x-none"));
        assert_eq!(request_key(&missing, &parts), None);
    }

    #[test]
    fn the_hash_is_stable_across_builds() {
        // Pinned: proxies of different builds must agree on where a key goes.
        assert_eq!(stable_hash(b""), mix(0xcbf2_9ce4_8422_2325));
        assert_eq!(stable_hash(b"a"), mix(0xaf63_dc4c_8601_ec8c));
    }

    proptest! {
        #[test]
        fn removing_an_endpoint_moves_only_its_own_keys(
            count in 2_u16..8, removed in 0_u16..8, keys in prop::collection::vec(any::<u64>(), 50),
        ) {
            let all = addresses(count);
            let removed = usize::from(removed % count);
            let mut rest = all.clone();
            rest.remove(removed);
            let (before, after) = (ring(&all), ring(&rest));
            for key in keys {
                let owner = all[before.get(key).expect("a node")];
                let new_owner = rest[after.get(key).expect("a node")];
                if owner != all[removed] {
                    prop_assert_eq!(owner, new_owner);
                }
            }
        }
    }
}
