//! What a session remembers of lineage: its cursors and prepared statements, by name.

use std::sync::Arc;

use super::Lineage;

/// Most cursor and prepared-statement names a session's lineage remembers.
const MAX_NAMES: usize = 4096;

/// The lineage a session remembers: of its cursors and SQL prepared statements.
#[derive(Debug, Clone, Default)]
pub struct Named {
    /// By name: declared `WITH HOLD`, and the lineage of its query.
    cursors: std::collections::HashMap<String, (bool, Arc<Lineage>)>,
    prepared: std::collections::HashMap<String, Arc<Lineage>>,
}

impl Named {
    /// A statement prepared or closed by the extended protocol under `name`: SQL's
    /// `EXECUTE` shares its names. `None`: closed.
    pub fn protocol(&mut self, name: &str, lineage: Option<Arc<Lineage>>) {
        if name.is_empty() {
            return;
        }
        // Protocol names are case-sensitive; SQL lowercases unquoted ones: a name
        // that differs only in case is forgotten (unknown, masked whole).
        let lower = name.to_lowercase();
        match lineage {
            Some(l) if lower == name => {
                self.prepared.insert(lower, l);
            }
            _ => {
                self.prepared.remove(&lower);
            }
        }
    }

    /// The lineage of the rows `l` returns in this session, remembering what it
    /// declares (statements are planned in order, before they run: a name declared
    /// by a statement that then fails keeps a lineage no rows will use). Whatever
    /// could have changed a name behind the gateway's back forgets it, so that a
    /// later `FETCH` or `EXECUTE` of it is treated as unknown (masked whole).
    pub fn resolve(&mut self, l: &Arc<Lineage>) -> Arc<Lineage> {
        let none = || Arc::new(Lineage::Rows(Vec::new()));
        // Bounded memory: past this many names, all are forgotten (masked whole).
        if self.cursors.len() + self.prepared.len() > MAX_NAMES {
            self.cursors.clear();
            self.prepared.clear();
        }
        match &**l {
            Lineage::Unknown => {
                self.cursors.clear();
                self.prepared.clear();
                l.clone()
            }
            Lineage::Calls(inner) => {
                self.cursors.clear();
                self.prepared.clear();
                self.resolve(inner)
            }
            Lineage::Declare(n, hold, inner) => {
                self.cursors.insert(n.clone(), (*hold, inner.clone()));
                none()
            }
            Lineage::Close(Some(n)) => {
                self.cursors.remove(n);
                none()
            }
            Lineage::Close(None) => {
                self.cursors.clear();
                none()
            }
            Lineage::Forget(Some(n)) => {
                self.prepared.remove(n);
                none()
            }
            Lineage::Forget(None) => {
                self.cursors.clear();
                self.prepared.clear();
                none()
            }
            Lineage::EndTransaction => {
                self.cursors.retain(|_, (hold, _)| *hold);
                none()
            }
            Lineage::Prepare(n, inner) => {
                self.prepared.insert(n.clone(), inner.clone());
                none()
            }
            Lineage::Fetch(n) => self
                .cursors
                .get(n)
                .map(|(_, l)| l.clone())
                .unwrap_or_default(),
            Lineage::Execute(n) => match self.prepared.get(n).cloned() {
                Some(p) if matches!(p.rows(), Lineage::Rows(_) | Lineage::Copy(..)) => {
                    if matches!(*p, Lineage::Calls(_)) {
                        self.cursors.clear();
                        self.prepared.clear();
                    }
                    Arc::new(p.rows().clone())
                }
                _ => Arc::default(),
            },
            Lineage::Rows(_) | Lineage::Copy(..) => l.clone(),
        }
    }
}
