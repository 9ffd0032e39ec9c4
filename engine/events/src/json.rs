//! The native JSON form of an event, written by hand for the event log's hot path.
//!
//! The log stores every event as JSON, three per SQL statement, so encoding is on the
//! path of every command the proxies forward. `serde_json`'s derived encoding scans
//! every string (keys included) one byte at a time for characters to escape and
//! routes tagged enums through its map machinery. This writer produces the same bytes
//! (pinned by tests against `serde_json::to_vec` and by the frozen schema fixtures)
//! for the envelope and the payloads a proxy writes per command — requests, decisions
//! and results — and hands every other payload to `serde_json`.
//!
//! Keys are static and known to need no escaping. A string value is copied as is when
//! it holds no byte JSON must escape (the check runs over the whole string without
//! branching per byte, which the compiler vectorizes); otherwise `serde_json` escapes
//! it, so escapes are byte for byte what `serde_json` writes.

use chrono::{DateTime, Utc};

use crate::payload::{
    Capture, DecisionMade, PgStatement, RequestDetail, RequestObserved, ResultObserved,
};
use crate::{Event, EventId, Identity, Payload};

/// Appends `event`'s native JSON form (what [`Event::to_json`] returns) to `out`.
pub fn write_event(out: &mut Vec<u8>, event: &Event) -> Result<(), serde_json::Error> {
    // Destructured without `..` here and below: a field added to one of these types
    // does not compile until it is written here too.
    let Event {
        id,
        time,
        schema_version,
        gateway_id,
        session_id,
        identity,
        target,
        protocol,
        payload,
    } = event;
    let mut w = Writer { out };
    w.out.extend_from_slice(b"{\"id\":");
    w.id(id);
    w.key(b"time");
    w.time(time)?;
    w.key(b"schema_version");
    w.uint(u64::from(*schema_version));
    w.key(b"gateway_id");
    w.str(gateway_id)?;
    if let Some(session) = session_id {
        w.key(b"session_id");
        w.str(session)?;
    }
    if let Some(identity) = identity {
        w.key(b"identity");
        w.identity(identity)?;
    }
    if let Some(target) = target {
        w.key(b"target");
        w.str(target)?;
    }
    if let Some(protocol) = protocol {
        w.key(b"protocol");
        w.raw_str(protocol.as_str());
    }
    w.key(b"payload");
    w.payload(payload)?;
    w.out.push(b'}');
    Ok(())
}

struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

/// Whether `s` holds a byte JSON strings must escape (`serde_json` escapes control
/// characters, `"` and `\`, and nothing else).
fn needs_escape(s: &str) -> bool {
    s.bytes().fold(false, |acc, b| {
        acc | (b < 0x20) | (b == b'"') | (b == b'\\')
    })
}

impl Writer<'_> {
    /// `,"key":` — keys are static identifiers.
    fn key(&mut self, key: &[u8]) {
        self.out.extend_from_slice(b",\"");
        self.out.extend_from_slice(key);
        self.out.extend_from_slice(b"\":");
    }

    /// `"key":` as an object's first member.
    fn first_key(&mut self, key: &[u8]) {
        self.out.push(b'"');
        self.out.extend_from_slice(key);
        self.out.extend_from_slice(b"\":");
    }

    /// A string known to need no escaping (enum names).
    fn raw_str(&mut self, s: &str) {
        self.out.push(b'"');
        self.out.extend_from_slice(s.as_bytes());
        self.out.push(b'"');
    }

    fn str(&mut self, s: &str) -> Result<(), serde_json::Error> {
        if needs_escape(s) {
            return serde_json::to_writer(&mut *self.out, s);
        }
        self.raw_str(s);
        Ok(())
    }

    fn opt_str(&mut self, s: Option<&str>) -> Result<(), serde_json::Error> {
        match s {
            Some(s) => self.str(s),
            None => {
                self.out.extend_from_slice(b"null");
                Ok(())
            }
        }
    }

    fn str_list<S: AsRef<str>>(&mut self, items: &[S]) -> Result<(), serde_json::Error> {
        self.out.push(b'[');
        for (i, s) in items.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.str(s.as_ref())?;
        }
        self.out.push(b']');
        Ok(())
    }

    fn uint(&mut self, n: u64) {
        let mut buf = [0u8; 20];
        let mut at = buf.len();
        let mut n = n;
        loop {
            at -= 1;
            if let Some(slot) = buf.get_mut(at) {
                // `n % 10` is a single digit.
                *slot = b'0' + (n % 10) as u8;
            }
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.out
            .extend_from_slice(buf.get(at..).unwrap_or_default());
    }

    fn bool(&mut self, b: bool) {
        self.out
            .extend_from_slice(if b { b"true" } else { b"false" });
    }

    fn id(&mut self, id: &EventId) {
        let mut buf = uuid::Uuid::encode_buffer();
        self.raw_str(id.as_uuid().as_hyphenated().encode_lower(&mut buf));
    }

    fn opt_id(&mut self, id: Option<&EventId>) {
        match id {
            Some(id) => self.id(id),
            None => self.out.extend_from_slice(b"null"),
        }
    }

    fn time(&mut self, t: &DateTime<Utc>) -> Result<(), serde_json::Error> {
        match crate::timefmt::text(t) {
            Some(text) => {
                self.raw_str(text.as_str());
                Ok(())
            }
            None => serde_json::to_writer(&mut *self.out, t),
        }
    }

    fn identity(&mut self, identity: &Identity) -> Result<(), serde_json::Error> {
        let Identity {
            name,
            on_behalf_of,
            role,
            credential_id,
        } = identity;
        self.out.push(b'{');
        self.first_key(b"name");
        self.str(name)?;
        self.opt_member(b"on_behalf_of", on_behalf_of.as_deref())?;
        self.opt_member(b"role", role.as_deref())?;
        self.opt_member(b"credential_id", credential_id.as_deref())?;
        self.out.push(b'}');
        Ok(())
    }

    fn payload(&mut self, payload: &Payload) -> Result<(), serde_json::Error> {
        match payload {
            Payload::RequestObserved(RequestObserved {
                command,
                detail: RequestDetail::Postgres(pg),
                reason,
            }) => self.pg_request(command, pg, reason.as_deref()),
            Payload::DecisionMade(d) => self.decision(d),
            Payload::ResultObserved(r) => self.result(r),
            other => serde_json::to_writer(&mut *self.out, other),
        }
    }

    fn pg_request(
        &mut self,
        command: &str,
        pg: &PgStatement,
        reason: Option<&str>,
    ) -> Result<(), serde_json::Error> {
        let PgStatement {
            kind,
            statement_index,
            statement_count,
            tables_read,
            tables_written,
            columns,
            functions,
            dangerous,
            has_where,
            ddl_target,
            privilege_change,
            transaction_control,
            phase,
            prepared_name,
            prepared_event,
            params,
            parse_error,
            unresolved,
            fallback,
        } = pg;
        self.out
            .extend_from_slice(b"{\"type\":\"request_observed\",\"command\":");
        self.str(command)?;
        self.out
            .extend_from_slice(b",\"detail\":{\"protocol\":\"postgres\",\"kind\":");
        self.str(kind.as_str())?;
        self.key(b"statement_index");
        self.uint(u64::from(*statement_index));
        self.key(b"statement_count");
        self.uint(u64::from(*statement_count));
        self.key(b"tables_read");
        self.str_list(tables_read)?;
        self.key(b"tables_written");
        self.str_list(tables_written)?;
        self.key(b"columns");
        self.str_list(columns)?;
        self.key(b"functions");
        self.str_list(functions)?;
        self.key(b"dangerous");
        self.str_list(dangerous)?;
        if let Some(v) = has_where {
            self.key(b"has_where");
            self.bool(*v);
        }
        self.opt_member(b"ddl_target", ddl_target.as_deref())?;
        self.opt_member(b"privilege_change", privilege_change.as_deref())?;
        self.opt_member(b"transaction_control", transaction_control.as_deref())?;
        self.key(b"phase");
        self.str(phase)?;
        self.opt_member(b"prepared_name", prepared_name.as_deref())?;
        if let Some(v) = prepared_event {
            self.key(b"prepared_event");
            self.id(v);
        }
        self.key(b"params");
        self.out.push(b'[');
        for (i, p) in params.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.opt_str(p.as_deref())?;
        }
        self.out.push(b']');
        self.opt_member(b"parse_error", parse_error.as_deref())?;
        self.opt_member(b"unresolved", unresolved.as_deref())?;
        self.opt_member(b"fallback", fallback.as_deref())?;
        self.out.push(b'}');
        self.opt_member(b"reason", reason)?;
        self.out.push(b'}');
        Ok(())
    }

    /// `,"key":"value"` when there is a value (`skip_serializing_if = "Option::is_none"`).
    fn opt_member(&mut self, key: &[u8], value: Option<&str>) -> Result<(), serde_json::Error> {
        match value {
            Some(v) => {
                self.key(key);
                self.str(v)
            }
            None => Ok(()),
        }
    }

    /// `,"key":n` when there is a value.
    fn opt_uint(&mut self, key: &[u8], value: Option<u64>) {
        if let Some(v) = value {
            self.key(key);
            self.uint(v);
        }
    }

    fn decision(&mut self, d: &DecisionMade) -> Result<(), serde_json::Error> {
        let DecisionMade {
            request,
            effect,
            rules,
            decided_by,
            reason,
            approval_id,
            default_applied,
            row_limit,
            policy_version,
        } = d;
        self.out
            .extend_from_slice(b"{\"type\":\"decision_made\",\"request\":");
        self.opt_id(request.as_ref());
        self.key(b"effect");
        self.raw_str(effect.as_str());
        self.key(b"rules");
        self.str_list(rules)?;
        if !decided_by.is_empty() {
            self.key(b"decided_by");
            self.str_list(decided_by)?;
        }
        self.opt_member(b"reason", reason.as_deref())?;
        self.opt_member(b"approval_id", approval_id.as_deref())?;
        self.key(b"default_applied");
        self.bool(*default_applied);
        self.opt_uint(b"row_limit", *row_limit);
        self.opt_member(b"policy_version", policy_version.as_deref())?;
        self.out.push(b'}');
        Ok(())
    }

    fn result(&mut self, r: &ResultObserved) -> Result<(), serde_json::Error> {
        let ResultObserved {
            request,
            status,
            rows,
            bytes,
            code,
            message,
            duration_us,
            masked,
            captures,
            sample,
        } = r;
        self.out
            .extend_from_slice(b"{\"type\":\"result_observed\",\"request\":");
        self.opt_id(request.as_ref());
        self.key(b"status");
        self.raw_str(status.as_str());
        self.opt_uint(b"rows", *rows);
        self.opt_uint(b"bytes", *bytes);
        self.opt_member(b"code", code.as_deref())?;
        self.opt_member(b"message", message.as_deref())?;
        self.opt_uint(b"duration_us", *duration_us);
        self.key(b"masked");
        self.uint(*masked);
        self.key(b"captures");
        self.out.push(b'[');
        for (i, c) in captures.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.capture(c)?;
        }
        self.out.push(b']');
        self.opt_member(b"sample", sample.as_deref())?;
        self.out.push(b'}');
        Ok(())
    }

    fn capture(&mut self, c: &Capture) -> Result<(), serde_json::Error> {
        let Capture {
            name,
            source,
            values,
            truncated,
            hosts,
        } = c;
        self.out.push(b'{');
        self.first_key(b"name");
        self.str(name)?;
        self.key(b"source");
        self.str(source)?;
        self.key(b"values");
        self.str_list(values)?;
        self.key(b"truncated");
        self.bool(*truncated);
        if !hosts.is_empty() {
            self.key(b"hosts");
            self.str_list(hosts)?;
        }
        self.out.push(b'}');
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        reason = "tests fail loudly on a broken assumption"
    )]

    use super::*;
    use crate::payload::{Capture, Effect, ResultStatus};
    use crate::synth;

    fn same(e: &Event) {
        let mut hand = Vec::new();
        write_event(&mut hand, e).unwrap();
        let serde = serde_json::to_vec(e).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&hand),
            String::from_utf8_lossy(&serde)
        );
    }

    #[test]
    fn every_kind_of_event_encodes_as_serde_does() {
        for e in synth::one_of_each() {
            same(&e);
        }
        for i in 0..5_000 {
            same(&synth::sample(i, "gw-1"));
        }
    }

    /// Strings that need escaping, non-ASCII text, empty and absent fields, and numbers
    /// at their limits, in every field the hand-written paths cover.
    #[test]
    fn escapes_unicode_and_absent_fields_encode_as_serde_does() {
        let nasty = [
            "",
            "plain",
            "quote \" and backslash \\",
            "only a \" quote",
            "only a \\ backslash",
            "tab\tnewline\ncr\rbell\u{7}nul\0",
            "unicode é 漢字 😀 \u{7f} \u{2028}",
            "\u{1f}",
        ];
        for (i, s) in nasty.iter().enumerate() {
            let s = s.to_string();
            let pg = PgStatement {
                kind: crate::payload::PgKind::ALL[i % crate::payload::PgKind::ALL.len()],
                statement_index: u32::MAX,
                statement_count: 0,
                tables_read: vec![s.clone(), "t".into()],
                tables_written: vec![],
                columns: vec![s.clone()],
                functions: vec![s.clone(), s.clone()],
                dangerous: vec![s.clone()],
                has_where: Some(i % 2 == 0),
                ddl_target: Some(s.clone()),
                privilege_change: Some(s.clone()),
                transaction_control: Some(s.clone()),
                phase: s.clone(),
                prepared_name: Some(s.clone()),
                prepared_event: Some(EventId::from_u128(u128::MAX - i as u128)),
                params: vec![None, Some(s.clone()), Some(String::new())],
                parse_error: Some(s.clone()),
                unresolved: Some(s.clone()),
                fallback: (i % 2 == 1).then(|| s.clone()),
            };
            let identity = Identity {
                name: s.clone(),
                on_behalf_of: Some(s.clone()),
                role: (i % 2 == 0).then(|| s.clone()),
                credential_id: Some(s.clone()),
            };
            let request = RequestObserved {
                command: s.clone(),
                detail: RequestDetail::Postgres(pg),
                reason: (i % 2 == 0).then(|| s.clone()),
            };
            let decision = DecisionMade {
                request: (i % 2 == 1).then(|| EventId::from_u128(i as u128)),
                effect: [
                    Effect::Allow,
                    Effect::Mask,
                    Effect::RequireApproval,
                    Effect::Block,
                ][i % 4],
                rules: vec![s.clone(); i % 3],
                decided_by: vec![s.clone(); i % 2],
                reason: Some(s.clone()),
                approval_id: Some(s.clone()),
                default_applied: i % 2 == 0,
                row_limit: (i % 2 == 0).then_some(i as u64),
                policy_version: Some(s.clone()),
            };
            let result = ResultObserved {
                request: None,
                status: [ResultStatus::Ok, ResultStatus::Error, ResultStatus::Refused][i % 3],
                rows: Some(u64::MAX),
                bytes: Some(0),
                code: Some(s.clone()),
                message: Some(s.clone()),
                duration_us: Some(i as u64),
                masked: 10_u64.pow(i as u32),
                captures: vec![Capture {
                    name: s.clone(),
                    source: s.clone(),
                    values: vec![s.clone(), String::new()],
                    truncated: i % 2 == 1,
                    hosts: if i % 2 == 0 { vec![s.clone()] } else { vec![] },
                }],
                sample: Some(s.clone()),
            };
            for payload in [
                Payload::from(request),
                Payload::from(decision),
                Payload::from(result),
            ] {
                let full = Event::builder(s.clone(), payload.clone())
                    .session(s.clone())
                    .identity(identity.clone())
                    .target(s.clone())
                    .protocol(crate::Protocol::Postgres)
                    .build();
                same(&full);
                same(&Event::builder(s.clone(), payload).build());
            }
        }
        // Default (empty) payloads: every optional field absent.
        same(&Event::builder("gw", DecisionMade::default()).build());
        same(&Event::builder("gw", ResultObserved::default()).build());
    }

    #[test]
    fn numbers_encode_as_serde_does() {
        for n in [0, 1, 9, 10, 99, 100, 12_345, u64::from(u32::MAX), u64::MAX] {
            let mut w = Vec::new();
            Writer { out: &mut w }.uint(n);
            assert_eq!(w, serde_json::to_vec(&n).unwrap());
        }
    }
}
