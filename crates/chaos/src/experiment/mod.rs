//! Experiments: each failure mode of a spec run under load (**being built**).

pub mod measure;
