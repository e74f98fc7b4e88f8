//! The typed admission config: priorities, concurrency limits, rate limits.
//!
//! Parsed once at load (see `validate/admission.rs`) into the values the request path uses:
//! a [`Priority`] enum, CIDRs as numbers, header names as [`HeaderName`]s.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use blastwall_policy::bulkhead::ValidBulkheadConfig;
use blastwall_policy::concurrency::{ValidAimdConfig, ValidGradient2Config};
use http::HeaderName;

/// How important a request is. Under overload, lower priorities are shed first.
///
/// Ordered: `Low < Normal < High < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Priority {
    /// Shed first; may hold at most half of a concurrency limit.
    Low,
    /// The default; may hold at most three quarters of a concurrency limit.
    #[default]
    Normal,
    /// May hold at most 90% of a concurrency limit.
    High,
    /// May hold all of a concurrency limit.
    Critical,
}

impl Priority {
    /// Every priority, lowest first.
    pub const ALL: [Priority; 4] = [
        Priority::Low,
        Priority::Normal,
        Priority::High,
        Priority::Critical,
    ];

    /// Its position in [`Priority::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The share of a concurrency limit (in percent) requests of this priority may hold:
    /// the rest is kept for higher priorities, so a flood of low traffic cannot take the
    /// capacity high traffic needs.
    pub fn share_percent(self) -> u32 {
        match self {
            Priority::Low => 50,
            Priority::Normal => 75,
            Priority::High => 90,
            Priority::Critical => 100,
        }
    }

    /// The priority a header value names (`critical`, `high`, `normal`, `low`, any case).
    pub fn from_header(value: &[u8]) -> Option<Priority> {
        Priority::ALL
            .into_iter()
            .find(|priority| value.eq_ignore_ascii_case(priority.name().as_bytes()))
    }

    /// Its name, as written in the config and the priority header.
    pub fn name(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Critical => "critical",
        }
    }
}

impl std::fmt::Display for Priority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What admission does for one route.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RouteAdmissionConfig {
    /// The priority of the route's requests, unless a trusted client says otherwise.
    pub priority: Priority,
    /// Who may set a request's priority with a header (from `[proxy]`, shared by all routes).
    pub trust: Arc<PriorityTrust>,
    /// The route's bulkhead or adaptive limit.
    pub concurrency: Option<ConcurrencyConfig>,
    /// The route's rate limit.
    pub rate_limit: Option<RateLimitConfig>,
}

/// Which clients may choose their requests' priority, and with which header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorityTrust {
    /// The header carrying the priority.
    pub header: HeaderName,
    /// Clients whose header is honoured; empty: nobody's.
    pub trusted: Vec<Cidr>,
}

impl Default for PriorityTrust {
    fn default() -> Self {
        Self {
            header: HeaderName::from_static("x-blastwall-priority"),
            trusted: Vec::new(),
        }
    }
}

impl PriorityTrust {
    /// Whether `client` is in one of the trusted networks.
    pub fn trusts(&self, client: IpAddr) -> bool {
        self.trusted.iter().any(|cidr| cidr.contains(client))
    }
}

/// A network: an address and a prefix length, like `10.0.0.0/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The network address (host bits cleared at load).
    pub network: IpAddr,
    /// Leading bits that must match.
    pub prefix: u8,
}

impl Cidr {
    /// Parses `10.0.0.0/8`, `::1/128`, or a bare address (a single host).
    pub fn parse(text: &str) -> Option<Cidr> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix.parse::<u8>().ok()?)),
            None => (text, None),
        };
        let address: IpAddr = address.parse().ok()?;
        let bits = if address.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(bits);
        if prefix > bits {
            return None;
        }
        Some(Cidr {
            network: mask(address, prefix),
            prefix,
        })
    }

    /// Whether `address` is in this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        address.is_ipv4() == self.network.is_ipv4() && mask(address, self.prefix) == self.network
    }
}

fn mask(address: IpAddr, prefix: u8) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let kept = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((bits & kept).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let kept = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((bits & kept).into())
        }
    }
}

/// A concurrency limit with a bounded queue: a bulkhead (fixed) or an adaptive limit.
#[derive(Debug, Clone, PartialEq)]
pub struct ConcurrencyConfig {
    /// How the limit is set.
    pub limit: LimitConfig,
    /// Requests that may wait for a free slot.
    pub queue: usize,
    /// How long one may wait.
    pub queue_timeout: Duration,
    /// The lowest priority that may wait; lower ones are shed at once when no slot is free
    /// for them (`Priority::Low`: every priority may wait).
    pub queue_from: Priority,
}

/// How a concurrency limit is set: the policy crate's config, checked by it at load, so the
/// limiter built from it (on start, on a reload) has no failure path.
#[derive(Debug, Clone, PartialEq)]
pub enum LimitConfig {
    /// A fixed number of requests at once: a bulkhead without a queue of its own (the
    /// proxy's queue, which orders by priority, is in front of it).
    Fixed(ValidBulkheadConfig),
    /// Moved by latency (Gradient2).
    Gradient2(ValidGradient2Config),
    /// Moved by overload signals (AIMD).
    Aimd(ValidAimdConfig),
    /// The sum of what a cluster's endpoints showed they take (see `cluster::capacity`),
    /// at most the bulkhead's limit.
    Capacity(ValidBulkheadConfig),
}

/// A rate limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Requests per `per`.
    pub rate: u32,
    /// The period `rate` counts over.
    pub per: Duration,
    /// Requests that may come at once after a quiet spell.
    pub burst: u32,
    /// Whose requests share one limit.
    pub key: RateLimitKey,
    /// Most client keys tracked at once (memory stays bounded whatever clients send).
    pub max_keys: usize,
    /// `rate`, `per` and `burst` as the policy crate's config, checked by it at load.
    pub limit: blastwall_policy::ratelimit::ValidRateLimitConfig,
}

/// Whose requests share one rate limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateLimitKey {
    /// All of the route's requests.
    Route,
    /// Each client address.
    ClientIp,
    /// Each value of this header (requests without it: by client address).
    Header(HeaderName),
}
