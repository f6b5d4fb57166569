//! The `parkwatch` command: for now, a demo that shows what parkwatch sees.

fn main() {
    println!("parkwatch");
}
