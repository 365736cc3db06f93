//! What an operator sees and does: the state machine under the operator's controls (`operator`),
//! the admin router over HTTP (`admin`, feature `admin`) and served against clients that hold
//! connections (`admin_server`, feature `admin`), the kind-name rule where names enter
//! (`names`), the metrics as Prometheus scrapes them (`prometheus`), and the operator files that
//! name those metrics (`operator_assets`).

#[cfg(feature = "admin")]
mod admin;
#[cfg(feature = "admin")]
mod admin_server;
mod figures;
mod names;
mod operator;
mod operator_assets;
mod problems;
mod prometheus;

// A suite whose feature is off shows as ignored, naming the feature, rather than as nothing.
#[cfg(not(feature = "admin"))]
#[test]
#[ignore = "needs --features admin"]
fn admin() {}

#[cfg(not(feature = "admin"))]
#[test]
#[ignore = "needs --features admin"]
fn admin_server() {}
