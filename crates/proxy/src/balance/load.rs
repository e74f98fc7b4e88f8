//! How much traffic each priority level and each zone takes: pure functions of healthy
//! capacity, so the failover rules are tested without endpoints, clocks or sockets.
//!
//! # Priorities (Envoy's priority load)
//!
//! A level's *health* is its healthy share (healthy weight / total weight) times the
//! overprovisioning factor 1.4, capped at 1: a level with 72 % of its capacity healthy still
//! takes all its traffic (it was provisioned with headroom), one with 50 % keeps 70 % and the
//! rest spills to the next level. Levels are served in priority order, each taking up to its
//! health of what is left; when the levels together have less than full health, the loads are
//! scaled up so they still sum to 1. When no level has any health, level 0 takes everything
//! (and is then in panic, if panic is enabled).
//!
//! # Panic
//!
//! Following Envoy, panic applies only when the levels *together* lack capacity (normalized
//! total health below 1): if lower levels can absorb what a sick level sheds, the sick level
//! keeps serving on its healthy endpoints only. Otherwise a level whose healthy share is under
//! the threshold spreads its traffic over all its endpoints, healthy or not, rather than
//! crush the few survivors (health checks can be wrong; overload is certain).
//!
//! # Zones
//!
//! Simplified Envoy zone-aware routing, within one level: if the local zone's healthy share
//! is at least the level's, everything stays local; otherwise the local zone keeps traffic in
//! proportion to its share relative to the level's (`local / level`), and the deficit goes to
//! the other zones, spread by their healthy weight.

/// Headroom a level is assumed to have: 1.4 means a level at 1/1.4 ≈ 71 % healthy capacity
/// still takes all of its traffic.
pub(crate) const OVERPROVISIONING: f64 = 1.4;

/// Healthy and total weight of a group of endpoints (a level, or a zone within one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Capacity {
    /// Weight of the endpoints that are healthy.
    pub healthy: u64,
    /// Weight of every endpoint.
    pub total: u64,
}

impl Capacity {
    /// Healthy weight over total weight; 0 for an empty group.
    pub(crate) fn share(self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.healthy as f64 / self.total as f64
        }
    }

    /// Adds one endpoint's weight.
    pub(crate) fn add(&mut self, weight: u32, healthy: bool) {
        self.total += u64::from(weight);
        if healthy {
            self.healthy += u64::from(weight);
        }
    }
}

/// The traffic share of each priority level, in priority order, and whether the levels
/// together have full capacity.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PriorityLoad {
    /// Share of traffic per level; they sum to 1 (for at least one level).
    pub loads: Vec<f64>,
    /// Whether the levels together have full health (normalized total health ≥ 1): then no
    /// level is in panic.
    pub enough_capacity: bool,
}

/// Splits traffic over priority levels by their healthy capacity.
pub(crate) fn priority_load(levels: &[Capacity]) -> PriorityLoad {
    let health: Vec<f64> = levels
        .iter()
        .map(|level| (level.share() * OVERPROVISIONING).min(1.0))
        .collect();
    let total: f64 = health.iter().sum::<f64>().min(1.0);
    let mut loads = vec![0.0; levels.len()];
    if total <= 0.0 {
        if let Some(first) = loads.first_mut() {
            *first = 1.0;
        }
        return PriorityLoad {
            loads,
            enough_capacity: false,
        };
    }
    let mut remaining = 1.0_f64;
    for (load, health) in loads.iter_mut().zip(&health) {
        *load = (health / total).min(remaining);
        remaining -= *load;
    }
    // Rounding may leave a sliver unassigned; it belongs to the last level that has health.
    if remaining > 0.0
        && let Some(last) = health.iter().rposition(|health| *health > 0.0)
    {
        loads[last] += remaining;
    }
    PriorityLoad {
        loads,
        enough_capacity: total >= 1.0,
    }
}

/// Whether a level spreads its traffic over all its endpoints, healthy or not.
/// `threshold` is a share from 0 (never panic) to 1.
pub(crate) fn in_panic(level: Capacity, threshold: f64, enough_capacity: bool) -> bool {
    !enough_capacity && level.share() < threshold
}

/// The share of a level's traffic that stays in the local zone, given the local zone's
/// capacity and the whole level's (which includes the local zone's).
pub(crate) fn local_zone_share(local: Capacity, level: Capacity) -> f64 {
    if local.healthy == 0 {
        return 0.0;
    }
    // local.healthy / local.total >= level.healthy / level.total, compared exactly.
    let local_side = u128::from(local.healthy) * u128::from(level.total);
    let level_side = u128::from(level.healthy) * u128::from(local.total);
    if local_side >= level_side {
        return 1.0;
    }
    (local.share() / level.share()).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn capacity(healthy: u64, total: u64) -> Capacity {
        Capacity { healthy, total }
    }

    #[test]
    fn a_healthy_primary_level_takes_everything() {
        let load = priority_load(&[capacity(4, 4), capacity(2, 2)]);
        assert_eq!(load.loads, [1.0, 0.0]);
        assert!(load.enough_capacity);
    }

    #[test]
    fn a_primary_above_the_overprovisioned_share_still_takes_everything() {
        // 3 of 4 healthy: 0.75 × 1.4 > 1.
        let load = priority_load(&[capacity(3, 4), capacity(2, 2)]);
        assert_eq!(load.loads, [1.0, 0.0]);
    }

    #[test]
    fn a_half_healthy_primary_spills_the_rest_to_the_next_level() {
        let load = priority_load(&[capacity(1, 2), capacity(2, 2)]);
        assert!((load.loads[0] - 0.7).abs() < 1e-9, "{:?}", load.loads);
        assert!((load.loads[1] - 0.3).abs() < 1e-9, "{:?}", load.loads);
        assert!(load.enough_capacity);
    }

    #[test]
    fn a_dead_primary_fails_over_entirely() {
        let load = priority_load(&[capacity(0, 3), capacity(1, 1)]);
        assert_eq!(load.loads, [0.0, 1.0]);
    }

    #[test]
    fn with_nothing_healthy_the_primary_takes_everything() {
        let load = priority_load(&[capacity(0, 3), capacity(0, 1)]);
        assert_eq!(load.loads, [1.0, 0.0]);
        assert!(!load.enough_capacity);
        assert!(in_panic(capacity(0, 3), 0.5, load.enough_capacity));
        assert!(!in_panic(capacity(0, 3), 0.0, load.enough_capacity));
    }

    #[test]
    fn short_capacity_scales_loads_up_to_one() {
        // 0.2 × 1.4 = 0.28 and 0.2 × 1.4 = 0.28: total 0.56, each takes half.
        let load = priority_load(&[capacity(1, 5), capacity(1, 5)]);
        assert!((load.loads[0] - 0.5).abs() < 1e-9);
        assert!((load.loads[1] - 0.5).abs() < 1e-9);
        assert!(!load.enough_capacity);
    }

    #[test]
    fn panic_is_ignored_while_other_levels_have_capacity() {
        let load = priority_load(&[capacity(1, 4), capacity(4, 4)]);
        assert!(load.enough_capacity);
        assert!(!in_panic(capacity(1, 4), 0.5, load.enough_capacity));
        let alone = priority_load(&[capacity(1, 4)]);
        assert!(in_panic(capacity(1, 4), 0.5, alone.enough_capacity));
        assert!(!in_panic(capacity(2, 4), 0.5, alone.enough_capacity));
    }

    #[test]
    fn the_local_zone_keeps_everything_while_as_healthy_as_the_level() {
        assert_eq!(local_zone_share(capacity(2, 2), capacity(4, 4)), 1.0);
        assert_eq!(local_zone_share(capacity(1, 2), capacity(2, 4)), 1.0);
    }

    #[test]
    fn a_weakened_local_zone_sends_its_deficit_elsewhere() {
        // Local 1 of 2 healthy, level 3 of 4: local keeps 0.5 / 0.75.
        let share = local_zone_share(capacity(1, 2), capacity(3, 4));
        assert!((share - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(local_zone_share(capacity(0, 2), capacity(2, 4)), 0.0);
    }

    fn levels() -> impl Strategy<Value = Vec<Capacity>> {
        prop::collection::vec(
            (0_u64..20, 0_u64..20).prop_map(|(healthy, extra)| capacity(healthy, healthy + extra)),
            1..6,
        )
    }

    proptest! {
        #[test]
        fn priority_loads_sum_to_one_and_skip_levels_without_health(levels in levels()) {
            let load = priority_load(&levels);
            let sum: f64 = load.loads.iter().sum();
            prop_assert!((sum - 1.0).abs() < 1e-9, "sum {sum} of {:?}", load.loads);
            let any_healthy = levels.iter().any(|level| level.healthy > 0);
            for (index, (share, level)) in load.loads.iter().zip(&levels).enumerate() {
                prop_assert!(*share >= 0.0);
                if *share > 0.0 && level.healthy == 0 {
                    // Only the all-down fallback routes to a level without health.
                    prop_assert!(!any_healthy && index == 0);
                }
            }
        }

        #[test]
        fn a_fully_healthy_level_leaves_nothing_to_later_levels(
            mut levels in levels(), at in 0_usize..6,
        ) {
            let at = at % levels.len();
            levels[at] = capacity(3, 3);
            let load = priority_load(&levels);
            prop_assert!(load.loads[at + 1..].iter().all(|share| *share == 0.0));
        }

        #[test]
        fn the_local_share_is_a_fraction_and_never_routes_to_a_zone_without_health(
            local_healthy in 0_u64..20, local_extra in 0_u64..20,
            remote_healthy in 0_u64..20, remote_extra in 0_u64..20,
        ) {
            let local = capacity(local_healthy, local_healthy + local_extra);
            let remote = capacity(remote_healthy, remote_healthy + remote_extra);
            let level = capacity(local.healthy + remote.healthy, local.total + remote.total);
            prop_assume!(level.healthy > 0);
            let share = local_zone_share(local, level);
            prop_assert!((0.0..=1.0).contains(&share));
            if share > 0.0 { prop_assert!(local.healthy > 0); }
            if share < 1.0 { prop_assert!(remote.healthy > 0); }
            if local.share() >= remote.share() { prop_assert_eq!(share, 1.0); }
        }
    }
}
