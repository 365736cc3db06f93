//! Fleet mode (feature `redis`), against a real `redis-server` the tests start themselves.

#[cfg(feature = "redis")]
mod fleet;
#[cfg(feature = "redis")]
mod keys;
#[cfg(feature = "redis")]
#[path = "../support/redis_server.rs"]
mod redis_server;

// A suite whose feature is off shows as ignored, naming the feature, rather than as nothing.
#[cfg(not(feature = "redis"))]
#[test]
#[ignore = "needs --features redis"]
fn fleet() {}
