//! SASL/PLAIN authentication (SaslHandshake versions 0 and 1, SaslAuthenticate 0 to 2), off
//! unless [`ServerConfig::sasl_plain_users`](crate::ServerConfig::sasl_plain_users) is set.
//!
//! Owns each connection's authentication state ([`AuthState`], one `Cell` per connection).
//! Invariants, as in Kafka's `SaslServerAuthenticator`:
//! - With SASL on, a connection that is not yet authenticated may send only ApiVersions,
//!   SaslHandshake and SaslAuthenticate; anything else closes it (the connection layer
//!   enforces this before decoding the request body).
//! - PLAIN is the only mechanism; another is `UNSUPPORTED_SASL_MECHANISM` with the list.
//! - A handshake of version 0 is followed by the client's token as a bare size-prefixed
//!   frame (no Kafka header), answered by an empty frame on success and by closing the
//!   connection on failure; version 1 is followed by SaslAuthenticate requests.
//! - A wrong user or password is `SASL_AUTHENTICATION_FAILED` (the same answer for both, so
//!   users cannot be probed), and the connection is closed after that answer.
//! - Passwords are compared in time independent of where they differ.

use std::cell::Cell;

use bytes::Bytes;
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::server::connection::RequestContext;
use crate::server::SaslPlainUsers;

/// Where a connection is in authentication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AuthState {
    /// SASL is off, or the client authenticated: every request is served.
    Open,
    /// SASL is on and nothing was done yet.
    Start,
    /// A version 0 handshake chose PLAIN: the next frame is the bare token.
    RawToken,
    /// A version 1 handshake chose PLAIN: a SaslAuthenticate comes next.
    Handshaken,
    /// Authentication failed: the connection closes once its answer is sent.
    Failed,
}

impl AuthState {
    /// The state a new connection starts in.
    pub(crate) fn initial(sasl: bool) -> AuthState {
        if sasl {
            AuthState::Start
        } else {
            AuthState::Open
        }
    }
}

const PLAIN: &str = "PLAIN";

/// SaslHandshake: PLAIN is accepted when SASL is on and no handshake happened yet.
pub(crate) fn sasl_handshake(
    ctx: &RequestContext<'_>,
    req: SaslHandshakeRequest,
) -> SaslHandshakeResponse {
    let mechanisms = if ctx.shared.config.sasl_plain_users.is_some() {
        vec![StrBytes::from_static_str(PLAIN)]
    } else {
        Vec::new()
    };
    let out = SaslHandshakeResponse::default().with_mechanisms(mechanisms);
    if ctx.shared.config.sasl_plain_users.is_none() || ctx.auth.get() != AuthState::Start {
        return out.with_error_code(ResponseError::IllegalSaslState.code());
    }
    if &*req.mechanism != PLAIN {
        return out.with_error_code(ResponseError::UnsupportedSaslMechanism.code());
    }
    ctx.auth.set(if ctx.version() == 0 {
        AuthState::RawToken
    } else {
        AuthState::Handshaken
    });
    out
}

/// Checks a PLAIN token (`authzid NUL authcid NUL password`, RFC 4616) against the users;
/// `Err` is the message for the client.
pub(crate) fn check_plain(users: &SaslPlainUsers, token: &[u8]) -> Result<String, String> {
    let mut parts = token.split(|&b| b == 0);
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("a PLAIN token is authzid NUL user NUL password".into());
    };
    let (Ok(authzid), Ok(user)) = (std::str::from_utf8(authzid), std::str::from_utf8(user)) else {
        return Err("the user is not UTF-8".into());
    };
    if !authzid.is_empty() && authzid != user {
        return Err("authentication failed: authorization id must be the user".into());
    }
    if users.check(user, password) {
        Ok(user.to_string())
    } else {
        Err("authentication failed: invalid user or password".into())
    }
}

/// SaslAuthenticate: the PLAIN token after a version 1 handshake.
pub(crate) fn sasl_authenticate(
    ctx: &RequestContext<'_>,
    req: SaslAuthenticateRequest,
) -> SaslAuthenticateResponse {
    let out = SaslAuthenticateResponse::default().with_auth_bytes(Bytes::new());
    let Some(users) = ctx.shared.config.sasl_plain_users.as_ref() else {
        return out
            .with_error_code(ResponseError::IllegalSaslState.code())
            .with_error_message(Some(StrBytes::from_static_str("SASL is not enabled")));
    };
    if ctx.auth.get() != AuthState::Handshaken {
        ctx.auth.set(AuthState::Failed);
        return out
            .with_error_code(ResponseError::IllegalSaslState.code())
            .with_error_message(Some(StrBytes::from_static_str(
                "SaslAuthenticate must follow a SaslHandshake (version 1) choosing PLAIN",
            )));
    }
    match check_plain(users, &req.auth_bytes) {
        Ok(user) => {
            log::debug!(
                "embroker server: {} authenticated as {user} (SASL/PLAIN)",
                ctx.peer
            );
            ctx.auth.set(AuthState::Open);
            out
        }
        Err(message) => {
            ctx.auth.set(AuthState::Failed);
            out.with_error_code(ResponseError::SaslAuthenticationFailed.code())
                .with_error_message(Some(StrBytes::from_string(message)))
        }
    }
}

/// Whether this request may be served in state `state` (see the module docs).
pub(crate) fn allowed(state: AuthState, key: kafka_protocol::messages::ApiKey) -> bool {
    use kafka_protocol::messages::ApiKey;
    match state {
        AuthState::Open => true,
        AuthState::Start => matches!(key, ApiKey::ApiVersions | ApiKey::SaslHandshake),
        AuthState::Handshaken => matches!(key, ApiKey::SaslAuthenticate),
        AuthState::RawToken | AuthState::Failed => false,
    }
}

/// A version 0 handshake's bare token: `Ok` to answer with an empty frame.
pub(crate) fn raw_token(
    users: &SaslPlainUsers,
    auth: &Cell<AuthState>,
    token: &[u8],
) -> Result<(), String> {
    let checked = check_plain(users, token);
    auth.set(if checked.is_ok() {
        AuthState::Open
    } else {
        AuthState::Failed
    });
    checked.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_tokens() {
        let users = SaslPlainUsers::default().insert("alice", "s3cret");
        assert_eq!(check_plain(&users, b"\0alice\0s3cret"), Ok("alice".into()));
        assert_eq!(
            check_plain(&users, b"alice\0alice\0s3cret"),
            Ok("alice".into())
        );
        for bad in [
            &b"\0alice\0wrong"[..],
            b"\0bob\0s3cret",
            b"bob\0alice\0s3cret",
            b"\0alice",
            b"\0alice\0s3cret\0",
            b"",
            b"\0\xff\0s3cret",
        ] {
            assert!(check_plain(&users, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn what_each_state_allows() {
        use kafka_protocol::messages::ApiKey;
        assert!(allowed(AuthState::Open, ApiKey::Metadata));
        assert!(allowed(AuthState::Start, ApiKey::ApiVersions));
        assert!(allowed(AuthState::Start, ApiKey::SaslHandshake));
        assert!(!allowed(AuthState::Start, ApiKey::Metadata));
        assert!(!allowed(AuthState::Start, ApiKey::SaslAuthenticate));
        assert!(allowed(AuthState::Handshaken, ApiKey::SaslAuthenticate));
        assert!(!allowed(AuthState::Handshaken, ApiKey::Produce));
        assert!(!allowed(AuthState::Failed, ApiKey::ApiVersions));
    }
}
