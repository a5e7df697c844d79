//! Free ports for the nodes under test, chosen where nothing else will take them.
//!
//! Binding port 0 and releasing it hands out a port from the kernel's ephemeral range, the same
//! range every outgoing connection draws its local port from: between the pick and the node's
//! own bind (or while a killed node is down before its restart on the same ports) a peer's
//! outgoing connection can take it, and the node fails with "Address already in use". So ports
//! are picked below the ephemeral range, from a process-wide cursor that never hands out the same
//! port twice, and each is checked free by binding it before it is returned.

use std::net::{Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// The lowest port handed out; below it sit well-known and registered services.
const FIRST_PORT: u32 = 15_000;

/// The ephemeral range when the kernel does not say (Linux's default).
const DEFAULT_EPHEMERAL: (u32, u32) = (32_768, 60_999);

/// Picks `count` distinct free ports on `ip` outside the kernel's ephemeral range.
///
/// Test binaries run one after another but tests inside one run in parallel, and several test
/// processes may share the machine: the cursor starts at an offset derived from the process id
/// and moves forward, so neither threads nor neighbouring processes collide in practice, and a
/// port some other program already holds is skipped.
pub fn reserve_ports_on(ip: Ipv4Addr, count: usize) -> Result<Vec<u16>> {
    let (first, end) = port_range();
    let span = end - first;
    let cursor = cursor(span);
    let mut ports = Vec::with_capacity(count);
    let mut tried = 0;
    while ports.len() < count {
        if tried >= span {
            return Err(Error::Io {
                context: format!("finding {count} free ports on {ip} in {first}..{end}"),
                source: std::io::Error::new(std::io::ErrorKind::AddrInUse, "every port is taken"),
            });
        }
        tried += 1;
        let port = (first + cursor.fetch_add(1, Ordering::Relaxed) % span) as u16;
        if TcpListener::bind((ip, port)).is_ok() {
            ports.push(port);
        }
    }
    Ok(ports)
}

/// The half-open range ports are picked from: `FIRST_PORT` up to the ephemeral range's start,
/// or above its end when it starts too low to leave room below.
fn port_range() -> (u32, u32) {
    let (ephemeral_start, ephemeral_end) =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|text| {
                let mut bounds = text.split_whitespace().map(str::parse::<u32>);
                Some((bounds.next()?.ok()?, bounds.next()?.ok()?))
            })
            .unwrap_or(DEFAULT_EPHEMERAL);
    if ephemeral_start > FIRST_PORT + 1_000 {
        (FIRST_PORT, ephemeral_start)
    } else {
        ((ephemeral_end + 1).min(64_535), 65_536)
    }
}

/// The process-wide cursor, starting at a position within `span` derived from the process id.
fn cursor(span: u32) -> &'static AtomicU32 {
    static CURSOR: OnceLock<AtomicU32> = OnceLock::new();
    CURSOR.get_or_init(|| AtomicU32::new(std::process::id().wrapping_mul(7_919) % span))
}
