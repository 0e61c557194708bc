//! Shared workloads for the benchmarks (being written).
