//! The migrations are compiled in with `include_str!`; Cargo tracks those files itself, but a
//! new file in the folder would otherwise not trigger a rebuild until some source changed.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
