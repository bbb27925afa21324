//! filter (being built).
