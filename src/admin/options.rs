//! [`Options`]: who the admin router answers.

use std::fmt;

/// Who the admin router answers ([`router_with`](super::router_with)). The defaults are safe for
/// a router on a loopback or private address:
///
/// - **Host.** A request must name, in its `Host`, `localhost` or an IP address (any port), or a
///   host allowed with [`allow_host`](Self::allow_host): a web page cannot reach the router
///   through a DNS name it controls (DNS rebinding).
/// - **Cross-site requests.** A request that changes state (every `POST`) must carry
///   `Content-Type: application/json`, which a browser sends cross-site only after a CORS
///   preflight the router never approves, and an `Origin`, if it has one, of the router itself or
///   one allowed with [`allow_origin`](Self::allow_origin): a plain HTML form on another site
///   cannot force or reset a kind.
/// - **Token.** With [`bearer_token`](Self::bearer_token), every request must carry
///   `Authorization: Bearer <token>` (compared in constant time).
///
/// ```
/// use spikebreaker::admin::Options;
/// let options = Options::new()
///     .allow_host("breaker-admin.internal")
///     .bearer_token("s3cret-from-the-environment");
/// assert!(!format!("{options:?}").contains("s3cret"));
/// ```
#[derive(Clone, Default)]
pub struct Options {
    pub(super) hosts: Vec<String>,
    pub(super) any_host: bool,
    pub(super) origins: Vec<String>,
    /// The token's keyed digest ([`Token`]): the token itself is not kept.
    pub(super) token: Option<Token>,
}

/// A bearer token as the router keeps it: a 128-bit keyed digest (two SipHash hashers from
/// std's `RandomState`, seeded at random when the process first makes one), so that a presented token is compared in constant time with
/// something of a fixed length, and neither the comparison nor its timing says how long the
/// token is. Empty: refuses everything.
#[derive(Clone, Copy)]
pub(super) struct Token {
    digest: [u8; 16],
    empty: bool,
}

impl Token {
    fn new(token: &str) -> Self {
        Self {
            digest: digest(token.as_bytes()),
            empty: token.is_empty(),
        }
    }

    /// Whether `presented` is the token, in time that depends on `presented` alone.
    pub(super) fn matches(&self, presented: &str) -> bool {
        use subtle::ConstantTimeEq;
        !self.empty && bool::from(digest(presented.as_bytes()).ct_eq(&self.digest))
    }
}

/// The process's keys for token digests.
static TOKEN_KEYS: std::sync::LazyLock<[std::hash::RandomState; 2]> =
    std::sync::LazyLock::new(|| [std::hash::RandomState::new(), std::hash::RandomState::new()]);

fn digest(bytes: &[u8]) -> [u8; 16] {
    use std::hash::BuildHasher;
    let [a, b] = &*TOKEN_KEYS;
    let mut out = [0; 16];
    out[..8].copy_from_slice(&a.hash_one(bytes).to_le_bytes());
    out[8..].copy_from_slice(&b.hash_one(bytes).to_le_bytes());
    out
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("hosts", &self.hosts)
            .field("any_host", &self.any_host)
            .field("origins", &self.origins)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Options {
    /// The defaults: loopback names and IP addresses, same-origin requests, no token.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also answers requests whose `Host` is `host` (a name, any port, or `name:port` for that
    /// port only; compared without regard to case).
    pub fn allow_host(mut self, host: impl Into<String>) -> Self {
        self.hosts.push(host.into().to_ascii_lowercase());
        self
    }

    /// Answers whatever `Host` a request names: for a router behind a proxy that checks it.
    pub fn allow_any_host(mut self) -> Self {
        self.any_host = true;
        self
    }

    /// Also takes state-changing requests from pages of `origin` (`https://ops.example.com`, as
    /// a browser sends it in `Origin`).
    pub fn allow_origin(mut self, origin: impl Into<String>) -> Self {
        self.origins.push(origin.into().to_ascii_lowercase());
        self
    }

    /// Requires `Authorization: Bearer <token>` on every request. An empty token refuses every
    /// request.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(Token::new(&token.into()));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_matches_itself_alone_and_an_empty_one_nothing() {
        let token = Token::new("s3cret");
        assert!(token.matches("s3cret"));
        for other in ["", "s3cre", "s3cret!", "S3cret", "s3cret\0"] {
            assert!(!token.matches(other), "{other:?}");
        }
        assert!(!Token::new("").matches(""));
        let shown = format!("{:?}", Options::new().bearer_token("s3cret"));
        assert!(shown.contains("***") && !shown.contains("s3cret"), "{shown}");
    }
}
