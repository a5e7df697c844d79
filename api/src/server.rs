//! The warp glue: turns every HTTP request into an [`HttpRequest`] (body capped at 1 MiB) and
//! hands it to [`Api::handle`]; routing and errors live there, so they are testable without a
//! socket. The one exception is the change stream, whose body is streamed
//! ([`Api::open_change_stream`]).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use warp::http::{HeaderMap, Method, Response};
use warp::hyper::Body;
use warp::Filter;

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

async fn collect_body(
    headers: &HeaderMap,
    mut stream: impl Stream<Item = Result<impl Buf, warp::Error>> + Unpin,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(ApiError::payload_too_large());
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk =
            chunk.map_err(|e| ApiError::invalid(format!("reading the body failed: {e}")))?;
        if body.len() + chunk.remaining() > MAX_BODY_BYTES {
            return Err(ApiError::payload_too_large());
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            body.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(body.freeze())
}

fn into_response(reply: HttpReply) -> Response<Body> {
    let mut response = Response::new(Body::from(reply.body));
    *response.status_mut() = warp::http::StatusCode::from_u16(reply.status)
        .unwrap_or(warp::http::StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in reply.headers {
        if let (Ok(name), Ok(value)) = (
            warp::http::header::HeaderName::from_bytes(name.as_bytes()),
            warp::http::HeaderValue::from_str(&value),
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

/// The warp filter answering every request through `api`.
pub fn filter<C: Cluster>(
    api: Arc<Api<C>>,
) -> impl Filter<Extract = (Response<Body>,), Error = warp::Rejection> + Clone {
    let query = warp::query::raw()
        .map(Some)
        .or(warp::any().map(|| None::<String>))
        .unify();
    warp::method()
        .and(warp::path::full())
        .and(query)
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .then(
            move |method: Method, path: warp::path::FullPath, query, headers: HeaderMap, stream| {
                let api = api.clone();
                async move {
                    let body = match collect_body(&headers, Box::pin(stream)).await {
                        Ok(body) => body,
                        Err(e) => return into_response(e.into_reply()),
                    };
                    let kept = KEPT_HEADERS
                        .iter()
                        .filter_map(|name| {
                            headers.get(*name).map(|v| {
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
                        method: method.as_str().to_string(),
                        path: path.as_str().to_string(),
                        query,
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
            },
        )
}

/// Serves `api` on `addr` until `shutdown` resolves. Answers the bound address and the server
/// future, so callers can bind port 0.
pub fn bind<C: Cluster>(
    api: Arc<Api<C>>,
    addr: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, impl Future<Output = ()>), warp::Error> {
    warp::serve(filter(api)).try_bind_with_graceful_shutdown(addr, shutdown)
}
