//! Running rules over history: the same evaluator the gateway runs inline, fed with
//! events read back from the audit, in time order.

use gatehouse_events::payload::Payload;
use gatehouse_events::{Event, EventId};
use serde::Serialize;

use super::{Policy, effect_to_event};

/// A rule or sequence that matched a historical request.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct BackfillMatch {
    /// Time of the matching (completing) request.
    pub time: String,
    /// Rule or sequence name.
    pub rule: String,
    /// True for a sequence.
    pub sequence: bool,
    /// Identity of the request.
    pub identity: String,
    /// The matching request event.
    pub request: EventId,
    /// Every event behind the match (the stages of a sequence, oldest first).
    pub related: Vec<EventId>,
    /// The effect the rule asks for (`alert` for alert-only rules).
    pub effect: String,
}

/// Evaluates `policy` over `events` (which must be in time order) and returns every
/// match. With `sequences_only`, plain rules are left out.
pub fn backfill(
    policy: &Policy,
    events: impl IntoIterator<Item = Event>,
    sequences_only: bool,
) -> Vec<BackfillMatch> {
    let mut out = Vec::new();
    for event in events {
        match &event.payload {
            Payload::RequestObserved(_) => {
                let verdict = policy.decide(&event, None);
                // One request can complete several partial matches of one sequence
                // (two earlier recons, one hop): each completion has its own alert, so
                // pair matches with alerts one to one, in order.
                let mut taken = vec![false; verdict.alerts.len()];
                for m in &verdict.matched {
                    if sequences_only && !m.sequence {
                        continue;
                    }
                    let alert = verdict
                        .alerts
                        .iter()
                        .zip(taken.iter_mut())
                        .find(|(a, taken)| !**taken && a.rule == m.name && !a.related.is_empty());
                    let related = match alert {
                        Some((a, taken)) => {
                            *taken = true;
                            a.related.iter().map(|r| EventId::from_u128(*r)).collect()
                        }
                        None => vec![event.id],
                    };
                    out.push(BackfillMatch {
                        time: event.time.to_rfc3339(),
                        rule: m.name.to_string(),
                        sequence: m.sequence,
                        identity: crate::identity::normalize(event.identity_name().unwrap_or(""))
                            .into_owned(),
                        request: event.id,
                        related,
                        effect: m
                            .effect
                            .map(|e| effect_to_event(e).as_str().to_owned())
                            .unwrap_or_else(|| "alert".into()),
                    });
                }
            }
            // Everything else goes the way the engine feeds it inline (and on restart,
            // `Policy::replay`): results fill captures, the gateway's own derived
            // events (decisions, alerts, session bytes) are not fed back, the rest
            // applies `until` conditions.
            _ => {
                policy.replay(&event);
            }
        }
    }
    out
}
