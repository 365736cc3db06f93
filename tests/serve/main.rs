//! `spikebreaker serve` (feature `serve`) tested as its users use it: the binary started on
//! loopback ports with a configuration file, driven over gRPC (Envoy's rate-limit protocol, with
//! tonic here and grpcio from Python), over HTTP and with `curl`; signals sent to it, killed,
//! restarted.

#[cfg(feature = "serve")]
mod faults;
#[cfg(all(feature = "serve", not(spikebreaker_no_redis_server)))]
mod fleet;
#[cfg(feature = "serve")]
mod grpc;
#[cfg(feature = "serve")]
mod http;
#[cfg(feature = "serve")]
mod lifecycle;
#[cfg(feature = "serve")]
mod python;
#[cfg(feature = "serve")]
mod quarantine;
#[cfg(all(feature = "serve", not(spikebreaker_no_redis_server)))]
#[path = "../support/redis_server.rs"]
mod redis_server;
#[cfg(feature = "serve")]
mod server;
#[cfg(feature = "serve")]
mod slices;
#[cfg(feature = "serve")]
#[path = "../support/mod.rs"]
mod support;

// A suite whose feature is off shows as ignored, naming the feature, rather than as nothing.
#[cfg(not(feature = "serve"))]
#[test]
#[ignore = "needs --features serve"]
fn serve() {}

#[cfg(all(feature = "serve", spikebreaker_no_redis_server))]
#[test]
#[ignore = "no redis-server on the PATH when the tests were built (apt-get install redis-server; \
            SPIKEBREAKER_REDIS_TESTS=require makes it fail instead)"]
fn fleet() {}
