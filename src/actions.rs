//! Actions: delete and flush plans and their execution (being built).
