//! The HTTP glue: turns every HTTP request into an [`HttpRequest`] (body capped at 1 MiB) and
//! hands it to [`Api::handle`]; routing and errors live there, so they are testable without a
//! socket. The one exception is the change stream, whose body is streamed
//! ([`Api::open_change_stream`]).
//!
//! A plain hyper service rather than a warp filter chain: every request took the same one path
//! through the chain (method, path, query, a clone of every header, the body), and the chain's
//! futures and the header map's copy were a visible share of a sold-out answer's few
//! microseconds. Here the request's parts are read where hyper put them.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::{FutureExt, StreamExt};
use warp::http::header::{HeaderName, HeaderValue};
use warp::http::{HeaderMap, Request, Response, StatusCode};
use warp::hyper::body::HttpBody;
use warp::hyper::server::conn::AddrIncoming;
use warp::hyper::service::{make_service_fn, service_fn, Service};
use warp::hyper::Body;

use crate::cluster::{Cluster, HttpReply, HttpRequest};
use crate::error::ApiError;
use crate::handler::Api;

/// Largest body accepted: 1 MiB.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Headers the API reads or forwards; others are dropped.
const KEPT_HEADERS: &[&str] = &[
    "authorization",
    "idempotency-key",
    "content-type",
    crate::handler::FORWARDED_HEADER,
    crate::request_id::REQUEST_ID_HEADER,
];

/// The body, refused with 413 past [`MAX_BODY_BYTES`]. A body that came in one chunk (any small
/// one) is kept as it came, without a copy.
async fn collect_body(headers: &HeaderMap, mut stream: Body) -> Result<Bytes, ApiError> {
    let declared = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(ApiError::payload_too_large());
    }
    let read_failed =
        |e: warp::hyper::Error| ApiError::invalid(format!("reading the body failed: {e}"));
    let mut first = Bytes::new();
    let mut body: Option<BytesMut> = None;
    while let Some(chunk) = stream.data().await {
        let chunk = chunk.map_err(read_failed)?;
        let held = body.as_ref().map_or(first.len(), BytesMut::len);
        if held + chunk.len() > MAX_BODY_BYTES {
            return Err(ApiError::payload_too_large());
        }
        match &mut body {
            Some(body) => body.extend_from_slice(&chunk),
            None if first.is_empty() => first = chunk,
            None => {
                let mut joined = BytesMut::with_capacity(first.len() + chunk.len());
                joined.extend_from_slice(&first);
                joined.extend_from_slice(&chunk);
                body = Some(joined);
            }
        }
    }
    Ok(body.map_or(first, BytesMut::freeze))
}

/// The header name of a reply: the names replies carry without parsing, others parsed.
fn header_name(name: &str) -> Option<HeaderName> {
    Some(match name {
        "content-type" => warp::http::header::CONTENT_TYPE,
        "retry-after" => warp::http::header::RETRY_AFTER,
        "allow" => warp::http::header::ALLOW,
        crate::request_id::REQUEST_ID_HEADER => {
            HeaderName::from_static(crate::request_id::REQUEST_ID_HEADER)
        }
        other => HeaderName::from_bytes(other.as_bytes()).ok()?,
    })
}

fn into_response(reply: HttpReply) -> Response<Body> {
    let mut response = Response::new(Body::from(reply.body));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in reply.headers {
        // The value's own bytes become the header's, without a copy.
        if let (Some(name), Ok(value)) = (
            header_name(&name),
            HeaderValue::from_maybe_shared(Bytes::from(value)),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// A 200 whose NDJSON body is `stream`, sent chunk by chunk as it yields, with its request id.
fn stream_response(stream: crate::changes::ChangeStream, request_id: &str) -> Response<Body> {
    let body = Body::wrap_stream(stream.map(Ok::<Bytes, std::convert::Infallible>));
    let mut response = Response::new(body);
    response.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        warp::http::HeaderValue::from_static("application/x-ndjson"),
    );
    if let Ok(value) = warp::http::HeaderValue::from_str(request_id) {
        response
            .headers_mut()
            .insert(crate::request_id::REQUEST_ID_HEADER, value);
    }
    response
}

/// Answers one HTTP request through `api`.
async fn answer<C: Cluster>(api: Arc<Api<C>>, http: Request<Body>) -> Response<Body> {
    let (parts, body) = http.into_parts();
    let body = match collect_body(&parts.headers, body).await {
        Ok(body) => body,
        Err(e) => return into_response(e.into_reply()),
    };
    let kept = KEPT_HEADERS
        .iter()
        .filter_map(|name| {
            parts.headers.get(*name).map(|v| {
                // A value that is not visible ASCII is kept as a marker that fails
                // validation, rather than silently dropped.
                let value = v
                    .to_str()
                    .map(str::to_string)
                    .unwrap_or_else(|_| "\u{fffd}".into());
                (name.to_string(), value)
            })
        })
        .collect();
    let mut request = HttpRequest {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: kept,
        body,
    };
    let request_id = crate::request_id::take_or_make(&mut request);
    if let Some(opened) = api.open_change_stream(&request) {
        return match opened {
            Ok(stream) => stream_response(
                Box::pin(stream.take_until(api.drain().started())),
                &request_id,
            ),
            Err(reply) => into_response(reply),
        };
    }
    into_response(api.handle(request).await)
}

/// The hyper service answering every request through `api` (over TCP here, over TLS in the
/// node).
pub fn service<C: Cluster>(
    api: Arc<Api<C>>,
) -> impl Service<
    Request<Body>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Body>, Infallible>> + Send,
> + Clone
       + Send {
    service_fn(move |http| answer(api.clone(), http).map(Ok::<_, Infallible>))
}

/// Serves `api` on `addr` until `shutdown` resolves. Answers the bound address and the server
/// future, so callers can bind port 0.
pub fn bind<C: Cluster>(
    api: Arc<Api<C>>,
    addr: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, impl Future<Output = ()>), warp::hyper::Error> {
    let mut incoming = AddrIncoming::bind(&addr)?;
    incoming.set_nodelay(true);
    let bound = incoming.local_addr();
    let service = service(api);
    let server = warp::hyper::Server::builder(incoming)
        .serve(make_service_fn(move |_| {
            let service = service.clone();
            async move { Ok::<_, Infallible>(service) }
        }))
        .with_graceful_shutdown(shutdown)
        .map(|served| {
            if let Err(e) = served {
                tracing::error!("server error: {e}");
            }
        });
    Ok((bound, server))
}
