//! Kubernetes `Status` objects: how the API server refuses, so kubectl prints
//! Gatehouse's refusals like any other (`Error from server (Forbidden): ...`).

use bytes::Bytes;
use hyper::{Response, StatusCode};
use serde_json::json;

use crate::body::{ProxyBody, full};

/// The `reason` the API server uses for a status code.
fn reason(code: StatusCode) -> &'static str {
    match code.as_u16() {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        406 => "NotAcceptable",
        413 => "RequestEntityTooLarge",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    }
}

/// The JSON of a failure `Status`.
pub fn status_json(code: StatusCode, message: &str) -> Bytes {
    let v = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason(code),
        "code": code.as_u16(),
    });
    Bytes::from(v.to_string())
}

/// A response carrying a failure `Status`.
pub fn status_response(code: StatusCode, message: &str) -> Response<ProxyBody> {
    let mut r = Response::new(full(status_json(code, message)));
    *r.status_mut() = code;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}
