//! Active health checks (HTTP and TCP) and their schedule.
