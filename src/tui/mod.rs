//! tui (being built).
