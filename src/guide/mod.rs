//! The guide: the long-form documentation of spikebreaker, a page a module, each compiled and its
//! examples run as doctests, so that it is versioned with the code it describes and never drifts
//! from it. The README is the front door; what it only names (how detection works, recovery and
//! the operator's controls, the configuration reference, persistence, metrics, fleet mode, the
//! quarantine, backtesting and tuning, performance, the evidence behind each guarantee, and the
//! known limits) is told in full here.
