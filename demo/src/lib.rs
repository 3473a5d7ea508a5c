//! The demo's library half: the synthetic data generator, kept apart so it can be tested.

pub mod generate;
