//! Kafka: every event to the events topic, detection findings also to the alerts
//! topic. Values are OCSF JSON, keys the identity (so one identity's events stay in
//! order on one partition), and headers carry `event_id`, `event_type` and
//! `schema_version` for deduplication and routing.

use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use gatehouse_core::log::Offset;
use gatehouse_events::payload::Payload;
use gatehouse_events::{Event, ocsf};
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};

use crate::{ShipError, Sink};

/// Kafka sink settings.
#[derive(Debug, Clone)]
pub struct KafkaOptions {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// Topic for every event.
    pub events_topic: String,
    /// Topic for detection findings.
    pub alerts_topic: String,
    /// How long a record may wait for delivery before the batch is retried.
    pub delivery_timeout: Duration,
    /// Extra librdkafka producer properties (security, tuning).
    pub properties: BTreeMap<String, String>,
    /// Also carry each event in its native form (header [`NATIVE_HEADER`]), for the
    /// gateways of a cluster to fold (ADR 0025).
    pub native: bool,
    /// In a cluster, the fold's progress: told where this gateway's own records
    /// landed on the events topic, so that a catch-up does not wait for the fold to
    /// read records it would skip.
    pub own: Option<std::sync::Arc<crate::cluster::Progress>>,
}

/// The header that carries the native event JSON in cluster mode.
pub const NATIVE_HEADER: &str = "gatehouse-event";

impl KafkaOptions {
    /// Defaults: topics `gatehouse.events` and `gatehouse.alerts`, 30 s delivery timeout.
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            events_topic: "gatehouse.events".into(),
            alerts_topic: "gatehouse.alerts".into(),
            delivery_timeout: Duration::from_secs(30),
            properties: BTreeMap::new(),
            native: false,
            own: None,
        }
    }
}

/// Produces the log to Kafka.
///
/// Deliveries stay in flight across batches (up to [`MAX_IN_FLIGHT`] records), so
/// reading and encoding the next batch overlaps with the broker acknowledging the
/// last one; [`Sink::flush`] reports the offset after the longest acknowledged prefix,
/// which is what the cursor may advance to (at least once: nothing unacknowledged is
/// ever behind the cursor).
///
/// Delivery reports are served by polling the producer from the shipper's own task
/// (no polling thread, no future per record): each message carries its sequence
/// number as the delivery opaque, and the report callback only records it.
pub struct KafkaSink {
    producer: BaseProducer<Deliveries>,
    options: KafkaOptions,
    /// Messages produced and not yet settled, in log order: the offset after each
    /// one's record and whether the broker acknowledged it. The first has sequence
    /// number `first_seq`.
    pending: VecDeque<(Offset, bool)>,
    first_seq: u64,
    /// Reports taken from the producer, swapped out on every poll.
    reports: Vec<u64>,
    /// The offset after the last acknowledged prefix, not yet reported.
    done: Option<Offset>,
    broken: bool,
}

/// Records produced but not yet acknowledged before `write` waits for the oldest.
pub const MAX_IN_FLIGHT: usize = 200_000;

/// How long the sink sleeps between polls while it waits for acknowledgements.
const WAIT_TICK: Duration = Duration::from_millis(1);

/// The producer context: collects delivery reports until the sink takes them.
#[derive(Default)]
struct Deliveries {
    reports: Mutex<Reports>,
    /// The events topic and the fold to tell of this gateway's records there.
    own: Option<(String, std::sync::Arc<crate::cluster::Progress>)>,
}

#[derive(Default)]
struct Reports {
    acknowledged: Vec<u64>,
    failed: Option<String>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: usize) {
        // A poisoned lock cannot lose a report silently: the sink treats it as a
        // failed delivery.
        if let Ok(mut reports) = self.reports.lock() {
            match result {
                Ok(m) => {
                    reports.acknowledged.push(seq as u64);
                    if let Some((topic, progress)) = &self.own
                        && m.topic() == topic
                    {
                        progress.note_own(m.partition(), m.offset());
                    }
                }
                Err((e, _)) => {
                    if reports.failed.is_none() {
                        reports.failed = Some(format!("delivery failed: {e}"));
                    }
                }
            }
        }
    }
}

fn producer(options: &KafkaOptions) -> Result<BaseProducer<Deliveries>, ShipError> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &options.brokers)
        .set(
            "message.timeout.ms",
            options.delivery_timeout.as_millis().to_string(),
        )
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("compression.type", "lz4")
        .set("acks", "all")
        // At least once, in order: one request in flight per broker keeps each
        // partition's order through retries. Idempotence would also drop duplicates
        // from retries, but consumers deduplicate on `event_id` anyway (a restarted
        // shipper resends from its cursor), and it cost a third of the throughput
        // (ADR 0005).
        .set("enable.idempotence", "false")
        .set("max.in.flight.requests.per.connection", "1")
        .set("enable.metrics.push", "false");
    for (k, v) in &options.properties {
        config.set(k, v);
    }
    config
        .create_with_context(Deliveries {
            reports: Mutex::default(),
            own: options
                .own
                .clone()
                .map(|p| (options.events_topic.clone(), p)),
        })
        .map_err(|e| ShipError::Kafka(format!("cannot create producer: {e}")))
}

impl KafkaSink {
    /// Creates the producer (does not connect yet).
    pub fn new(options: KafkaOptions) -> Result<Self, ShipError> {
        Ok(Self {
            producer: producer(&options)?,
            options,
            pending: VecDeque::new(),
            first_seq: 0,
            reports: Vec::new(),
            done: None,
            broken: false,
        })
    }

    /// Produces one record; when librdkafka's queue is full, waits for deliveries
    /// first.
    async fn send(&mut self, topic: &str, record: &KafkaRecord) -> Result<(), ShipError> {
        let seq = self.first_seq + self.pending.len() as u64;
        let opaque = usize::try_from(seq)
            .map_err(|_| ShipError::Kafka("delivery sequence number overflow".into()))?;
        loop {
            let produced = BaseRecord::with_opaque_to(topic, opaque)
                .key(&record.key)
                .payload(&record.value)
                .headers(record.headers());
            match self.producer.send(produced) {
                Ok(()) => {
                    self.pending.push_back((record.after, false));
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    if !self.settle_ready()? {
                        tokio::time::sleep(WAIT_TICK).await;
                    }
                }
                Err((e, _)) => return Err(ShipError::Kafka(e.to_string())),
            }
        }
    }

    /// Serves the delivery reports librdkafka has ready and settles the acknowledged
    /// prefix, without waiting. True when a report arrived.
    fn settle_ready(&mut self) -> Result<bool, ShipError> {
        if self.broken {
            // The old producer's reports are for messages already given up on.
            return Ok(false);
        }
        let mut any = false;
        loop {
            // One poll serves one report event (a batch of deliveries).
            self.producer.poll(Duration::ZERO);
            {
                let mut reports = self
                    .producer
                    .context()
                    .reports
                    .lock()
                    .map_err(|_| ShipError::Kafka("delivery reports lock poisoned".into()))?;
                if let Some(failed) = reports.failed.take() {
                    return Err(ShipError::Kafka(failed));
                }
                if reports.acknowledged.is_empty() {
                    break;
                }
                std::mem::swap(&mut reports.acknowledged, &mut self.reports);
            }
            any = true;
            for seq in self.reports.drain(..) {
                let slot = seq
                    .checked_sub(self.first_seq)
                    .and_then(|i| usize::try_from(i).ok())
                    .and_then(|i| self.pending.get_mut(i));
                if let Some((_, acked)) = slot {
                    *acked = true;
                }
            }
        }
        while let Some(&(after, true)) = self.pending.front() {
            self.pending.pop_front();
            self.first_seq += 1;
            self.done = Some(after);
        }
        Ok(any)
    }

    /// Waits until at most `limit` messages are unsettled.
    async fn settle_until(&mut self, limit: usize) -> Result<(), ShipError> {
        loop {
            self.settle_ready()?;
            if self.pending.len() <= limit {
                return Ok(());
            }
            tokio::time::sleep(WAIT_TICK).await;
        }
    }
}

/// Detection findings and approval requests (reviewers watch the SIEM too) also go to
/// the alerts topic.
fn for_alerts_topic(event: &Event) -> bool {
    ocsf::is_alert(event)
        || matches!(
            event.payload,
            Payload::ApprovalRequested(_) | Payload::LogOutage(_) | Payload::ShipperRewound(_)
        )
}

/// One log record encoded for Kafka (on a shipper worker thread).
pub struct KafkaRecord {
    /// The log offset after this record.
    after: Offset,
    /// The identity (partitioning key; empty for none).
    key: String,
    /// OCSF JSON.
    value: Vec<u8>,
    /// Header values. The headers themselves are built when the record is produced:
    /// librdkafka allocates them, and building them once on the producing thread is
    /// cheaper than building on a worker and copying into the producer.
    event_id: String,
    event_type: &'static str,
    schema_version: String,
    /// The native event JSON (cluster mode only).
    native: Option<Vec<u8>>,
    /// Also goes to the alerts topic.
    alert: bool,
}

impl KafkaRecord {
    /// `event` as the shipper produces it, with its native form (cluster mode).
    pub(crate) fn native(event: Event) -> Result<Self, ShipError> {
        encode_native(vec![(0, event)])?
            .pop()
            .ok_or_else(|| ShipError::Kafka("nothing encoded".into()))
    }

    /// The partitioning key (the identity).
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// The OCSF JSON value.
    pub(crate) fn value(&self) -> &[u8] {
        &self.value
    }

    pub(crate) fn headers(&self) -> OwnedHeaders {
        let headers = OwnedHeaders::new_with_capacity(4)
            .insert(Header {
                key: "event_id",
                value: Some(self.event_id.as_bytes()),
            })
            .insert(Header {
                key: "event_type",
                value: Some(self.event_type.as_bytes()),
            })
            .insert(Header {
                key: "schema_version",
                value: Some(self.schema_version.as_bytes()),
            });
        match &self.native {
            Some(n) => headers.insert(Header {
                key: NATIVE_HEADER,
                value: Some(n.as_slice()),
            }),
            None => headers,
        }
    }
}

fn encode(records: Vec<(Offset, Event)>) -> Result<Vec<KafkaRecord>, ShipError> {
    encode_with(records, false)
}

/// [`encode`], each record also carrying the native event (cluster mode).
fn encode_native(records: Vec<(Offset, Event)>) -> Result<Vec<KafkaRecord>, ShipError> {
    encode_with(records, true)
}

fn encode_with(records: Vec<(Offset, Event)>, native: bool) -> Result<Vec<KafkaRecord>, ShipError> {
    records
        .into_iter()
        .map(|(offset, event)| {
            let mut value = Vec::with_capacity(1024);
            ocsf::write_ocsf(&event, &mut value)
                .map_err(|e| ShipError::Kafka(format!("cannot encode event {}: {e}", event.id)))?;
            Ok(KafkaRecord {
                after: offset + 1,
                key: event.identity_name().unwrap_or("").to_owned(),
                value,
                event_id: event.id.to_string(),
                event_type: event.event_type(),
                schema_version: event.schema_version.to_string(),
                native: if native {
                    let mut n = Vec::with_capacity(768);
                    gatehouse_events::json::write_event(&mut n, &event).map_err(|e| {
                        ShipError::Kafka(format!("cannot encode event {}: {e}", event.id))
                    })?;
                    Some(n)
                } else {
                    None
                },
                alert: for_alerts_topic(&event),
            })
        })
        .collect()
}

impl Sink for KafkaSink {
    type Batch = Vec<KafkaRecord>;

    fn name(&self) -> &str {
        "kafka"
    }

    fn encoder(&self) -> crate::Encoder<Vec<KafkaRecord>> {
        if self.options.native {
            encode_native
        } else {
            encode
        }
    }

    async fn write(&mut self, batch: Vec<KafkaRecord>) -> Result<(), ShipError> {
        if self.broken {
            // After a failed batch, start over with a fresh producer: nothing queued in
            // the old one is trusted (and an idempotent one, if configured, may be
            // fenced or have bumped its epoch).
            self.producer = producer(&self.options)?;
            self.broken = false;
        }
        let (events_topic, alerts_topic) = (
            self.options.events_topic.clone(),
            self.options.alerts_topic.clone(),
        );
        for record in &batch {
            self.send(&events_topic, record).await?;
            if record.alert {
                self.send(&alerts_topic, record).await?;
            }
        }
        self.settle_ready()?;
        if self.pending.len() > MAX_IN_FLIGHT {
            self.settle_until(MAX_IN_FLIGHT).await?;
        }
        Ok(())
    }

    async fn flush(&mut self, force: bool) -> Result<Option<Offset>, ShipError> {
        if force {
            self.settle_until(0).await?;
        } else {
            self.settle_ready()?;
        }
        Ok(self.done.take())
    }

    fn reset(&mut self) {
        self.first_seq += self.pending.len() as u64;
        self.pending.clear();
        self.done = None;
        self.broken = true;
    }
}
