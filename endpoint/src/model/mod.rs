//! Jepsen data models: the SQL that stores them and the values that travel over HTTP.

pub mod lww;
