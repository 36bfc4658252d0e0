//! A map bounded by the bytes of its values, evicting the least recently
//! used: the frames the SQL endpoint and the pages read, and the encoded
//! gold pages.

use std::collections::HashMap;
use std::hash::Hash;

/// What a cache holds, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub entries: usize,
    pub bytes: u64,
    pub limit_bytes: u64,
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
}

struct Entry<V> {
    value: V,
    bytes: u64,
    used: u64,
}

/// At most `limit` bytes of values; a value larger than the limit is not
/// kept. Lookups and inserts are O(n) in the entries for eviction, which
/// stay few (one per table and date read).
pub struct ByteLru<K, V> {
    entries: HashMap<K, Entry<V>>,
    bytes: u64,
    limit: u64,
    clock: u64,
    hits: u64,
    misses: u64,
    evictions: u64,
}

impl<K: Eq + Hash + Clone, V: Clone> ByteLru<K, V> {
    pub fn new(limit: u64) -> Self {
        ByteLru {
            entries: HashMap::new(),
            bytes: 0,
            limit,
            clock: 0,
            hits: 0,
            misses: 0,
            evictions: 0,
        }
    }

    pub fn get(&mut self, key: &K) -> Option<V> {
        self.clock += 1;
        match self.entries.get_mut(key) {
            Some(entry) => {
                entry.used = self.clock;
                self.hits += 1;
                Some(entry.value.clone())
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    /// Keeps `value` (of `bytes`), evicting the least recently used
    /// entries to make room; `false` when it is larger than the limit.
    pub fn insert(&mut self, key: K, value: V, bytes: u64) -> bool {
        self.remove(&key);
        if bytes > self.limit {
            return false;
        }
        while self.bytes + bytes > self.limit {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.remove(&oldest);
            self.evictions += 1;
        }
        self.clock += 1;
        self.bytes += bytes;
        self.entries.insert(
            key,
            Entry {
                value,
                bytes,
                used: self.clock,
            },
        );
        true
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        let entry = self.entries.remove(key)?;
        self.bytes -= entry.bytes;
        Some(entry.value)
    }

    /// Removes the entries `drop` selects.
    pub fn remove_where(&mut self, mut drop: impl FnMut(&K) -> bool) {
        let keys: Vec<K> = self.entries.keys().filter(|k| drop(k)).cloned().collect();
        for key in keys {
            self.remove(&key);
        }
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            entries: self.entries.len(),
            bytes: self.bytes,
            limit_bytes: self.limit,
            hits: self.hits,
            misses: self.misses,
            evictions: self.evictions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_go_first_and_the_bytes_stay_bounded() {
        let mut cache = ByteLru::new(100);
        assert!(cache.insert("a", 1, 40));
        assert!(cache.insert("b", 2, 40));
        // "a" used last: "b" goes when "c" needs room.
        assert_eq!(cache.get(&"a"), Some(1));
        assert!(cache.insert("c", 3, 40));
        assert_eq!(cache.get(&"b"), None);
        assert_eq!(cache.get(&"a"), Some(1));
        assert_eq!(cache.get(&"c"), Some(3));
        let stats = cache.stats();
        assert_eq!((stats.entries, stats.bytes, stats.evictions), (2, 80, 1));
        assert_eq!((stats.hits, stats.misses), (3, 1));
        // Larger than the whole limit: not kept, nothing evicted for it.
        assert!(!cache.insert("huge", 4, 101));
        assert_eq!(cache.stats().entries, 2);
        // Replacing a key counts its bytes once.
        assert!(cache.insert("a", 5, 60));
        assert_eq!(cache.stats().bytes, 100);
        assert!(cache.insert("d", 6, 100));
        assert_eq!(cache.stats().entries, 1);
        assert_eq!(cache.stats().bytes, 100);
        cache.remove_where(|k| *k == "d");
        assert_eq!(cache.stats().bytes, 0);
    }
}
