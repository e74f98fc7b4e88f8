//! What went wrong with an attempt, in words that do not depend on the protocol.

use std::time::Duration;

/// How an attempt failed. The proxy maps its errors into these once, where they are born.
///
/// The first two never reached the upstream's application, so retrying them is safe even for
/// requests that are not idempotent; the others may have been (partly) processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// No connection: refused, unreachable, DNS or TLS handshake failure, connect timeout.
    /// The request never left.
    ConnectFailed,
    /// The upstream declined the request before processing it: HTTP/2 `REFUSED_STREAM`, or a
    /// `GOAWAY` whose last stream id is below this request's.
    Refused,
    /// The connection or stream was reset or closed after the request was sent.
    Reset,
    /// The attempt timed out waiting for a response.
    Timeout,
    /// The upstream answered with this status code.
    Status(u16),
    /// Anything else (a local error, a body that cannot be replayed): never retried.
    Other,
}

impl FailureKind {
    /// True when the upstream cannot have processed the request, so a retry cannot repeat a
    /// side effect.
    pub fn never_processed(self) -> bool {
        matches!(self, FailureKind::ConnectFailed | FailureKind::Refused)
    }
}

/// A failed attempt: how it failed, and how long the server asked us to wait, if it did
/// (an HTTP `Retry-After`, already parsed into a delay by the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// How the attempt failed.
    pub kind: FailureKind,
    /// The server's `Retry-After`, as a delay from now.
    pub retry_after: Option<Duration>,
}

impl Failure {
    /// A failure without a server-requested delay.
    pub fn new(kind: FailureKind) -> Self {
        Self {
            kind,
            retry_after: None,
        }
    }

    /// The same failure with a server-requested delay.
    pub fn with_retry_after(self, delay: Duration) -> Self {
        Self {
            retry_after: Some(delay),
            ..self
        }
    }
}

impl From<FailureKind> for Failure {
    fn from(kind: FailureKind) -> Self {
        Self::new(kind)
    }
}

/// A status code outside `100..=599`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not an HTTP status code (100..=599)")]
pub struct InvalidStatusCode(pub u16);

/// A set of HTTP status codes: a fixed bitset, so membership is one shift and no allocation.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct StatusSet {
    bits: [u64; 10],
}

impl StatusSet {
    /// No status codes.
    pub const fn empty() -> Self {
        Self { bits: [0; 10] }
    }

    /// 502, 503 and 504: the upstream (or a gateway in front of it) failed, not the request.
    pub fn gateway_errors() -> Self {
        let mut set = Self::empty();
        for code in [502, 503, 504] {
            set.bits[code / 64] |= 1 << (code % 64);
        }
        set
    }

    /// Every 5xx status.
    pub fn server_errors() -> Self {
        let mut set = Self::empty();
        for code in 500..=599usize {
            set.bits[code / 64] |= 1 << (code % 64);
        }
        set
    }

    /// The set of these codes.
    pub fn from_codes(codes: impl IntoIterator<Item = u16>) -> Result<Self, InvalidStatusCode> {
        let mut set = Self::empty();
        for code in codes {
            set.insert(code)?;
        }
        Ok(set)
    }

    /// Adds a code.
    pub fn insert(&mut self, code: u16) -> Result<(), InvalidStatusCode> {
        if !(100..=599).contains(&code) {
            return Err(InvalidStatusCode(code));
        }
        let code = usize::from(code);
        self.bits[code / 64] |= 1 << (code % 64);
        Ok(())
    }

    /// True when `code` is in the set.
    pub fn contains(&self, code: u16) -> bool {
        let code = usize::from(code);
        self.bits
            .get(code / 64)
            .is_some_and(|word| word & (1 << (code % 64)) != 0)
    }

    /// The codes in the set, in order.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        (100..=599).filter(|code| self.contains(*code))
    }
}

impl std::fmt::Debug for StatusSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// Which failures are worth another attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryOn {
    /// Retry when no connection could be made.
    pub connect_failed: bool,
    /// Retry when the upstream refused the request unprocessed.
    pub refused: bool,
    /// Retry when the connection or stream was reset.
    pub reset: bool,
    /// Retry when the attempt timed out.
    pub timeout: bool,
    /// Retry these statuses.
    pub statuses: StatusSet,
}

impl Default for RetryOn {
    /// Every transport failure and the gateway errors (502, 503, 504).
    fn default() -> Self {
        Self {
            connect_failed: true,
            refused: true,
            reset: true,
            timeout: true,
            statuses: StatusSet::gateway_errors(),
        }
    }
}

impl RetryOn {
    /// True when a failure of this kind is configured as retryable (idempotency aside).
    pub fn covers(&self, kind: FailureKind) -> bool {
        match kind {
            FailureKind::ConnectFailed => self.connect_failed,
            FailureKind::Refused => self.refused,
            FailureKind::Reset => self.reset,
            FailureKind::Timeout => self.timeout,
            FailureKind::Status(code) => self.statuses.contains(code),
            FailureKind::Other => false,
        }
    }
}
