//! risk (being built).
