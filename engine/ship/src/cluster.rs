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

use gatehouse_core::engine::{
    BoxFuture, ClusterLink, ClusterStatus, DelayStats, Engine, MemberStatus, PartitionStatus,
};
use gatehouse_events::{Event, EventId};
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;

use crate::ShipError;
use crate::kafka::{KafkaRecord, NATIVE_HEADER};

/// How far the fold has read: per partition, the offset after the last record it
/// applied or skipped; and what it saw of the other gateways (for `cluster status`).
#[derive(Debug)]
pub struct Progress {
    positions: std::sync::Mutex<std::collections::HashMap<i32, i64>>,
    /// Offsets of this gateway's own records the fold has not read past yet (it
    /// skips them anyway): a catch-up need not wait for the fold to read them.
    own: std::sync::Mutex<std::collections::HashMap<i32, std::collections::BTreeSet<i64>>>,
    /// The partitions the fold reads (known once it has started).
    partitions: std::sync::Mutex<Vec<i32>>,
    seen: std::sync::Mutex<Observed>,
    /// Events made before this are not counted in the replication delay (the fold
    /// reads the topic from its start).
    started: chrono::DateTime<chrono::Utc>,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            positions: Default::default(),
            own: Default::default(),
            partitions: Default::default(),
            seen: Default::default(),
            started: chrono::Utc::now(),
        }
    }
}

/// Replication delays kept for the percentiles.
const DELAYS_KEPT: usize = 4096;

#[derive(Debug, Default)]
struct Observed {
    members: std::collections::BTreeMap<String, MemberStatus>,
    delays: VecDeque<f64>,
}

impl Progress {
    /// Notes a record this gateway wrote to the events topic (the link's or the
    /// shipper's), at `offset` of `partition`.
    pub fn note_own(&self, partition: i32, offset: i64) {
        if offset < self.at(partition) {
            return;
        }
        self.own
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(partition)
            .or_default()
            .insert(offset);
    }

    /// Whether the fold has read `partition` up to `end`, or everything between
    /// where it is and `end` is this gateway's own (which it would skip).
    fn caught_up(&self, partition: i32, end: i64) -> bool {
        let at = self.at(partition);
        if at >= end {
            return true;
        }
        let own = self
            .own
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        own.get(&partition)
            .is_some_and(|o| o.range(at..end).count() as i64 == end - at)
    }

    fn partitions(&self) -> Vec<i32> {
        self.partitions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Notes an event of another gateway, folded now.
    fn observe(&self, event: &Event) {
        let now = chrono::Utc::now();
        let delay = (now - event.time)
            .num_microseconds()
            .map(|us| us as f64 / 1000.0);
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let m = seen
            .members
            .entry(event.gateway_id.clone())
            .or_insert_with(|| MemberStatus {
                gateway_id: event.gateway_id.clone(),
                ..MemberStatus::default()
            });
        m.events += 1;
        m.last_event = Some(event.time);
        m.last_delay_ms = delay;
        if event.time >= self.started
            && let Some(d) = delay
        {
            if seen.delays.len() == DELAYS_KEPT {
                seen.delays.pop_front();
            }
            seen.delays.push_back(d);
        }
    }

    fn members_and_delays(&self) -> (Vec<MemberStatus>, DelayStats) {
        let seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut d: Vec<f64> = seen.delays.iter().copied().collect();
        d.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let i = ((d.len() as f64 - 1.0) * q).round() as usize;
            d.get(i).copied()
        };
        let stats = DelayStats {
            samples: d.len(),
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            max_ms: d.last().copied(),
        };
        (seen.members.values().cloned().collect(), stats)
    }

    fn set(&self, partition: i32, next: i64) {
        {
            let mut p = self
                .positions
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let at = p.entry(partition).or_insert(0);
            *at = (*at).max(next);
        }
        if let Some(own) = self
            .own
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_mut(&partition)
        {
            *own = own.split_off(&next);
        }
    }

    fn at(&self, partition: i32) -> i64 {
        self.positions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&partition)
            .copied()
            .unwrap_or(0)
    }
}

/// The cluster link over Kafka (ADR 0025): stages are produced with `acks=all` and
/// awaited; a catch-up reads every partition's high watermark and waits until the
/// fold has read that far.
pub struct KafkaLink {
    producer: FutureProducer,
    watermarks: Arc<BaseConsumer>,
    topic: String,
    gateway_id: String,
    progress: Arc<Progress>,
    timeout: Duration,
}

/// Longest wait for an acknowledgement or a catch-up before the command is refused.
pub const CLUSTER_TIMEOUT: Duration = Duration::from_secs(5);

impl KafkaLink {
    /// A link publishing to and catching up on `options.topic`, with the fold's
    /// `progress`.
    pub fn new(options: &FoldOptions, progress: Arc<Progress>) -> Result<Self, ShipError> {
        let mut p = ClientConfig::new();
        for (k, v) in &options.properties {
            p.set(k, v);
        }
        // After the shipper's properties: a stage is sent at once and counts only
        // when every in-sync replica has it.
        p.set("bootstrap.servers", &options.brokers)
            .set("acks", "all")
            .set("linger.ms", "0")
            .set("enable.metrics.push", "false")
            .set(
                "message.timeout.ms",
                CLUSTER_TIMEOUT.as_millis().to_string(),
            );
        let producer = p
            .create()
            .map_err(|e| ShipError::Kafka(format!("cannot create the cluster producer: {e}")))?;
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &options.brokers)
            .set(
                "group.id",
                format!("gatehouse-watermarks-{}", options.gateway_id),
            )
            .set("enable.metrics.push", "false");
        for (k, v) in &options.properties {
            c.set(k, v);
        }
        let watermarks = c
            .create()
            .map_err(|e| ShipError::Kafka(format!("cannot create the cluster reader: {e}")))?;
        Ok(Self {
            producer,
            watermarks: Arc::new(watermarks),
            topic: options.topic.clone(),
            gateway_id: options.gateway_id.clone(),
            progress,
            timeout: CLUSTER_TIMEOUT,
        })
    }

    /// Waits until the fold has read each partition up to its offset in `positions`
    /// (this gateway's own records aside), at most [`CLUSTER_TIMEOUT`] from `started`.
    async fn folded_to(
        &self,
        positions: &[(i32, i64)],
        started: tokio::time::Instant,
    ) -> Result<(), String> {
        while !positions
            .iter()
            .all(|(p, offset)| self.progress.caught_up(*p, *offset))
        {
            if started.elapsed() > self.timeout {
                return Err(format!(
                    "the cluster's events were not folded within {:?}",
                    self.timeout
                ));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok(())
    }

    /// Every partition's high watermark now (the partitions the fold reads, or the
    /// topic's before the fold has started).
    async fn ends(&self) -> Result<Vec<(i32, i64)>, String> {
        let (c, topic, timeout) = (self.watermarks.clone(), self.topic.clone(), self.timeout);
        let known = self.progress.partitions();
        tokio::task::spawn_blocking(move || {
            let partitions: Vec<i32> = if known.is_empty() {
                let md = c
                    .fetch_metadata(Some(&topic), timeout)
                    .map_err(|e| format!("cannot read the partitions of `{topic}`: {e}"))?;
                md.topics()
                    .first()
                    .map(|t| t.partitions().iter().map(|p| p.id()).collect())
                    .unwrap_or_default()
            } else {
                known
            };
            partitions
                .into_iter()
                .map(|p| {
                    c.fetch_watermarks(&topic, p, timeout)
                        .map(|(_, high)| (p, high))
                        .map_err(|e| format!("cannot read the end of `{topic}` [{p}]: {e}"))
                })
                .collect()
        })
        .await
        .map_err(|e| format!("the catch-up task failed: {e}"))?
    }
}

impl ClusterLink for KafkaLink {
    fn catch_up(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let started = tokio::time::Instant::now();
            let ends = self.ends().await?;
            self.folded_to(&ends, started).await
        })
    }

    fn status(&self) -> BoxFuture<'_, Result<ClusterStatus, String>> {
        Box::pin(async move {
            let ends = self.ends().await?;
            let partitions: Vec<PartitionStatus> = ends
                .into_iter()
                .map(|(partition, end)| {
                    let folded = self.progress.at(partition);
                    PartitionStatus {
                        partition,
                        folded,
                        end,
                        lag: (end - folded).max(0),
                    }
                })
                .collect();
            let (members, delay) = self.progress.members_and_delays();
            Ok(ClusterStatus {
                gateway_id: self.gateway_id.clone(),
                topic: self.topic.clone(),
                lag_events: partitions.iter().map(|p| p.lag).sum(),
                partitions,
                members,
                delay,
            })
        })
    }

    fn catch_up_before<'a>(
        &'a self,
        positions: &'a [(i32, i64)],
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(self.folded_to(positions, tokio::time::Instant::now()))
    }

    fn publish<'a>(
        &'a self,
        events: &'a [Event],
    ) -> BoxFuture<'a, Result<Vec<(i32, i64)>, String>> {
        Box::pin(async move {
            let records: Vec<KafkaRecord> = events
                .iter()
                .map(|e| KafkaRecord::native(e.clone()).map_err(|e| e.to_string()))
                .collect::<Result<_, _>>()?;
            // All in flight at once, then every acknowledgement awaited.
            let mut flying = Vec::with_capacity(records.len());
            let mut landed = Vec::with_capacity(records.len());
            for r in &records {
                let record = FutureRecord::to(&self.topic)
                    .key(r.key())
                    .payload(r.value())
                    .headers(r.headers());
                flying.push(
                    self.producer
                        .send_result(record)
                        .map_err(|(e, _)| format!("cannot publish a stage: {e}"))?,
                );
            }
            for delivery in flying {
                match tokio::time::timeout(self.timeout, delivery).await {
                    Ok(Ok(Ok(d))) => {
                        self.progress.note_own(d.partition, d.offset);
                        landed.push((d.partition, d.offset));
                    }
                    Ok(Ok(Err((e, _)))) => {
                        return Err(format!("the cluster did not acknowledge a stage: {e}"));
                    }
                    Ok(Err(_)) => return Err("the cluster producer went away".into()),
                    Err(_) => {
                        return Err(format!(
                            "the cluster did not acknowledge a stage within {:?}",
                            self.timeout
                        ));
                    }
                }
            }
            Ok(landed)
        })
    }
}

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

const SEEN_KEPT: usize = 1 << 18;

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
    progress: Arc<Progress>,
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
    let mut ids = Vec::with_capacity(partitions);
    for p in 0..partitions {
        let p = i32::try_from(p).map_err(|_| ShipError::Kafka("too many partitions".into()))?;
        tpl.add_partition_offset(&options.topic, p, Offset::Beginning)
            .map_err(|e| ShipError::Kafka(e.to_string()))?;
        ids.push(p);
    }
    *progress
        .partitions
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = ids;
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
        // Read this far, whatever the record turns out to be.
        let (partition, next) = (msg.partition(), msg.offset() + 1);
        let native = msg.headers().and_then(|h| {
            h.iter()
                .find(|h| h.key == NATIVE_HEADER)
                .and_then(|h| h.value)
        });
        let event = native.map(Event::from_json);
        match event {
            Some(Ok(event)) if event.gateway_id != options.gateway_id && seen.insert(event.id) => {
                engine.fold_remote(&event).await;
                progress.observe(&event);
                applied += 1;
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => {
                tracing::warn!(message = "A cluster record does not hold a readable event; skipped.", partition, offset = next - 1, %error);
            }
            None => {}
        }
        progress.set(partition, next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_catch_up_need_not_wait_for_records_this_gateway_wrote() {
        let p = Progress::default();
        p.set(0, 10);
        assert!(p.caught_up(0, 10));
        assert!(!p.caught_up(0, 12));
        // Offsets 10 and 11 are this gateway's own: nothing else to read.
        p.note_own(0, 10);
        p.note_own(0, 11);
        assert!(p.caught_up(0, 12));
        // Another gateway's record at 12 must be read.
        assert!(!p.caught_up(0, 13));
        p.set(0, 13);
        assert!(p.caught_up(0, 13));
        // Own offsets behind the fold are forgotten; an offset already passed is ignored.
        p.note_own(0, 5);
        assert!(p.own.lock().unwrap().get(&0).is_none_or(|o| o.is_empty()));
        // Other partitions are independent.
        assert!(!p.caught_up(1, 1));
    }
}
