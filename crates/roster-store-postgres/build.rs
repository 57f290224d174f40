//! `sqlx::migrate!` embeds the migrations at compile time, and cargo does not know that the
//! crate reads them: without this, an edited migration would not trigger a rebuild.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
