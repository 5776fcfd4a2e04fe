//! The one place that talks to the kernel: signals and the process table.
