//! (in progress)

pub mod cli;
