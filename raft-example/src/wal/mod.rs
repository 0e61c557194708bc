//! Write-ahead log (in progress).

pub mod cli;
