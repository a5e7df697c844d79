//! The change stream over HTTP: `GET /v1/changes` (a page, long-polled) and
//! `GET /v1/changes/stream` (NDJSON over one open response). Both are served from the answering
//! node's own applied state, never forwarded, so analytics pointed at a learner never touches the
//! voters.
//!
//! To ensure correctness:
//! - A page comes from [`sm::StateReader::changes`], which reads the floor, the records and the
//!   applied index from one RocksDB snapshot: `next` never skips a change this node holds.
//! - Waiting is on the state machine's applied-index watch, so a long poll answers as soon as an
//!   entry is applied, without polling RocksDB in a loop.

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use serde_json::json;
use sm::changes::{ChangePage, ChangesError};
use sm::StateReader;
use tokio::time::Instant;

use crate::error::ApiError;
use crate::view;

/// Changes per page when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 1000;
/// Most changes per page.
pub const MAX_LIMIT: usize = 10_000;
/// Longest long poll.
pub const MAX_WAIT_MS: u64 = 60_000;
/// Largest `after` accepted: the spec's offsets are int64, and an offset past it would be
/// answered with a `next` no int64 client can hold.
pub const MAX_OFFSET: u64 = i64::MAX as u64;
/// How often an idle stream sends a blank line, so either side notices a dead connection.
pub const STREAM_KEEPALIVE: Duration = Duration::from_secs(10);

/// The query of both change routes: `after=OFFSET&limit=N&wait_ms=MS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangesQuery {
    /// Answer changes with offsets after this; `None` starts at the oldest this node retains.
    pub after: Option<u64>,
    /// Most changes per page (1 to [`MAX_LIMIT`]).
    pub limit: usize,
    /// How long a page with nothing new may wait for a change (0 to [`MAX_WAIT_MS`]).
    pub wait_ms: u64,
}

impl ChangesQuery {
    /// Parses the raw query; unknown parameters, repeats and numbers out of range are 400.
    pub fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let mut query = ChangesQuery {
            after: None,
            limit: DEFAULT_LIMIT,
            wait_ms: 0,
        };
        let mut seen = Vec::new();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            if seen.contains(&name) {
                return Err(ApiError::invalid(format!(
                    "query parameter {name} given twice"
                )));
            }
            seen.push(name);
            let number = || {
                value.parse::<u64>().map_err(|_| {
                    ApiError::invalid(format!("{name} must be a non-negative integer"))
                })
            };
            match name {
                "after" => {
                    query.after = Some(Some(number()?).filter(|n| *n <= MAX_OFFSET).ok_or_else(
                        || ApiError::invalid(format!("after must be between 0 and {MAX_OFFSET}")),
                    )?);
                }
                "limit" => {
                    query.limit = usize::try_from(number()?)
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| {
                            ApiError::invalid(format!("limit must be between 1 and {MAX_LIMIT}"))
                        })?;
                }
                "wait_ms" => {
                    query.wait_ms =
                        Some(number()?)
                            .filter(|n| *n <= MAX_WAIT_MS)
                            .ok_or_else(|| {
                                ApiError::invalid(format!(
                                    "wait_ms must be between 0 and {MAX_WAIT_MS}"
                                ))
                            })?;
                }
                other => {
                    return Err(ApiError::invalid(format!(
                        "unknown query parameter {other:?}; expected after, limit, wait_ms"
                    )))
                }
            }
        }
        Ok(query)
    }

    /// The offset to read after: the one asked for, else this node's floor.
    fn start(&self, reader: &StateReader) -> Result<u64, ApiError> {
        match self.after {
            Some(after) => Ok(after),
            None => Ok(reader.changes_floor()?),
        }
    }
}

/// The JSON of a page: `{"changes": [...], "next": OFFSET}`.
fn page_json(page: &ChangePage) -> Result<Bytes, ApiError> {
    let mut out = Vec::with_capacity(64 + 512 * page.changes.len());
    out.extend_from_slice(b"{\"changes\":[");
    for (i, change) in page.changes.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        view::write_change(change, &mut out)?;
    }
    out.extend_from_slice(format!("],\"next\":{}}}", page.next).as_bytes());
    Ok(out.into())
}

/// `GET /v1/changes`: a page, waiting up to `wait_ms` for a first change when there is none.
pub async fn long_poll(reader: &StateReader, query: ChangesQuery) -> Result<Bytes, ApiError> {
    let after = query.start(reader)?;
    let deadline = Instant::now() + Duration::from_millis(query.wait_ms);
    let mut applied = reader.applied();
    loop {
        applied.borrow_and_update();
        let page = reader.changes(after, query.limit)?;
        if !page.changes.is_empty() || Instant::now() >= deadline {
            return page_json(&page);
        }
        match tokio::time::timeout_at(deadline, applied.changed()).await {
            Ok(Ok(())) => continue,
            // Nothing more will be applied (shutting down) or the wait is over.
            Ok(Err(_)) | Err(_) => return page_json(&page),
        }
    }
}

/// `GET /v1/changes/stream` answered without a streaming transport: the NDJSON of one page.
pub fn one_page_ndjson(reader: &StateReader, query: ChangesQuery) -> Result<Bytes, ApiError> {
    let page = reader.changes(query.start(reader)?, query.limit)?;
    ndjson(&page)
}

fn ndjson(page: &ChangePage) -> Result<Bytes, ApiError> {
    let mut out = Vec::with_capacity(512 * page.changes.len());
    for change in &page.changes {
        view::write_change(change, &mut out)?;
        out.push(b'\n');
    }
    Ok(out.into())
}

/// An open change stream: chunks of NDJSON lines, one change per line; blank lines are
/// keep-alives. If the consumer falls behind retention, a last line carries the contract's
/// `{"error": {"code": "offset_expired", ...}}` and the stream ends.
pub type ChangeStream = Pin<Box<dyn Stream<Item = Bytes> + Send>>;

/// Where an open stream is.
struct StreamState {
    /// The node's state.
    reader: StateReader,
    /// The last offset sent (or known to have nothing after it up to here).
    after: u64,
    /// Most changes read per chunk.
    limit: usize,
    /// Woken on every apply.
    applied: tokio::sync::watch::Receiver<u64>,
    /// Set once the last chunk went out.
    done: bool,
}

/// Opens the stream after the query's offset; 410 at once when that is already past retention.
pub fn open_stream(reader: &StateReader, query: ChangesQuery) -> Result<ChangeStream, ApiError> {
    let after = query.start(reader)?;
    // Checks the offset now, so an expired one gets a plain 410 rather than a 200 stream.
    reader.changes(after, 1)?;
    let state = StreamState {
        reader: reader.clone(),
        after,
        limit: query.limit,
        applied: reader.applied(),
        done: false,
    };
    Ok(Box::pin(futures::stream::unfold(state, next_chunk)))
}

async fn next_chunk(mut st: StreamState) -> Option<(Bytes, StreamState)> {
    if st.done {
        return None;
    }
    loop {
        st.applied.borrow_and_update();
        let failed = |e: ApiError| {
            let line = json!({"error": {"code": e.code, "message": e.message}});
            Bytes::from(format!("{line}\n"))
        };
        let page = match st.reader.changes(st.after, st.limit) {
            Ok(page) => page,
            Err(e @ ChangesError::Expired { .. }) | Err(e @ ChangesError::Store(_)) => {
                st.done = true;
                return Some((failed(e.into()), st));
            }
        };
        st.after = page.next;
        if !page.changes.is_empty() {
            return match ndjson(&page) {
                Ok(chunk) => Some((chunk, st)),
                Err(e) => {
                    st.done = true;
                    Some((failed(e), st))
                }
            };
        }
        match tokio::time::timeout(STREAM_KEEPALIVE, st.applied.changed()).await {
            Ok(Ok(())) => continue,
            Ok(Err(_)) => return None,
            Err(_) => return Some((Bytes::from_static(b"\n"), st)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_checked() {
        let q = ChangesQuery::parse(Some("after=42&limit=5&wait_ms=100")).unwrap();
        assert_eq!(
            q,
            ChangesQuery {
                after: Some(42),
                limit: 5,
                wait_ms: 100
            }
        );
        assert_eq!(ChangesQuery::parse(None).unwrap().limit, DEFAULT_LIMIT);
        let last = ChangesQuery::parse(Some("after=9223372036854775807")).unwrap();
        assert_eq!(last.after, Some(MAX_OFFSET));
        for bad in [
            "after=-1",
            "after=x",
            "limit=0",
            "limit=10001",
            "wait_ms=60001",
            "bogus=1",
            "after=1&after=2",
            "after=9223372036854775808",
        ] {
            assert_eq!(
                ChangesQuery::parse(Some(bad)).unwrap_err().status,
                400,
                "{bad}"
            );
        }
    }
}
