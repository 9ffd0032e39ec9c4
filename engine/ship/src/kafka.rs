//! Kafka: every event to the events topic, detection findings also to the alerts
//! topic. Values are OCSF JSON, keys the identity (so one identity's events stay in
//! order on one partition), and headers carry `event_id`, `event_type` and
//! `schema_version` for deduplication and routing.

use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::time::Duration;

use gatehouse_core::log::Offset;
use gatehouse_events::payload::Payload;
use gatehouse_events::{Event, ocsf};
use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

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
}

impl KafkaOptions {
    /// Defaults: topics `gatehouse.events` and `gatehouse.alerts`, 30 s delivery timeout.
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            events_topic: "gatehouse.events".into(),
            alerts_topic: "gatehouse.alerts".into(),
            delivery_timeout: Duration::from_secs(30),
            properties: BTreeMap::new(),
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
pub struct KafkaSink {
    producer: FutureProducer,
    options: KafkaOptions,
    /// Deliveries not yet known to be acknowledged, in log order, each with the offset
    /// after its record.
    pending: VecDeque<(Offset, DeliveryFuture)>,
    /// The offset after the last acknowledged prefix, not yet reported.
    done: Option<Offset>,
    broken: bool,
}

/// Records produced but not yet acknowledged before `write` waits for the oldest.
pub const MAX_IN_FLIGHT: usize = 200_000;

fn producer(options: &KafkaOptions) -> Result<FutureProducer, ShipError> {
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
        .create()
        .map_err(|e| ShipError::Kafka(format!("cannot create producer: {e}")))
}

impl KafkaSink {
    /// Creates the producer (does not connect yet).
    pub fn new(options: KafkaOptions) -> Result<Self, ShipError> {
        Ok(Self {
            producer: producer(&options)?,
            options,
            pending: VecDeque::new(),
            done: None,
            broken: false,
        })
    }

    /// Produces one record; when librdkafka's queue is full, waits for the oldest
    /// delivery first.
    async fn send(&mut self, topic: &str, record: &KafkaRecord) -> Result<(), ShipError> {
        loop {
            let produced = FutureRecord::to(topic)
                .key(&record.key)
                .payload(&record.value)
                .headers(record.headers());
            match self.producer.send_result(produced) {
                Ok(f) => {
                    self.pending.push_back((record.after, f));
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    if !self.settle_oldest().await? {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                Err((e, _)) => return Err(ShipError::Kafka(e.to_string())),
            }
        }
    }

    /// Waits for the oldest in-flight delivery; false when nothing is in flight.
    async fn settle_oldest(&mut self) -> Result<bool, ShipError> {
        let Some((after, f)) = self.pending.pop_front() else {
            return Ok(false);
        };
        await_delivery(f).await?;
        self.done = Some(after);
        Ok(true)
    }

    /// Takes the deliveries already acknowledged at the front, without waiting.
    fn settle_ready(&mut self) -> Result<(), ShipError> {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        while let Some((after, f)) = self.pending.front_mut() {
            let after = *after;
            match std::pin::Pin::new(f).poll(&mut cx) {
                std::task::Poll::Pending => break,
                std::task::Poll::Ready(result) => {
                    self.pending.pop_front();
                    delivered(result)?;
                    self.done = Some(after);
                }
            }
        }
        Ok(())
    }
}

/// Detection findings and approval requests (reviewers watch the SIEM too) also go to
/// the alerts topic.
fn for_alerts_topic(event: &Event) -> bool {
    ocsf::is_alert(event) || matches!(event.payload, Payload::ApprovalRequested(_))
}

async fn await_delivery(f: DeliveryFuture) -> Result<(), ShipError> {
    delivered(f.await)
}

fn delivered<E>(result: Result<OwnedDeliveryResult, E>) -> Result<(), ShipError> {
    match result {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(ShipError::Kafka(format!("delivery failed: {e}"))),
        Err(_) => Err(ShipError::Kafka("producer dropped the delivery".into())),
    }
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
    /// Also goes to the alerts topic.
    alert: bool,
}

impl KafkaRecord {
    fn headers(&self) -> OwnedHeaders {
        OwnedHeaders::new_with_capacity(3)
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
            })
    }
}

fn encode(records: Vec<(Offset, Event)>) -> Result<Vec<KafkaRecord>, ShipError> {
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
        encode
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
        while self.pending.len() > MAX_IN_FLIGHT {
            self.settle_oldest().await?;
        }
        Ok(())
    }

    async fn flush(&mut self, force: bool) -> Result<Option<Offset>, ShipError> {
        if force {
            while self.settle_oldest().await? {}
        } else {
            self.settle_ready()?;
        }
        Ok(self.done.take())
    }

    fn reset(&mut self) {
        self.pending.clear();
        self.done = None;
        self.broken = true;
    }
}
