//! Kafka: every event to the events topic, detection findings also to the alerts
//! topic. Values are OCSF JSON, keys the identity (so one identity's events stay in
//! order on one partition), and headers carry `event_id`, `event_type` and
//! `schema_version` for deduplication and routing.

use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::time::Duration;

use gatehouse_core::log::Offset;
use gatehouse_events::{Event, ocsf};
use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
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
pub struct KafkaSink {
    producer: FutureProducer,
    options: KafkaOptions,
    done: Option<Offset>,
    broken: bool,
}

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
        .set("enable.idempotence", "true")
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
            done: None,
            broken: false,
        })
    }

    async fn send(
        &self,
        pending: &mut VecDeque<DeliveryFuture>,
        topic: &str,
        key: &str,
        value: &[u8],
        headers: &OwnedHeaders,
    ) -> Result<(), ShipError> {
        loop {
            let record = FutureRecord::to(topic)
                .key(key)
                .payload(value)
                .headers(headers.clone());
            match self.producer.send_result(record) {
                Ok(f) => {
                    pending.push_back(f);
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    // Local queue full: wait for the oldest delivery, then retry.
                    match pending.pop_front() {
                        Some(f) => await_delivery(f).await?,
                        None => tokio::time::sleep(Duration::from_millis(10)).await,
                    }
                }
                Err((e, _)) => return Err(ShipError::Kafka(e.to_string())),
            }
        }
    }
}

async fn await_delivery(f: DeliveryFuture) -> Result<(), ShipError> {
    match f.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(ShipError::Kafka(format!("delivery failed: {e}"))),
        Err(_) => Err(ShipError::Kafka("producer dropped the delivery".into())),
    }
}

impl Sink for KafkaSink {
    fn name(&self) -> &str {
        "kafka"
    }

    async fn write(&mut self, records: Vec<(Offset, Event)>) -> Result<(), ShipError> {
        if self.broken {
            // After a failed batch the idempotent producer may be fenced or have bumped
            // its epoch; start over with a fresh producer (a new producer id).
            self.producer = producer(&self.options)?;
            self.broken = false;
        }
        let mut pending = VecDeque::with_capacity(records.len());
        let mut last = None;
        for (offset, event) in &records {
            let mut value = Vec::with_capacity(1024);
            ocsf::write_ocsf(event, &mut value)
                .map_err(|e| ShipError::Kafka(format!("cannot encode event {}: {e}", event.id)))?;
            let id = event.id.to_string();
            let version = event.schema_version.to_string();
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "event_id",
                    value: Some(id.as_bytes()),
                })
                .insert(Header {
                    key: "event_type",
                    value: Some(event.event_type().as_bytes()),
                })
                .insert(Header {
                    key: "schema_version",
                    value: Some(version.as_bytes()),
                });
            let key = event.identity_name().unwrap_or("");
            self.send(
                &mut pending,
                &self.options.events_topic,
                key,
                &value,
                &headers,
            )
            .await?;
            if ocsf::is_alert(event) {
                self.send(
                    &mut pending,
                    &self.options.alerts_topic,
                    key,
                    &value,
                    &headers,
                )
                .await?;
            }
            last = Some(*offset);
        }
        while let Some(f) = pending.pop_front() {
            await_delivery(f).await?;
        }
        if let Some(last) = last {
            self.done = Some(last + 1);
        }
        Ok(())
    }

    async fn flush(&mut self, _force: bool) -> Result<Option<Offset>, ShipError> {
        // `write` returns only after every record is acknowledged.
        Ok(self.done.take())
    }

    fn reset(&mut self) {
        self.done = None;
        self.broken = true;
    }
}
