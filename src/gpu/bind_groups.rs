//! The bind-group cache: a dispatch whose pipeline, buffers and uniform match an earlier
//! one reuses that dispatch's bind group, so a training step that binds the same pool
//! buffers every step creates no bind group after its first steps.
//!
//! A cached bind group keeps its buffers alive. So the cache is bounded twice, least
//! recently used entries going first: by its number of entries and by the bytes of the
//! distinct buffers its entries hold. A program that drops buffers it bound can also
//! empty it at once ([`crate::Gpu::clear_bind_groups`]). A bound of 0 entries turns it
//! off: every dispatch recorded into a pass then gets a bind group of its own.

use std::collections::HashMap;

/// What identifies a bind group: the pipeline (its layout), the uniform buffer and the
/// storage buffers by binding. wgpu's handles compare and hash by identity; holding them
/// here keeps them alive, so an identity is never reused while its entry exists.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct BindKey {
    pub pipeline: wgpu::ComputePipeline,
    pub uniform: wgpu::Buffer,
    pub buffers: Vec<(u32, wgpu::Buffer)>,
}

struct Entry {
    group: wgpu::BindGroup,
    last_used: u64,
}

/// Bounded least-recently-used cache of bind groups (see the module docs).
pub(crate) struct BindGroupCache {
    entries: HashMap<BindKey, Entry>,
    /// Every storage buffer some entry binds, with the number of entries binding it.
    held: HashMap<wgpu::Buffer, usize>,
    held_bytes: u64,
    clock: u64,
    max_entries: usize,
    max_bytes: u64,
    created: u64,
}

impl BindGroupCache {
    pub fn new(max_entries: usize, max_bytes: u64) -> BindGroupCache {
        BindGroupCache {
            entries: HashMap::new(),
            held: HashMap::new(),
            held_bytes: 0,
            clock: 0,
            max_entries,
            max_bytes,
            created: 0,
        }
    }

    /// The cached bind group for `key`, or the one `make` builds, cached.
    pub fn get_or_make(
        &mut self,
        key: BindKey,
        make: impl FnOnce(&BindKey) -> wgpu::BindGroup,
    ) -> wgpu::BindGroup {
        self.clock += 1;
        if let Some(entry) = self.entries.get_mut(&key) {
            entry.last_used = self.clock;
            return entry.group.clone();
        }
        let group = make(&key);
        self.created += 1;
        for (_, buffer) in &key.buffers {
            let count = self.held.entry(buffer.clone()).or_insert(0);
            if *count == 0 {
                self.held_bytes += buffer.size();
            }
            *count += 1;
        }
        let entry = Entry {
            group: group.clone(),
            last_used: self.clock,
        };
        self.entries.insert(key, entry);
        self.evict_to_limits();
        group
    }

    /// Drops the least recently used half of the entries (the newest always stays).
    fn evict_older_half(&mut self) {
        let mut ages: Vec<u64> = self.entries.values().map(|e| e.last_used).collect();
        ages.sort_unstable();
        let cutoff = ages[ages.len() / 2];
        let old: Vec<BindKey> = self
            .entries
            .iter()
            .filter(|(_, e)| e.last_used < cutoff)
            .map(|(k, _)| k.clone())
            .collect();
        for key in old {
            self.entries.remove(&key);
            self.release(&key);
        }
    }

    fn release(&mut self, key: &BindKey) {
        for (_, buffer) in &key.buffers {
            if let Some(count) = self.held.get_mut(buffer) {
                *count -= 1;
                if *count == 0 {
                    self.held.remove(buffer);
                    self.held_bytes -= buffer.size();
                }
            }
        }
    }

    /// Sets both bounds and evicts down to them.
    pub fn set_limits(&mut self, max_entries: usize, max_bytes: u64) {
        self.max_entries = max_entries;
        self.max_bytes = max_bytes;
        self.evict_to_limits();
    }

    /// Whether bind groups are kept at all.
    pub fn enabled(&self) -> bool {
        self.max_entries > 0
    }

    /// Counts a bind group made outside the cache (while it is off).
    pub fn count_uncached(&mut self) {
        self.created += 1;
    }

    /// Evicts the older half until both bounds hold (or only the newest entry is left).
    fn evict_to_limits(&mut self) {
        if !self.enabled() {
            return self.clear();
        }
        while self.entries.len() > 1
            && (self.entries.len() > self.max_entries || self.held_bytes > self.max_bytes)
        {
            self.evict_older_half();
        }
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.held.clear();
        self.held_bytes = 0;
    }

    /// Bind groups created since this cache was made.
    pub fn created(&self) -> u64 {
        self.created
    }

    /// Entries cached now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes of the distinct storage buffers the cached bind groups hold.
    pub fn held_bytes(&self) -> u64 {
        self.held_bytes
    }
}
