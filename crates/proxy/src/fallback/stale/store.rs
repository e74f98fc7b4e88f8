//! A bounded map from keys to entries with a size: least recently used entries go first
//! whenever the count or the bytes would pass their limits.
//!
//! Plain data, no HTTP and no time: the cache above decides what goes in and what may come
//! out; this only keeps the promise the proptests check, that neither limit is ever passed.
//!
//! The map hashes with foldhash, seeded at random per process, not the standard SipHash:
//! the stale cache looks a client's URL up on every answer that may be kept, and SipHash
//! was a sixth of what the cache then cost (see bench/README.md, issue 19). Its keys are
//! the clients' own, so a keyed hash it stays: guessing collisions needs the seed, and the
//! store holds at most `max_entries` keys to collide.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// The limits a [`Store`] stays within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Most entries.
    pub entries: usize,
    /// Most bytes, summed over entries.
    pub bytes: u64,
}

#[derive(Debug)]
struct Slot<V> {
    used: u64,
    size: u64,
    value: V,
}

/// Entries by key, in least-recently-used order.
#[derive(Debug)]
pub(crate) struct Store<K, V> {
    slots: HashMap<K, Slot<V>, foldhash::fast::RandomState>,
    /// Keys by their last use (a counter, so no two are equal).
    order: BTreeMap<u64, K>,
    clock: u64,
    bytes: u64,
}

/// What an insert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Inserted {
    /// Stored, after evicting this many others.
    Stored {
        /// Entries evicted to make room (not counting one it replaced).
        evicted: usize,
    },
    /// Larger than the byte limit on its own: not stored (an entry of the same key is gone).
    TooLarge,
}

impl<K: Hash + Eq + Clone, V> Store<K, V> {
    /// An empty store.
    pub(crate) fn new() -> Self {
        Self {
            slots: HashMap::default(),
            order: BTreeMap::new(),
            clock: 0,
            bytes: 0,
        }
    }

    /// Entries held.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Stores `value` (of `size` bytes) under `key`, replacing what was there, and evicts the
    /// least recently used until `limits` hold again.
    pub(crate) fn insert(&mut self, key: K, value: V, size: u64, limits: Limits) -> Inserted {
        self.remove(&key);
        if size > limits.bytes || limits.entries == 0 {
            return Inserted::TooLarge;
        }
        let used = self.tick();
        self.order.insert(used, key.clone());
        self.slots.insert(key, Slot { used, size, value });
        self.bytes += size;
        Inserted::Stored {
            evicted: self.trim(limits),
        }
    }

    /// The entry under `key`, now the most recently used.
    pub(crate) fn get<Q: Hash + Eq + ?Sized>(&mut self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        let used = self.tick();
        let slot = self.slots.get_mut(key)?;
        let key = self
            .order
            .remove(&slot.used)
            .expect("NOTE: every slot's use is in the order");
        slot.used = used;
        self.order.insert(used, key);
        Some(&slot.value)
    }

    /// The entry under `key`, its place in the use order left as it is.
    pub(crate) fn peek<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.slots.get(key).map(|slot| &slot.value)
    }

    /// Removes the entry under `key`, if there is one.
    pub(crate) fn remove<Q: Hash + Eq + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        let slot = self.slots.remove(key)?;
        self.order.remove(&slot.used);
        self.bytes -= slot.size;
        Some(slot.value)
    }

    /// Evicts the least recently used until `limits` hold; returns how many went.
    pub(crate) fn trim(&mut self, limits: Limits) -> usize {
        let mut evicted = 0;
        while self.slots.len() > limits.entries || self.bytes > limits.bytes {
            let Some((_, key)) = self.order.pop_first() else {
                break;
            };
            if let Some(slot) = self.slots.remove(&key) {
                self.bytes -= slot.size;
                evicted += 1;
            }
        }
        evicted
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const LIMITS: Limits = Limits {
        entries: 3,
        bytes: 100,
    };

    #[test]
    fn the_least_recently_used_entry_goes_first() {
        let mut store = Store::new();
        for key in ["a", "b", "c"] {
            store.insert(key, (), 10, LIMITS);
        }
        store.get(&"a");
        assert_eq!(
            store.insert("d", (), 10, LIMITS),
            Inserted::Stored { evicted: 1 }
        );
        assert!(store.get(&"b").is_none(), "b was the least recently used");
        assert!(store.get(&"a").is_some());
        assert_eq!((store.len(), store.bytes()), (3, 30));
    }

    #[test]
    fn bytes_evict_as_many_as_needed_and_an_oversized_entry_is_refused() {
        let mut store = Store::new();
        store.insert("a", (), 40, LIMITS);
        store.insert("b", (), 40, LIMITS);
        assert_eq!(
            store.insert("c", (), 90, LIMITS),
            Inserted::Stored { evicted: 2 }
        );
        assert_eq!(store.insert("c", (), 101, LIMITS), Inserted::TooLarge);
        assert_eq!((store.len(), store.bytes()), (0, 0));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8, u64),
        Get(u8),
        Remove(u8),
        Shrink(usize, u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..20, 0u64..60).prop_map(|(key, size)| Op::Insert(key, size)),
            2 => (0u8..20).prop_map(Op::Get),
            1 => (0u8..20).prop_map(Op::Remove),
            1 => (1usize..8, 1u64..200).prop_map(|(entries, bytes)| Op::Shrink(entries, bytes)),
        ]
    }

    proptest! {
        /// Against a naive model (a list in use order): the same keys are held, the byte
        /// count is their sum, and neither limit is ever passed.
        #[test]
        fn limits_are_never_passed_and_the_store_agrees_with_a_naive_model(
            ops in proptest::collection::vec(op(), 1..200),
        ) {
            let mut limits = Limits { entries: 5, bytes: 150 };
            let mut store = Store::new();
            let mut model: Vec<(u8, u64)> = Vec::new();
            let trim = |model: &mut Vec<(u8, u64)>, limits: Limits| {
                while model.len() > limits.entries
                    || model.iter().map(|(_, size)| size).sum::<u64>() > limits.bytes
                {
                    model.remove(0);
                }
            };
            for op in ops {
                match op {
                    Op::Insert(key, size) => {
                        model.retain(|(k, _)| *k != key);
                        if size <= limits.bytes {
                            model.push((key, size));
                            trim(&mut model, limits);
                        }
                        store.insert(key, size, size, limits);
                    }
                    Op::Get(key) => {
                        let found = store.get(&key).copied();
                        let position = model.iter().position(|(k, _)| *k == key);
                        prop_assert_eq!(found, position.map(|at| model[at].1));
                        if let Some(at) = position {
                            let entry = model.remove(at);
                            model.push(entry);
                        }
                    }
                    Op::Remove(key) => {
                        store.remove(&key);
                        model.retain(|(k, _)| *k != key);
                    }
                    Op::Shrink(entries, bytes) => {
                        limits = Limits { entries, bytes };
                        store.trim(limits);
                        trim(&mut model, limits);
                    }
                }
                prop_assert!(store.len() <= limits.entries);
                prop_assert!(store.bytes() <= limits.bytes);
                prop_assert_eq!(store.len(), model.len());
                prop_assert_eq!(store.bytes(), model.iter().map(|(_, size)| size).sum::<u64>());
            }
        }
    }
}
