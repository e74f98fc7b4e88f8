//! What `blastwall verify` writes: the run's findings ([`VerifyReport`], `model`) as JSON,
//! JUnit XML and a self-contained HTML page with SVG plots (**not built yet**: only the
//! model).

mod model;

pub use model::{
    Check, ExperimentReport, FaultWindow, Outcome, ProxyEvent, Second, Sources, Totals,
    VerifyReport,
};
