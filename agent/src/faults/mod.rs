//! Fault implementations.
