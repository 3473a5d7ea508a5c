//! The vocabulary every layer shares: records and the events made of them, the effects a
//! function asks for and the commit that makes them durable, deployments and their
//! limits, failure kinds, value formats, the partitioner and the clock. Plain data; no I/O.

pub mod clock;
pub mod deployment;
pub mod effects;
pub mod event;
pub mod failure;
pub mod format;
pub mod limits;
pub mod partitioner;
pub mod record;
