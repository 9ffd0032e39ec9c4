//! `direct-tcpip` channels (`ssh -L`, `ssh -W`): the destination is judged (the
//! starter policy asks for approval) before the target is asked to connect; bytes
//! are relayed untouched.

use std::sync::Arc;

use gatehouse_events::payload::{
    DataDirection, ResultObserved, ResultStatus, SshRequest, SshRequestKind,
};
use russh::server::{ChannelOpenHandle, Msg};
use russh::{Channel, ChannelMsg, ChannelOpenFailure};

use crate::ctx::{Ctx, Verdict};

/// Where the client asks to connect.
pub struct Destination {
    /// Host, as the client wrote it.
    pub host: String,
    /// Port.
    pub port: u32,
    /// Originator address (the client's local listener).
    pub originator: String,
    /// Originator port.
    pub originator_port: u32,
}

fn prohibited(reason: String) -> ChannelOpenFailure {
    ChannelOpenFailure::Other { code: 1, reason }
}

/// Judges and, if allowed, relays one forwarded connection.
pub async fn run(ctx: Arc<Ctx>, front: Channel<Msg>, reply: ChannelOpenHandle, dest: Destination) {
    let id: u32 = front.id().into();
    let decided = ctx
        .engine
        .decide(
            &ctx.session,
            format!("direct-tcpip {}:{}", dest.host, dest.port),
            ctx.request(SshRequest {
                kind: SshRequestKind::PortForward,
                channel: id,
                forward_host: Some(dest.host.clone()),
                forward_port: u16::try_from(dest.port).ok(),
                ..SshRequest::default()
            }),
        )
        .await;
    let decision = match ctx.enforce(decided, |_| async {}).await {
        Verdict::Run(d) => *d,
        Verdict::Refused(m, _) => {
            reply.reject(prohibited(m)).await;
            return;
        }
    };
    let up = match ctx.upstream_ready(|_| async {}).await {
        Ok(u) => u,
        Err((m, _)) => {
            reply.reject(prohibited(m)).await;
            return;
        }
    };
    let upstream = match up
        .channel_open_direct_tcpip(
            dest.host.clone(),
            dest.port,
            dest.originator.clone(),
            dest.originator_port,
        )
        .await
    {
        Ok(c) => c,
        Err(e) => {
            reply
                .reject(ChannelOpenFailure::Other {
                    code: 2,
                    reason: format!("gatehouse: the target could not connect: {e}"),
                })
                .await;
            let _ = ctx
                .engine
                .record_result(
                    &ctx.session,
                    ResultObserved {
                        request: Some(decision.request),
                        status: ResultStatus::Error,
                        message: Some(e.to_string()),
                        ..ResultObserved::default()
                    },
                )
                .await;
            return;
        }
    };
    reply.accept().await;
    let started = std::time::Instant::now();
    let (mut front_rx, front_tx) = front.split();
    let (mut up_rx, up_tx) = upstream.split();
    let input = async {
        let mut rec = ctx.recorder(id, DataDirection::Input);
        while let Some(msg) = front_rx.wait().await {
            match msg {
                ChannelMsg::Data { data } => {
                    ctx.record(&mut rec, &data).await;
                    if up_tx.data_bytes(data).await.is_err() {
                        break;
                    }
                }
                ChannelMsg::Eof => {
                    let _ = up_tx.eof().await;
                }
                ChannelMsg::Close => break,
                _ => {}
            }
        }
        rec.total
    };
    let output = async {
        let mut rec = ctx.recorder(id, DataDirection::Output);
        while let Some(msg) = up_rx.wait().await {
            match msg {
                ChannelMsg::Data { data } => {
                    ctx.record(&mut rec, &data).await;
                    if front_tx.data_bytes(data).await.is_err() {
                        break;
                    }
                }
                ChannelMsg::Eof => {
                    let _ = front_tx.eof().await;
                }
                ChannelMsg::Close => break,
                _ => {}
            }
        }
        rec.total
    };
    tokio::pin!(input, output);
    let bytes = tokio::select! {
        out = &mut output => {
            let _ = front_tx.close().await;
            let inp = tokio::time::timeout(std::time::Duration::from_secs(5), &mut input).await.unwrap_or(0);
            out + inp
        }
        inp = &mut input => {
            let _ = up_tx.close().await;
            let out = tokio::time::timeout(std::time::Duration::from_secs(5), &mut output).await.unwrap_or(0);
            out + inp
        }
    };
    let _ = front_tx.close().await;
    let _ = ctx
        .engine
        .record_result(
            &ctx.session,
            ResultObserved {
                request: Some(decision.request),
                status: ResultStatus::Ok,
                bytes: Some(bytes),
                duration_us: Some(started.elapsed().as_micros() as u64),
                ..ResultObserved::default()
            },
        )
        .await;
}
