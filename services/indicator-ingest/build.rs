//! `sqlx::migrate!` embeds ./migrations when the crate compiles; without this, cargo would not notice a new
//! or edited migration and the binary would run the old set.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
