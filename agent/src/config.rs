//! The agent config file.
