//! Wiring of the running box (being integrated; see wiring.rs).

pub mod board;
