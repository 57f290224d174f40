//! One module per resource; handlers decode, call the directory, encode.

pub(crate) mod auth;
pub(crate) mod departments;
pub(crate) mod tasks;
pub(crate) mod users;
