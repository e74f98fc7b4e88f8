//! The decision one request gets: whether to answer, after how long, with which status, and
//! how its body is sent. Pure: the randomness comes in as [`Draws`], so a seeded mock
//! repeats its decisions exactly and a test names the draw it wants.

use std::time::Duration;

use super::{Behaviour, Mode};
use crate::mock::body::{Cut, Keep, Shape};

/// The random numbers one request's decision uses, each uniform in `[0, 1)`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Draws {
    /// Compared with `failure_rate`.
    pub failure: f64,
    /// Sample the delay (the first alone is the share of `latency_jitter`).
    pub latency: [f64; 2],
}

impl Behaviour {
    /// How the body of an answer is sent.
    fn shape(&self) -> Shape {
        let keep = self.truncate_after.map_or(Keep::Half, Keep::Bytes);
        let cut = match (self.mode, self.truncate_after) {
            (Mode::CutBody, _) => Some((keep, Cut::Fail)),
            (Mode::StallBody, _) => Some((keep, Cut::Stall)),
            (_, Some(count)) => Some((Keep::Bytes(count), Cut::Fail)),
            (_, None) => None,
        };
        Shape {
            rate: self.body_rate,
            cut,
        }
    }

    /// Decides what to do with one request, given how many are in flight counting this one
    /// and the random numbers it may use.
    pub fn decide(&self, in_flight: u64, draws: Draws) -> Action {
        match self.mode {
            Mode::Reset => return Action::Reset,
            Mode::Hang => return Action::Hang,
            Mode::Serve | Mode::CutBody | Mode::StallBody => {}
        }
        if self
            .capacity
            .is_some_and(|capacity| in_flight > u64::from(capacity))
        {
            return Action::Overloaded;
        }
        let delay = match &self.latency_distribution {
            Some(latency) => latency.sample(draws.latency),
            None => self
                .latency
                .saturating_add(self.latency_jitter.mul_f64(draws.latency[0])),
        };
        let status = if draws.failure < self.failure_rate {
            self.failure_status
        } else {
            self.status
        };
        Action::Respond {
            delay,
            status,
            body: self.shape(),
        }
    }
}

/// What a mock does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Wait `delay`, then answer with `status`.
    Respond {
        /// How long to wait first.
        delay: Duration,
        /// The status to answer with.
        status: u16,
        /// How the body is sent: its pace, and where it is broken off, if it is.
        body: Shape,
    },
    /// Over capacity: answer `503` with `Retry-After` at once.
    Overloaded,
    /// Reset the connection.
    Reset,
    /// Never answer.
    Hang,
}
