//! Sequence state: partial matches keyed by the sequence's `by` fields.
//!
//! A pure state machine: it reads the event time from the event (never a clock), so
//! replaying the same events rebuilds the same state. It is bounded per key and in
//! total; partial matches dropped for room are returned as [`Eviction`]s for the
//! engine to record. It survives a rule reload for every sequence whose canonical
//! source (and the lists and macros it uses) is unchanged.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::eval::Captured;
use crate::program::{CaptureSource, SeqDef};
use crate::verdict::{Eviction, EvictionReason};

/// Bounds of a [`SequenceState`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Partial matches of one sequence for one key (oldest evicted first).
    pub max_per_key: usize,
    /// Partial matches in total (the oldest eighth is evicted when full).
    pub max_total: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_per_key: 8,
            max_total: 1_000_000,
        }
    }
}

/// One partial match.
#[derive(Debug, Clone)]
pub(crate) struct Partial {
    /// Time of the first stage (microseconds).
    pub started: i64,
    /// Time of the last matched stage.
    pub last: i64,
    /// Index of the sequence in the bound rule set.
    pub seq: u16,
    /// Stages matched so far (at least 1).
    pub stage: u8,
    /// Event refs of the matched stages (length = number of stages).
    pub events: Box<[u128]>,
    /// Capture slots, when the sequence has captures.
    pub captures: Option<Box<[Captured]>>,
    /// Requests that completed the sequence and have not been seen to run. The
    /// partial stays one stage short of complete until one of them runs
    /// ([`SequenceState::outcome`]): a completing step that was refused (blocked,
    /// denied) does not disarm the chain, so a retry completes it again.
    pub completing: Option<Box<[u128]>>,
}

impl Partial {
    pub fn captures(&self) -> Option<&[Captured]> {
        self.captures.as_deref()
    }

    /// True when the partial can no longer complete at `now`.
    pub fn expired(&self, seq: &SeqDef, now: i64) -> bool {
        if now.saturating_sub(self.started) > seq.within {
            return true;
        }
        let next = seq.stages.get(usize::from(self.stage));
        next.and_then(|s| s.within)
            .is_some_and(|w| now.saturating_sub(self.last) > w)
    }
}

/// Live partial matches of every sequence, by key.
#[derive(Debug, Clone, Default)]
pub struct SequenceState {
    limits: Limits,
    pub(crate) keys: HashMap<Box<str>, Vec<Partial>>,
    total: usize,
    /// Completions not yet seen to run or be refused (see [`Partial::completing`]).
    pending: usize,
    /// Id and sequence hashes of the rule set the `seq` indices refer to.
    bound_id: u64,
    bound: Vec<u64>,
}

impl SequenceState {
    /// An empty state with these bounds.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// The bounds.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Number of live partial matches.
    pub fn live_partials(&self) -> usize {
        self.total
    }

    /// Number of keys with at least one partial match.
    pub fn live_keys(&self) -> usize {
        self.keys.len()
    }

    /// Estimated heap and table bytes held, counting allocator rounding to 16 bytes
    /// and hash-table slack (for the memory-per-partial-match figure).
    pub fn approx_bytes(&self) -> usize {
        let round = |n: usize| if n == 0 { 0 } else { n.div_ceil(16) * 16 };
        let slot = std::mem::size_of::<(Box<str>, Vec<Partial>)>() + 1;
        let mut bytes = self.keys.capacity() * slot;
        for (k, parts) in &self.keys {
            bytes += round(k.len());
            bytes += round(parts.capacity() * std::mem::size_of::<Partial>());
            for p in parts {
                bytes += round(p.events.len() * std::mem::size_of::<u128>());
                bytes += round(p.completing.as_ref().map_or(0, |c| c.len()) * 16);
                if let Some(c) = &p.captures {
                    bytes += round(c.len() * std::mem::size_of::<Captured>());
                    for cap in c.iter() {
                        bytes += round(cap.values.capacity() * std::mem::size_of::<Box<str>>());
                        bytes += cap.values.iter().map(|v| round(v.len())).sum::<usize>();
                    }
                }
            }
        }
        bytes
    }

    /// A copy of the partial matches of `keys` only, for judging a request without
    /// changing this state (the rest is left out; no global bound applies to the
    /// copy, so judging evicts nothing).
    pub fn scratch(&self, keys: &[String]) -> Self {
        let mut out = Self {
            limits: Limits {
                max_total: usize::MAX,
                ..self.limits
            },
            bound_id: self.bound_id,
            bound: self.bound.clone(),
            ..Self::default()
        };
        for k in keys {
            if let Some(parts) = self.keys.get(k.as_str()) {
                out.total += parts.len();
                out.pending += parts
                    .iter()
                    .map(|p| p.completing.as_ref().map_or(0, |c| c.len()))
                    .sum::<usize>();
                out.keys.insert(k.as_str().into(), parts.clone());
            }
        }
        out
    }

    /// Whether the partial matches refer to the sequences of rule set `id`.
    pub(crate) fn bound_to(&self, id: u64) -> bool {
        self.bound_id == id
    }

    /// Re-points partial matches at the sequences of another rule set: kept when the
    /// sequence's hash is unchanged, dropped otherwise.
    pub(crate) fn rebind(&mut self, id: u64, hashes: &[u64]) {
        if self.bound_id == id {
            return;
        }
        if self.bound.as_slice() != hashes {
            let map: Vec<Option<u16>> = self
                .bound
                .iter()
                .map(|h| {
                    hashes
                        .iter()
                        .position(|n| n == h)
                        .and_then(|i| u16::try_from(i).ok())
                })
                .collect();
            let mut total = 0;
            self.keys.retain(|_, parts| {
                parts.retain_mut(|p| match map.get(usize::from(p.seq)).copied().flatten() {
                    Some(new) => {
                        p.seq = new;
                        true
                    }
                    None => false,
                });
                total += parts.len();
                !parts.is_empty()
            });
            self.total = total;
            self.bound = hashes.to_vec();
        }
        self.bound_id = id;
    }

    /// Number of completions waiting to be seen to run or be refused.
    pub fn pending_completions(&self) -> usize {
        self.pending
    }

    /// What became of a request that completed sequences of `key`'s partial matches in
    /// `group`: it ran (the partial match is used up) or it did not (blocked, denied,
    /// expired: the partial match stays armed). Returns how many partial matches it
    /// concerned.
    pub(crate) fn outcome(&mut self, key: &str, group: &[u16], request: u128, ran: bool) -> usize {
        let Some(parts) = self.keys.get_mut(key) else {
            return 0;
        };
        let mut touched = 0;
        let mut removed = 0;
        let mut resolved = 0;
        parts.retain_mut(|p| {
            if !group.contains(&p.seq) {
                return true;
            }
            let Some(refs) = p.completing.as_deref() else {
                return true;
            };
            if !refs.contains(&request) {
                return true;
            }
            touched += 1;
            if ran {
                resolved += refs.len();
                removed += 1;
                return false;
            }
            let left: Vec<u128> = refs.iter().copied().filter(|r| *r != request).collect();
            resolved += 1;
            p.completing = (!left.is_empty()).then(|| left.into_boxed_slice());
            true
        });
        self.pending = self.pending.saturating_sub(resolved);
        self.total = self.total.saturating_sub(removed);
        if parts.is_empty() {
            self.keys.remove(key);
        }
        touched
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Vec<Partial>> {
        self.keys.get(key)
    }

    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut Vec<Partial>> {
        self.keys.get_mut(key)
    }

    /// `n` more completions wait for their outcome; `m` fewer (their partial
    /// matches were dropped).
    pub(crate) fn pending_changed(&mut self, n: usize, m: usize) {
        self.pending = (self.pending + n).saturating_sub(m);
    }

    pub(crate) fn removed(&mut self, n: usize) {
        self.total = self.total.saturating_sub(n);
    }

    pub(crate) fn drop_empty(&mut self, key: &str) {
        if self.keys.get(key).is_some_and(Vec::is_empty) {
            self.keys.remove(key);
        }
    }

    /// Adds a partial match, making room first.
    pub(crate) fn insert(
        &mut self,
        key: Cow<'_, str>,
        partial: Partial,
        seqs: &[SeqDef],
        now: i64,
        evictions: &mut Vec<Eviction>,
    ) {
        if self.total >= self.limits.max_total {
            self.evict_batch(seqs, now, evictions);
        }
        let max_per_key = self.limits.max_per_key.max(1);
        let seq = partial.seq;
        let parts = match self.keys.get_mut(&*key) {
            Some(p) => p,
            None => {
                let mut v = Vec::new();
                v.reserve_exact(1);
                self.keys
                    .entry(key.clone().into_owned().into_boxed_str())
                    .or_insert(v)
            }
        };
        let same: Vec<usize> = parts
            .iter()
            .enumerate()
            .filter(|(_, p)| p.seq == seq)
            .map(|(i, _)| i)
            .collect();
        let mut evicted = 0;
        if same.len() >= max_per_key
            && let Some(&oldest) = same
                .iter()
                .min_by_key(|&&i| parts.get(i).map(|p| (p.started, p.events.first().copied())))
        {
            {
                let old = parts.swap_remove(oldest);
                evicted = 1;
                evictions.push(Eviction {
                    sequence: seqs
                        .get(usize::from(old.seq))
                        .map_or_else(|| "".into(), |s| s.name.clone()),
                    key: key.into_owned(),
                    stages_matched: old.stage,
                    started: old.started,
                    reason: EvictionReason::KeyLimit,
                });
            }
        }
        parts.push(partial);
        self.total = self.total + 1 - evicted;
    }

    /// Drops expired partial matches everywhere (call now and then; windows are also
    /// enforced lazily whenever a key is touched).
    pub(crate) fn sweep(&mut self, seqs: &[SeqDef], now: i64) {
        let mut total = 0;
        self.keys.retain(|_, parts| {
            parts.retain(|p| {
                seqs.get(usize::from(p.seq))
                    .is_some_and(|s| !p.expired(s, now))
            });
            total += parts.len();
            !parts.is_empty()
        });
        self.total = total;
    }

    /// When full: drop expired matches, then the oldest until 7/8 full.
    fn evict_batch(&mut self, seqs: &[SeqDef], now: i64, evictions: &mut Vec<Eviction>) {
        self.sweep(seqs, now);
        let target = self.limits.max_total - self.limits.max_total / 8;
        if self.total < target.max(1) && self.total < self.limits.max_total {
            return;
        }
        let mut all: Vec<(i64, u128, &str, usize)> = Vec::with_capacity(self.total);
        for (k, parts) in &self.keys {
            for (i, p) in parts.iter().enumerate() {
                all.push((p.started, p.events.first().copied().unwrap_or(0), k, i));
            }
        }
        all.sort_unstable();
        let excess = self.total.saturating_sub(target.saturating_sub(1));
        let mut doomed: HashMap<Box<str>, Vec<usize>> = HashMap::new();
        for (_, _, k, i) in all.into_iter().take(excess) {
            doomed.entry(k.into()).or_default().push(i);
        }
        let mut keys: Vec<Box<str>> = doomed.keys().cloned().collect();
        keys.sort_unstable();
        for k in keys {
            let mut idx = doomed.remove(&k).unwrap_or_default();
            idx.sort_unstable_by(|a, b| b.cmp(a));
            if let Some(parts) = self.keys.get_mut(&k) {
                for i in idx {
                    if i < parts.len() {
                        let old = parts.swap_remove(i);
                        self.total -= 1;
                        evictions.push(Eviction {
                            sequence: seqs
                                .get(usize::from(old.seq))
                                .map_or_else(|| "".into(), |s| s.name.clone()),
                            key: k.to_string(),
                            stages_matched: old.stage,
                            started: old.started,
                            reason: EvictionReason::TotalLimit,
                        });
                    }
                }
                if parts.is_empty() {
                    self.keys.remove(&k);
                }
            }
        }
    }

    /// Stores result values into the captures of partial matches whose stage was the
    /// request `request_ref`.
    pub(crate) fn capture_result(
        &mut self,
        key: &str,
        group: &[u16],
        seqs: &[SeqDef],
        request_ref: u128,
        result: ResultCapture<'_>,
    ) -> usize {
        let ResultCapture { name, values, keys } = result;
        let Some(parts) = self.keys.get_mut(key) else {
            return 0;
        };
        let mut stored = 0;
        for p in parts.iter_mut().filter(|p| group.contains(&p.seq)) {
            let Some(seq) = seqs.get(usize::from(p.seq)) else {
                continue;
            };
            for (i, stage) in seq.stages.iter().enumerate().take(usize::from(p.stage)) {
                if p.events.get(i) != Some(&request_ref) {
                    continue;
                }
                for cap in &stage.captures {
                    let matches_name = &*cap.qualified == name || &*cap.short == name;
                    if !matches_name || !matches!(cap.source, CaptureSource::Result { .. }) {
                        continue;
                    }
                    if let Some(slot) = p
                        .captures
                        .as_mut()
                        .and_then(|c| c.get_mut(usize::from(cap.slot)))
                    {
                        for v in values {
                            slot.push(v, cap.limit, cap.bytes);
                        }
                        for k in keys {
                            slot.push_key(k, cap.limit, cap.bytes);
                        }
                        stored += 1;
                    }
                }
            }
        }
        stored
    }
}

/// Values a result carries for one capture name, with their host keys.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ResultCapture<'a> {
    pub name: &'a str,
    pub values: &'a [String],
    pub keys: &'a [String],
}
