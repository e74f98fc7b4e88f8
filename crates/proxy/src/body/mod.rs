//! The body type the proxy serves and sends, both ways, the two bodies it makes itself, and
//! the one wrapper that holds something until a body ends ([`Guarded`]).
//!
//! Vocabulary: every stage hands bodies on, so the type sits below them all.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};

mod guarded;

pub(crate) use self::guarded::{End, Guard, Guarded};

/// Errors inside bodies, boxed: they come from either side of the proxy.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type the proxy serves and sends.
pub(crate) type ProxyBody = BoxBody<Bytes, BoxError>;

/// A body of fixed bytes.
pub(crate) fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An empty body; boxing it allocates nothing (it is zero-sized), unlike an empty `Full`.
pub(crate) fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed()
}
