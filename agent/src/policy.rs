//! The host owner's policy: what faults this agent may apply, to what.
