//! A bounded, shared cache of classifications by normalised query text.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::{Classified, classify, normalize};

/// Classifications by normalised text. Shared by every session of a proxy.
#[derive(Debug)]
pub struct Cache {
    map: Mutex<HashMap<Box<str>, Arc<[Classified]>>>,
    capacity: usize,
}

impl Cache {
    /// A cache holding at most `capacity` query strings (cleared when full).
    pub fn new(capacity: usize) -> Self {
        Self {
            map: Mutex::new(HashMap::with_capacity(capacity.min(4096))),
            capacity,
        }
    }

    /// The classification of `sql`, from the cache when its normalised text was seen.
    pub fn classify(&self, sql: &str) -> Arc<[Classified]> {
        let Some(key) = normalize(sql) else {
            return classify(sql).into();
        };
        if let Some(hit) = self.lock().get(key.as_str()) {
            return with_text(hit, sql);
        }
        let fresh: Arc<[Classified]> = classify(sql).into();
        if self.capacity > 0 && fresh.iter().all(|c| c.cacheable) {
            let mut map = self.lock();
            if map.len() >= self.capacity {
                map.clear();
            }
            map.insert(key.into_boxed_str(), fresh.clone());
        }
        fresh
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Arc<[Classified]>>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A cached classification with this string's own text (literals differ).
fn with_text(hit: &Arc<[Classified]>, sql: &str) -> Arc<[Classified]> {
    if let [one] = &**hit {
        if one.text == sql {
            return hit.clone();
        }
        let mut c = one.clone();
        c.text = super::truncate(sql.trim());
        return Arc::from(vec![c]);
    }
    // Several statements: their texts come from a fresh split (cheap next to a parse).
    let pieces = super::split::split(sql);
    hit.iter()
        .enumerate()
        .map(|(i, c)| {
            let mut c = c.clone();
            if let Some(p) = pieces.get(i) {
                c.text = super::truncate(&p.text);
            }
            c
        })
        .collect::<Vec<_>>()
        .into()
}
