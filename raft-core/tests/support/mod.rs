//! Helpers of the golden interaction tests: the script format and the cluster that runs it.

pub mod cluster;
pub mod render;
pub mod script;
pub mod state_machine;
