//! One client connection: read a request, answer it, read the next.

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

use super::api::sasl::{self, AuthState};
use super::config::ServerConfig;
use super::decode_guard;
use super::dispatch::{self, Reply};
use super::listener::Shared;
use super::versions;

/// What a request handler sees of its connection.
pub(crate) struct RequestContext<'a> {
    pub(crate) shared: &'a Shared,
    /// The address the client connected to: what Metadata advertises.
    pub(crate) local_addr: SocketAddr,
    pub(crate) peer: SocketAddr,
    pub(crate) header: &'a RequestHeader,
    /// The connection's SASL state (`api::sasl`).
    pub(crate) auth: &'a Cell<AuthState>,
    /// The client's socket (none for a frame answered without one, `answer_frame`).
    pub(crate) stream: Option<&'a TcpStream>,
}

impl RequestContext<'_> {
    /// Whether the client has closed its side of the connection (or the socket failed):
    /// a request that waits (JoinGroup, SyncGroup) asks this on its periodic wake so that a
    /// client gone mid-wait frees its thread and connection at once. A peek that finds the
    /// next request's bytes means the client is there.
    pub(crate) fn client_gone(&self) -> bool {
        let Some(stream) = self.stream else {
            return false;
        };
        if stream.set_nonblocking(true).is_err() {
            return true;
        }
        let mut byte = [0u8; 1];
        let gone = match stream.peek(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        };
        stream.set_nonblocking(false).is_err() || gone
    }

    /// The request's API version.
    pub(crate) fn version(&self) -> i16 {
        self.header.request_api_version
    }

    /// The client's `client.id`, or "" when it sent none.
    pub(crate) fn client_id(&self) -> &str {
        self.header.client_id.as_deref().unwrap_or("")
    }

    /// The host and port clients are told to reach this broker at.
    pub(crate) fn advertised(&self) -> (String, i32) {
        let host = match &self.shared.config.advertised_host {
            Some(h) => h.clone(),
            None => self.local_addr.ip().to_string(),
        };
        (host, i32::from(self.local_addr.port()))
    }
}

/// Why a connection is being closed.
pub(crate) struct Close(pub(crate) String);

/// Serves one connection until the client closes it, it breaks a rule, or the server stops.
pub(crate) fn serve(shared: &Shared, mut stream: TcpStream, peer: SocketAddr) {
    let local_addr = match stream.local_addr() {
        Ok(a) => a,
        Err(e) => {
            log::warn!("embroker server: connection from {peer} closed: {e}");
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(shared.config.connections_max_idle));
    // A client that stops reading its answers blocks our write once the socket buffers are
    // full: that is idleness too (Kafka closes it after connections.max.idle.ms), not a
    // thread and a response buffer held until the server stops.
    let _ = stream.set_write_timeout(Some(shared.config.connections_max_idle));
    let mut out = BytesMut::new();
    let auth = Cell::new(AuthState::initial(shared.config.sasl_plain_users.is_some()));
    loop {
        if shared.stopping() {
            return;
        }
        // A bare SASL token (after a version 0 SaslHandshake) has no header to hold.
        let min = if auth.get() == AuthState::RawToken {
            0
        } else {
            8
        };
        let frame = match read_frame(&mut stream, shared.config.max_request_bytes, min) {
            Ok(Some(frame)) => frame,
            Ok(None) => return, // the client closed the connection
            Err(Close(why)) => {
                if !shared.stopping() {
                    log::warn!("embroker server: connection from {peer} closed: {why}");
                }
                return;
            }
        };
        out.clear();
        if auth.get() == AuthState::RawToken {
            // After a version 0 SaslHandshake: the bare PLAIN token, answered by an empty
            // frame, or the connection closes.
            let users = shared.config.sasl_plain_users.as_deref();
            match users.map(|u| sasl::raw_token(u, &auth, &frame)) {
                Some(Ok(())) => {
                    if stream.write_all(&[0; 4]).is_err() {
                        return;
                    }
                    continue;
                }
                Some(Err(why)) => {
                    log::warn!("embroker server: connection from {peer} closed: SASL: {why}");
                    return;
                }
                None => return,
            }
        }
        match answer(
            shared,
            local_addr,
            peer,
            Some(&stream),
            &auth,
            frame,
            &mut out,
        ) {
            Ok(true) => {
                if let Err(e) = stream.write_all(&out) {
                    if !shared.stopping() {
                        log::debug!("embroker server: connection from {peer} closed: {e}");
                    }
                    return;
                }
            }
            Ok(false) => {} // acks=0: no response
            Err(Close(why)) => {
                log::warn!("embroker server: connection from {peer} closed: {why}");
                return;
            }
        }
        if auth.get() == AuthState::Failed {
            // Kafka closes a connection whose authentication failed once it has answered.
            log::warn!(
                "embroker server: connection from {peer} closed: SASL authentication failed"
            );
            return;
        }
        // The buffer is reused for small answers; a large one (a Fetch of up to
        // max_fetch_bytes) is given back, so an idle connection holds no more than this.
        if out.capacity() > KEEP_OUT_BYTES {
            out = BytesMut::new();
        }
    }
}

/// The largest response buffer a connection keeps between requests.
const KEEP_OUT_BYTES: usize = 64 * 1024;

/// Reads one size-prefixed frame; `None` when the client closed the connection cleanly
/// between requests.
fn read_frame(stream: &mut TcpStream, max: usize, min: usize) -> Result<Option<Bytes>, Close> {
    let mut size = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match stream.read(&mut size[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(Close("the client closed inside a request's size".into())),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) && got == 0 =>
            {
                return Err(Close("idle longer than connections.max.idle.ms".into()))
            }
            Err(e) => return Err(Close(format!("reading a request: {e}"))),
        }
    }
    let size = i32::from_be_bytes(size);
    let size =
        usize::try_from(size).map_err(|_| Close(format!("a request of negative size {size}")))?;
    if size > max {
        return Err(Close(format!(
            "a request of {size} bytes is over socket.request.max.bytes ({max})"
        )));
    }
    if size < min {
        return Err(Close(format!(
            "a request of {size} bytes cannot hold a request header"
        )));
    }
    // Read into uninitialised capacity: zero-filling the body first (`vec![0; size]`) cost
    // a memset of every byte a client sends (docs/ARCHITECTURE.md, #18's thirteenth session).
    let mut buf = Vec::with_capacity(size);
    let got = stream
        .take(size as u64)
        .read_to_end(&mut buf)
        .map_err(|e| Close(format!("reading a request of {size} bytes: {e}")))?;
    if got < size {
        return Err(Close(format!(
            "reading a request of {size} bytes: the client closed after {got}"
        )));
    }
    Ok(Some(Bytes::from(buf)))
}

/// Decodes one request, runs it, and encodes its response (size prefix included) into
/// `out`. `Ok(false)`: nothing to send (a Produce with acks=0).
pub(crate) fn answer(
    shared: &Shared,
    local_addr: SocketAddr,
    peer: SocketAddr,
    stream: Option<&TcpStream>,
    auth: &Cell<AuthState>,
    mut frame: Bytes,
    out: &mut BytesMut,
) -> Result<bool, Close> {
    if frame.len() < 8 {
        return Err(Close("a request too short for its header".into()));
    }
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let Ok(key) = ApiKey::try_from(api_key) else {
        return Err(Close(format!("unknown API key {api_key}")));
    };
    let supported = versions::supported(key);
    if key == ApiKey::ApiVersions && supported.is_some_and(|(_, max)| version > max) {
        // Kafka answers an ApiVersions request it cannot parse with UNSUPPORTED_VERSION, in
        // version 0, with the versions it supports, so the client can retry with one.
        let body = versions::unsupported_version_response();
        encode_response(out, key, correlation_id, 0, |b| body.encode(b, 0))?;
        return Ok(true);
    }
    if !sasl::allowed(auth.get(), key) {
        return Err(Close(format!(
            "{key:?} before SASL authentication (only ApiVersions, SaslHandshake and \
             SaslAuthenticate are served until then)"
        )));
    }
    let Some((min, max)) = supported else {
        return Err(Close(format!("{key:?} is not served here")));
    };
    if version < min || version > max {
        return Err(Close(format!(
            "{key:?} version {version} is not served here (versions {min} to {max})"
        )));
    }
    let header_version = key.request_header_version(version);
    let header = RequestHeader::decode(&mut frame, header_version)
        .map_err(|e| Close(format!("{key:?} v{version}: a bad request header: {e}")))?;
    // Not `RequestKind::decode`: a count in the request is not trusted to size an allocation.
    let request = decode_guard::decode_request(key, &frame, version)
        .map_err(|e| Close(format!("{key:?} v{version}: a bad request body: {e}")))?;
    let ctx = RequestContext {
        shared,
        local_addr,
        peer,
        header: &header,
        auth,
        stream,
    };
    match dispatch::dispatch(&ctx, request)? {
        Reply::None => Ok(false),
        Reply::Send(response) => {
            encode_response(out, key, correlation_id, version, |b| {
                response.encode(b, version)
            })?;
            Ok(true)
        }
    }
}

/// One request frame (its size prefix left off) answered as a connection answers it, against
/// `broker`, for the `server_request` fuzz target (`embroker::__fuzz::server_answer`): the
/// response with its size prefix, or `None` when the connection would send nothing (acks=0) or
/// close. Long polls do not wait (`max_fetch_wait` is zero).
pub(crate) fn answer_frame(broker: &crate::Broker, frame: &[u8]) -> Option<Vec<u8>> {
    let config = ServerConfig::default()
        .max_fetch_wait(std::time::Duration::ZERO)
        .max_fetch_bytes(1 << 20);
    if frame.len() > config.max_request_bytes {
        return None;
    }
    let shared = Shared::new(broker.clone(), config);
    let addr = SocketAddr::from(([127, 0, 0, 1], 9092));
    let mut out = BytesMut::new();
    let auth = Cell::new(AuthState::initial(false));
    match answer(
        &shared,
        addr,
        addr,
        None,
        &auth,
        Bytes::copy_from_slice(frame),
        &mut out,
    ) {
        Ok(true) => Some(out.to_vec()),
        Ok(false) | Err(_) => None,
    }
}

fn encode_response<E: std::fmt::Display>(
    out: &mut BytesMut,
    key: ApiKey,
    correlation_id: i32,
    version: i16,
    body: impl FnOnce(&mut BytesMut) -> Result<(), E>,
) -> Result<(), Close> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(out, key.response_header_version(version))
        .map_err(|e| Close(format!("encoding a {key:?} response header: {e}")))?;
    body(out).map_err(|e| Close(format!("encoding a {key:?} v{version} response: {e}")))?;
    let size = i32::try_from(out.len() - start - 4)
        .map_err(|_| Close(format!("a {key:?} response over 2 GiB")))?;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}
