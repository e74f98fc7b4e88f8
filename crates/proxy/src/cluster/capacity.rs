//! What each endpoint showed it can take, learnt from its busy answers, and the cluster's
//! limit that follows from it (`adaptive = "capacity"`).
//!
//! An endpoint that answers busy (a busy 503, a 429) to a request sent while it had `n` of
//! ours in flight takes fewer than `n` at once: its capacity is at most `n - 1`
//! ([`Endpoint::learn_refusal`]). Nothing is written down: the limit is what the endpoints
//! said. Picks prefer an endpoint below its capacity, so a request is not sent where it
//! would be refused while another has room; and a cluster whose concurrency is
//! `adaptive = "capacity"` admits at most the sum of its routable endpoints' capacities,
//! so the requests past it wait in the cluster's priority queue or are shed at once by
//! priority, rather than being sent to be refused. A capacity grows by an eighth after two
//! seconds without a busy answer (the endpoint may have been scaled up), so the limit is
//! probed upwards gently: one request past it every two seconds per endpoint.

use std::time::Instant;

use super::Cluster;
use crate::endpoint::EndpointGuard;

impl Cluster {
    /// Learns from a busy answer on `guard`'s endpoint; refits the cluster's limit when
    /// what the endpoint takes changed.
    pub(crate) fn learn_refusal(&self, guard: &EndpointGuard, now: Instant) {
        if guard
            .endpoint()
            .learn_refusal(guard.in_flight_at_send(), now)
        {
            self.fit_capacity();
        }
    }

    /// Lets learnt capacities grow when their time has come (see the module doc), and
    /// refits the limit: an endpoint ejected, tripped or back changes what the routable
    /// ones take, and a reload's new limiter starts from its `max`. Called by the cluster's
    /// passive task on every tick (a sum over the endpoints; the limit is only set when it
    /// changed).
    pub(crate) fn grow_capacities(&self, now: Instant) {
        for endpoint in self.endpoints().iter() {
            endpoint.grow_capacity(now);
        }
        self.fit_capacity();
    }

    /// The sum of the routable endpoints' capacities, `None` while one of them has shown
    /// no limit.
    pub(crate) fn learnt_capacity(&self) -> Option<u32> {
        let endpoints = self.endpoints();
        let mut sum: u32 = 0;
        let mut any = false;
        for endpoint in endpoints.iter().filter(|endpoint| endpoint.is_routable()) {
            sum = sum.saturating_add(endpoint.capacity()?);
            any = true;
        }
        any.then_some(sum)
    }

    /// Sets a capacity-following limit to [`learnt_capacity`](Self::learnt_capacity).
    fn fit_capacity(&self) {
        self.admission.follow_capacity(self.learnt_capacity());
    }
}
