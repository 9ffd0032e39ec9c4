//! A bounded, shared cache of classifications by normalised query text.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::{Classified, TooMany, classify, normalize};

/// Longest query string kept in the cache: the cache is for short statements sent
/// again and again, and an entry holds its key and every statement's classification.
pub const MAX_CACHED_TEXT: usize = 32 * 1024;

/// Classifications by normalised text. Shared by every session of a proxy.
#[derive(Debug)]
pub struct Cache {
    map: Mutex<HashMap<Box<str>, Arc<[Classified]>>>,
    capacity: usize,
}

/// The classification of one query string.
#[derive(Debug, Clone)]
pub struct Classification {
    /// The statements (from the cache: classified from another text of the same shape).
    pub statements: Arc<[Classified]>,
    /// This string's own statement texts, when they differ from the cached ones.
    texts: Option<Vec<String>>,
}

impl Classification {
    /// The text of statement `i` as this string has it.
    pub fn text(&self, i: usize) -> &str {
        match &self.texts {
            Some(t) => t.get(i).map_or("", String::as_str),
            None => self.statements.get(i).map_or("", |c| c.text.as_str()),
        }
    }
}

impl Cache {
    /// A cache holding at most `capacity` query strings (cleared when full).
    pub fn new(capacity: usize) -> Self {
        Self {
            map: Mutex::new(HashMap::with_capacity(capacity.min(4096))),
            capacity,
        }
    }

    /// The classification of `sql`, from the cache when its normalised text was seen;
    /// none if it holds more than `limit` statements.
    pub fn classify(&self, sql: &str, limit: usize) -> Result<Classification, TooMany> {
        let fresh = |statements: Arc<[Classified]>| Classification {
            statements,
            texts: None,
        };
        let key = (sql.len() <= MAX_CACHED_TEXT)
            .then(|| normalize(sql))
            .flatten();
        let Some(key) = key else {
            return Ok(fresh(classify(sql, limit)?.into()));
        };
        if let Some(hit) = self.lock().get(key.as_str()).cloned() {
            let texts = if let [one] = &*hit {
                (one.text != sql)
                    .then(|| vec![super::truncate(sql.trim().trim_end_matches(';').trim_end())])
            } else {
                Some(
                    super::split::split(sql, limit)?
                        .into_iter()
                        .map(|p| super::truncate(&p.text))
                        .collect(),
                )
            };
            return Ok(Classification {
                statements: hit,
                texts,
            });
        }
        let statements: Arc<[Classified]> = classify(sql, limit)?.into();
        if self.capacity > 0 && statements.iter().all(|c| c.cacheable) {
            let mut map = self.lock();
            if map.len() >= self.capacity {
                map.clear();
            }
            map.insert(key.into_boxed_str(), statements.clone());
        }
        Ok(fresh(statements))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Arc<[Classified]>>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
