//! What every request passes before a route sees it (see [`Options`]): sizes the router reads,
//! the `Host` it answers, the token, and the rules that keep a browser on another site from
//! changing state; and JSON bodies for every error, whoever answered it.

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{Options, Refusal};

/// The longest request target the router reads (hyper itself answers 414 beyond 64 KiB).
pub(super) const MAX_URI_BYTES: usize = 8 * 1024;
/// The most header bytes the router reads (hyper itself answers 431 beyond about 400 KiB or 100
/// headers).
pub(super) const MAX_HEADER_BYTES: usize = 16 * 1024;
/// The largest body the router reads.
pub(super) const MAX_BODY_BYTES: usize = 16 * 1024;

/// The checks, in order: sizes (414, 431), `Host` (403), token (401), and for a request that
/// changes state, its `Origin` (403) and content type (415); then JSON for any error the route
/// answers. One middleware for both: every request passes it.
pub(super) async fn check(State(options): State<Arc<Options>>, request: Request, next: Next) -> Response {
    match refusal(
        &options,
        request.method(),
        target_bytes(request.uri()),
        request.headers(),
    ) {
        Some(refusal) => refusal,
        None => json_errors(next.run(request).await).await,
    }
}

/// The request target's length as written (`uri.to_string().len()`), without writing it out:
/// every request pays for this check.
fn target_bytes(uri: &Uri) -> usize {
    let scheme = uri.scheme_str().map_or(0, |scheme| scheme.len() + "://".len());
    let authority = uri.authority().map_or(0, |authority| authority.as_str().len());
    let path = uri.path_and_query().map_or(0, |path| path.as_str().len());
    scheme + authority + path
}

fn refusal(options: &Options, method: &Method, uri_bytes: usize, headers: &HeaderMap) -> Option<Response> {
    let refuse = |status, error: String| Some(Refusal { status, error }.into_response());
    if uri_bytes > MAX_URI_BYTES {
        return refuse(
            StatusCode::URI_TOO_LONG,
            format!("the request target is {uri_bytes} bytes, over the {MAX_URI_BYTES} this router reads"),
        );
    }
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return refuse(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("the headers are {header_bytes} bytes, over the {MAX_HEADER_BYTES} this router reads"),
        );
    }
    let host = text(headers, header::HOST).map(str::to_ascii_lowercase);
    if !options.any_host {
        match &host {
            Some(host) if host_allowed(options, host) => {}
            Some(host) => {
                return refuse(
                    StatusCode::FORBIDDEN,
                    format!(
                        "host {host:?} is not one this router answers: only localhost, IP addresses and \
                         hosts its options allow"
                    ),
                );
            }
            None => return refuse(StatusCode::BAD_REQUEST, "the request names no Host".into()),
        }
    }
    if let Some(token) = &options.token {
        let presented = text(headers, header::AUTHORIZATION).and_then(|value| value.strip_prefix("Bearer "));
        let valid = presented.is_some_and(|presented| token.matches(presented));
        if !valid {
            let mut refused = Refusal {
                status: StatusCode::UNAUTHORIZED,
                error: "a valid `Authorization: Bearer <token>` is required".into(),
            }
            .into_response();
            refused
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return Some(refused);
        }
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return None;
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default().to_ascii_lowercase();
        if !origin_allowed(options, &origin, host.as_deref()) {
            return refuse(
                StatusCode::FORBIDDEN,
                format!(
                    "cross-site request from origin {origin:?} refused: the router's options allow it no change"
                ),
            );
        }
    }
    let json = text(headers, header::CONTENT_TYPE)
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a request that changes state must be sent with `Content-Type: application/json`".into(),
        );
    }
    None
}

fn text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// Whether the router answers `host` (lower case, as in `Host`, with or without a port).
fn host_allowed(options: &Options, host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // An IPv6 literal: `[::1]` or `[::1]:8080`.
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _port)| name),
    };
    name == "localhost"
        || name.parse::<IpAddr>().is_ok()
        || options
            .hosts
            .iter()
            .any(|allowed| allowed == host || allowed == name)
}

/// Whether a state-changing request from a page of `origin` is taken: one of the router itself
/// (`origin`'s host and port are the request's `Host`), or one the options allow.
fn origin_allowed(options: &Options, origin: &str, host: Option<&str>) -> bool {
    let same_origin = host.is_some_and(|host| {
        origin.split_once("://").is_some_and(|(scheme, authority)| {
            let default_port = match scheme {
                "http" => ":80",
                "https" => ":443",
                _ => ":",
            };
            let bare = |authority: &'_ str| {
                authority
                    .strip_suffix(default_port)
                    .unwrap_or(authority)
                    .to_owned()
            };
            bare(authority) == bare(host)
        })
    });
    same_origin || options.origins.iter().any(|allowed| allowed == origin)
}

/// Gives every error a JSON body, `{"error": "..."}`: the router's own refusals have one; an
/// error answered by axum (a path that is not UTF-8, a body too large) gets its text as the error,
/// or the status's reason.
pub(super) async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let error = match text.trim() {
        "" => status.canonical_reason().unwrap_or("error").to_owned(),
        text => text.to_owned(),
    };
    let mut response = Refusal { status, error }.into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_targets_length_is_its_length_as_written() {
        for target in [
            "/status",
            "/kinds/a%20b/reset?on=true",
            "http://localhost:9180/status",
            "*",
            "/",
        ] {
            let uri: Uri = target.parse().unwrap();
            assert_eq!(target_bytes(&uri), uri.to_string().len(), "{target}");
        }
    }

    #[test]
    fn loopback_ip_and_allowed_hosts_only() {
        let options = Options::new()
            .allow_host("admin.internal")
            .allow_host("ops.internal:9180");
        for host in [
            "localhost",
            "localhost:9180",
            "127.0.0.1:9180",
            "10.1.2.3",
            "[::1]:9180",
            "admin.internal:1234",
            "ops.internal:9180",
        ] {
            assert!(host_allowed(&options, host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:9180",
            "ops.internal:80",
            "localhost.evil.example",
            "",
        ] {
            assert!(!host_allowed(&options, host), "{host}");
        }
    }

    #[test]
    fn only_the_router_itself_and_allowed_origins_change_state() {
        let options = Options::new().allow_origin("https://ops.example.com");
        let host = Some("127.0.0.1:9180");
        assert!(origin_allowed(&options, "http://127.0.0.1:9180", host));
        assert!(origin_allowed(&options, "https://ops.example.com", host));
        assert!(origin_allowed(
            &Options::new(),
            "http://localhost",
            Some("localhost:80")
        ));
        for origin in [
            "http://evil.example",
            "null",
            "http://127.0.0.1:9181",
            "https://ops.example.com.evil",
        ] {
            assert!(!origin_allowed(&options, origin, host), "{origin}");
        }
    }
}
