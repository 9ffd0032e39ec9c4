//! The cluster fold (ADR 0025): every gateway of a cluster reads the events topic
//! and applies the events the other gateways committed to its own state, through
//! [`Engine::fold_remote`] — approvals requested and decided anywhere, revocations,
//! sequence stages.
//!
//! Records carry the native event in a header ([`NATIVE_HEADER`], written when
//! `[cluster]` is on); records without it (a gateway outside the cluster, older
//! records) are skipped. Every partition is read from its first record at start:
//! remote state is rebuilt the way the local log rebuilds local state, and each
//! event id is applied once per run.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use gatehouse_core::engine::Engine;
use gatehouse_events::{Event, EventId};
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;

use crate::ShipError;
use crate::kafka::NATIVE_HEADER;

/// What the fold reads.
#[derive(Debug, Clone)]
pub struct FoldOptions {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// The events topic.
    pub topic: String,
    /// This gateway's id (its own records are skipped).
    pub gateway_id: String,
    /// Extra librdkafka consumer properties (security).
    pub properties: std::collections::BTreeMap<String, String>,
}

/// Event ids applied recently, against a record delivered twice.
struct Seen {
    ids: HashSet<EventId>,
    order: VecDeque<EventId>,
}

const SEEN_KEPT: usize = 1 << 20;

impl Seen {
    fn insert(&mut self, id: EventId) -> bool {
        if !self.ids.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > SEEN_KEPT
            && let Some(old) = self.order.pop_front()
        {
            self.ids.remove(&old);
        }
        true
    }
}

fn consumer(o: &FoldOptions) -> Result<StreamConsumer, ShipError> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &o.brokers)
        .set("group.id", format!("gatehouse-fold-{}", o.gateway_id))
        .set("enable.auto.commit", "false")
        .set("enable.metrics.push", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "20");
    for (k, v) in &o.properties {
        c.set(k, v);
    }
    c.create()
        .map_err(|e| ShipError::Kafka(format!("cannot create the cluster consumer: {e}")))
}

/// Folds the other gateways' events into `engine` until `stop`; returns how many
/// were applied.
pub async fn fold(
    options: FoldOptions,
    engine: Arc<Engine>,
    mut stop: watch::Receiver<bool>,
) -> Result<u64, ShipError> {
    let consumer = consumer(&options)?;
    // The topic exists once some gateway shipped to it.
    let partitions = loop {
        let md = consumer.fetch_metadata(Some(&options.topic), Duration::from_secs(5));
        if let Ok(n) = md
            .as_ref()
            .map(|m| m.topics().first().map_or(0, |t| t.partitions().len()))
            && n > 0
        {
            break n;
        }
        tokio::select! {
            _ = stop.changed() => return Ok(0),
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    };
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        let p = i32::try_from(p).map_err(|_| ShipError::Kafka("too many partitions".into()))?;
        tpl.add_partition_offset(&options.topic, p, Offset::Beginning)
            .map_err(|e| ShipError::Kafka(e.to_string()))?;
    }
    consumer
        .assign(&tpl)
        .map_err(|e| ShipError::Kafka(format!("cannot read `{}`: {e}", options.topic)))?;
    tracing::info!(message = "Folding the cluster's events.", topic = %options.topic, partitions);
    let mut seen = Seen {
        ids: HashSet::new(),
        order: VecDeque::new(),
    };
    let mut applied = 0u64;
    loop {
        let msg = tokio::select! {
            _ = stop.changed() => return Ok(applied),
            m = consumer.recv() => m,
        };
        let msg = match msg {
            Ok(m) => m,
            Err(error) => {
                tracing::warn!(message = "The cluster consumer failed; retrying.", %error);
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let Some(native) = msg.headers().and_then(|h| {
            h.iter()
                .find(|h| h.key == NATIVE_HEADER)
                .and_then(|h| h.value)
        }) else {
            continue;
        };
        let event = match Event::from_json(native) {
            Ok(e) => e,
            Err(error) => {
                tracing::warn!(message = "A cluster record does not hold a readable event; skipped.", partition = msg.partition(), offset = msg.offset(), %error);
                continue;
            }
        };
        if event.gateway_id == options.gateway_id || !seen.insert(event.id) {
            continue;
        }
        engine.fold_remote(&event).await;
        applied += 1;
    }
}
