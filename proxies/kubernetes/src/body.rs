//! Response bodies: passed through frame by frame (watch and `logs -f` are never
//! buffered), counted and sampled for the `result_observed` event, which is
//! recorded when the body ends — or masked, object by object, for `Secret` reads.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use gatehouse_core::engine::Engine;
use gatehouse_events::EventId;
use gatehouse_events::payload::{ResultObserved, ResultStatus};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, SizeHint};

use gatehouse_proxy_common::lines::LineMasker;

use crate::mask::{MaskValue, Masker};
use crate::sessions::Active;

/// Errors of response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every response the proxy sends.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// A complete body.
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Counters a masking body shares with its recorder.
#[derive(Debug, Default)]
pub(crate) struct MaskStats {
    pub masked: AtomicU64,
    pub objects: AtomicU64,
}

/// What is recorded about a forwarded request once its response ends.
pub(crate) struct Outcome {
    pub engine: Arc<Engine>,
    pub active: Active,
    pub request: EventId,
    pub code: u16,
    pub started: Instant,
    pub bytes: u64,
    /// `None`: no sample (unmasked secrets are never sampled).
    pub sample: Option<Vec<u8>>,
    pub cap: usize,
    pub stats: Option<Arc<MaskStats>>,
}

impl Outcome {
    fn observe(&mut self, data: &[u8]) {
        self.bytes += data.len() as u64;
        if let Some(sample) = &mut self.sample {
            let room = self.cap.saturating_sub(sample.len());
            sample.extend_from_slice(data.get(..room.min(data.len())).unwrap_or_default());
        }
    }

    /// Records the result (in the background: the client is not kept waiting).
    pub fn finish(self, note: Option<String>) {
        let sample = self
            .sample
            .map(|s| String::from_utf8_lossy(&s).into_owned())
            .filter(|s| !s.is_empty());
        let message = note.or_else(|| {
            (self.code >= 400)
                .then(|| {
                    sample
                        .as_deref()
                        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
                        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
                })
                .flatten()
        });
        let result = ResultObserved {
            request: Some(self.request),
            status: if self.code < 400 {
                ResultStatus::Ok
            } else {
                ResultStatus::Error
            },
            rows: self
                .stats
                .as_ref()
                .map(|s| s.objects.load(Ordering::Relaxed)),
            bytes: Some(self.bytes),
            code: Some(self.code.to_string()),
            message,
            duration_us: Some(self.started.elapsed().as_micros() as u64),
            masked: self
                .stats
                .as_ref()
                .map_or(0, |s| s.masked.load(Ordering::Relaxed)),
            captures: Vec::new(),
            sample,
        };
        let engine = self.engine;
        let active = self.active;
        let record = async move {
            if let Err(error) = engine.record_result(&active.session, result).await {
                tracing::error!(message = "Cannot record a Kubernetes result.", session = %active.session.id, %error);
            }
            drop(active);
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(record);
        }
    }
}

/// Resolves when the stream must be cut (the session was closed by the gateway).
pub(crate) type Cut = Pin<Box<dyn Future<Output = String> + Send>>;

/// A body passed through while its result is measured.
pub(crate) struct Recorded<B: Body> {
    inner: B,
    outcome: Option<Outcome>,
    cut: Option<Cut>,
}

impl<B: Body> Recorded<B> {
    pub fn new(inner: B, outcome: Outcome, cut: Option<Cut>) -> Self {
        Self {
            inner,
            outcome: Some(outcome),
            cut,
        }
    }

    fn finish(&mut self, note: Option<String>) {
        if let Some(o) = self.outcome.take() {
            o.finish(note);
        }
    }
}

impl<B> Body for Recorded<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some(cut) = &mut this.cut
            && let Poll::Ready(reason) = cut.as_mut().poll(cx)
        {
            this.cut = None;
            this.finish(Some(format!("stream ended by the gateway: {reason}")));
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(d), Some(o)) = (frame.data_ref(), &mut this.outcome) {
                    o.observe(d);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                let e: BoxError = e.into();
                this.finish(Some(format!("upstream stream failed: {e}")));
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.finish(None);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B: Body> Drop for Recorded<B> {
    fn drop(&mut self) {
        if let Some(o) = self.outcome.take() {
            // hyper may stop polling once it has a whole body of known length;
            // otherwise the client went away first (a watch or `logs -f` ended).
            let note = (!self.inner.is_end_stream())
                .then(|| "client closed the stream before its end".to_owned());
            o.finish(note);
        }
    }
}

/// A pod's log (`pods/log`, `logs -f` too) with every line masked by the rules'
/// value patterns as it passes ([`LineMasker`]: complete lines go on at once; PEM
/// blocks are masked whole).
pub(crate) struct LogMasker<B, M> {
    inner: B,
    lines: LineMasker,
    mask: M,
    stats: Arc<MaskStats>,
    ended: bool,
}

impl<B, M: MaskValue> LogMasker<B, M> {
    pub fn new(inner: B, mask: M, stats: Arc<MaskStats>) -> Self {
        Self {
            inner,
            lines: LineMasker::default(),
            mask,
            stats,
            ended: false,
        }
    }
}

impl<B, M> Body for LogMasker<B, M>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
    M: MaskValue + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    let mask = &this.mask;
                    let out = this.lines.push(&data, &|s| mask.mask("", s));
                    this.stats
                        .masked
                        .store(this.lines.masked, Ordering::Relaxed);
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(None) => {
                    this.ended = true;
                    let mask = &this.mask;
                    let rest = this.lines.finish(&|s| mask.mask("", s));
                    this.stats
                        .masked
                        .store(this.lines.masked, Ordering::Relaxed);
                    if rest.is_empty() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from(rest)))));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// A watch stream with every event masked as it passes. Events are newline-delimited
/// JSON objects; each complete one is masked and sent on at once, nothing waits for
/// the next.
pub(crate) struct WatchMasker<B, M> {
    inner: B,
    buf: Vec<u8>,
    masker: Masker<M>,
    stats: Arc<MaskStats>,
    max: usize,
}

impl<B, M: MaskValue> WatchMasker<B, M> {
    pub fn new(inner: B, masker: Masker<M>, stats: Arc<MaskStats>, max: usize) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            masker,
            stats,
            max,
        }
    }

    /// Masks every complete event in the buffer.
    fn drain(&mut self) -> Result<Option<Bytes>, BoxError> {
        let mut out = Vec::new();
        let mut consumed = 0;
        let mut values =
            serde_json::Deserializer::from_slice(&self.buf).into_iter::<serde_json::Value>();
        loop {
            match values.next() {
                Some(Ok(mut v)) => {
                    consumed = values.byte_offset();
                    self.masker.document(&mut v);
                    serde_json::to_writer(&mut out, &v)?;
                    out.push(b'\n');
                }
                Some(Err(e)) if e.is_eof() => break,
                Some(Err(e)) => {
                    return Err(format!(
                        "the watch stream is not JSON ({e}); refusing to pass it unmasked"
                    )
                    .into());
                }
                None => {
                    consumed = self.buf.len();
                    break;
                }
            }
        }
        self.buf.drain(..consumed);
        if self.buf.len() > self.max {
            return Err("a watch event is larger than the masking limit".into());
        }
        self.stats
            .masked
            .store(self.masker.masked, Ordering::Relaxed);
        self.stats
            .objects
            .store(self.masker.objects, Ordering::Relaxed);
        Ok((!out.is_empty()).then(|| Bytes::from(out)))
    }
}

impl<B, M> Body for WatchMasker<B, M>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
    M: MaskValue + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    this.buf.extend_from_slice(&data);
                    match this.drain() {
                        Ok(Some(out)) => return Poll::Ready(Some(Ok(Frame::data(out)))),
                        Ok(None) => continue,
                        Err(e) => return Poll::Ready(Some(Err(e))),
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(None) => {
                    if this.buf.iter().all(u8::is_ascii_whitespace) {
                        return Poll::Ready(None);
                    }
                    this.buf.clear();
                    return Poll::Ready(Some(Err("the watch stream ended inside an event".into())));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

    use std::borrow::Cow;
    use std::convert::Infallible;

    use super::*;
    use crate::mask::Maskable;

    struct Stars;

    impl MaskValue for Stars {
        fn mask<'v>(&self, _column: &str, _value: &'v str) -> Cow<'v, str> {
            Cow::Owned("****".into())
        }
    }

    #[tokio::test]
    async fn watch_events_split_across_frames_are_masked_one_by_one() {
        let secret = |n: &str| {
            format!(
                r#"{{"type":"ADDED","object":{{"kind":"Secret","metadata":{{"name":"{n}"}},"data":{{"k":"aHVudGVyMg=="}}}}}}"#
            )
        };
        let stream = format!("{}\n{}\n", secret("a"), secret("b"));
        let (first, rest) = stream.as_bytes().split_at(30);
        let (second, third) = rest.split_at(rest.len() - 20);
        let inner = Frames(
            [first, second, third]
                .iter()
                .map(|c| Bytes::copy_from_slice(c))
                .collect(),
        );
        let stats = Arc::new(MaskStats::default());
        let mut body = WatchMasker::new(
            inner,
            Masker::new(Maskable::Secret, Stars),
            stats.clone(),
            1 << 20,
        );
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            out.push(frame.unwrap().into_data().unwrap());
        }
        // One frame per completed event: the first as soon as it was whole.
        assert_eq!(out.len(), 2);
        let text: String = out
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect();
        assert!(
            !text.contains("aHVudGVyMg==") && text.contains("KioqKg=="),
            "{text}"
        );
        assert_eq!(stats.masked.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn a_watch_stream_that_is_not_json_is_an_error() {
        let inner = Frames(vec![Bytes::from_static(b"\x0a\x0bk8s\x00protobuf")].into());
        let mut body = WatchMasker::new(
            inner,
            Masker::new(Maskable::Secret, Stars),
            Arc::new(MaskStats::default()),
            1 << 20,
        );
        assert!(body.frame().await.unwrap().is_err());
    }

    /// A body yielding the given chunks.
    struct Frames(std::collections::VecDeque<Bytes>);

    impl Body for Frames {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
        }
    }
}
