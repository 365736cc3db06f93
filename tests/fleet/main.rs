//! Fleet mode (feature `redis`), against a real `redis-server` the tests start themselves.

#[cfg(all(feature = "redis", not(spikebreaker_no_redis_server)))]
mod fleet;
#[cfg(all(feature = "redis", not(spikebreaker_no_redis_server)))]
mod keys;
#[cfg(all(feature = "redis", not(spikebreaker_no_redis_server)))]
#[path = "../support/redis_server.rs"]
mod redis_server;

// A suite whose feature is off, or whose server is missing, shows as ignored, naming what it
// needs, rather than as nothing.
#[cfg(not(feature = "redis"))]
#[test]
#[ignore = "needs --features redis"]
fn fleet() {}

#[cfg(all(feature = "redis", spikebreaker_no_redis_server))]
#[test]
#[ignore = "no redis-server on the PATH when the tests were built (apt-get install redis-server; \
            SPIKEBREAKER_REDIS_TESTS=require makes it fail instead)"]
fn fleet() {}
