//! Test guest: a plain WASI command (world `wasi:cli/command`), a valid component of
//! another world, which the host must refuse to deploy.

fn main() {
    println!("hello from another world");
}
