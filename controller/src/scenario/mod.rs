//! Scenario files: parsing and whole-file validation with file, line and column in every error.
