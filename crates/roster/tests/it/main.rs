//! End-to-end tests: the real `roster` binary on 127.0.0.1:0 over a temporary data
//! directory (or a fresh PostgreSQL database), driven over real HTTP. One integration
//! binary, one module per area.

// Test code: a harness module shared by all tests, pedantic lints would only add noise.
#![allow(unreachable_pub, clippy::pedantic, clippy::unwrap_used)]

mod auth;
mod cli;
mod harness;
mod import;
mod postgres;
mod server;
mod tasks;
mod wire;
