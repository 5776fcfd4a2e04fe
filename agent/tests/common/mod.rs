//! The shared test support, under the name these tests have always used.
pub use gameday_test_support::*;
