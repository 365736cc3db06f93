//! `spikebreaker serve` tested as its users use it: the binary started on loopback ports with a
//! configuration file, driven over gRPC (Envoy's rate-limit protocol, with tonic here and grpcio
//! from Python), over HTTP and with `curl`; signals sent to it, killed, restarted.
#![cfg(feature = "serve")]

mod faults;
mod fleet;
mod grpc;
mod http;
mod lifecycle;
mod python;
mod quarantine;
#[path = "../support/redis_server.rs"]
mod redis_server;
mod server;
#[path = "../support/mod.rs"]
mod support;
