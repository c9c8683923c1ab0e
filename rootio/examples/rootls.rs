//! `cargo run -p km3mon-rootio --example rootls FILE.root`: keys, trees, branches
//! and baskets of a ROOT file, as this reader sees them.
use rootio::{RootFile, Tree};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for path in std::env::args().skip(1) {
        let file = RootFile::open(&path)?;
        println!(
            "{path}: version {} compress {} size {}",
            file.header().version,
            file.header().compress,
            file.size()
        );
        for key in file.keys() {
            println!(
                "  key {};{} {} ({} B)",
                key.name, key.cycle, key.class_name, key.objlen
            );
            if key.class_name == "TTree" {
                let tree = Tree::read(&file, key)?;
                println!("    entries {}", tree.entries);
                for b in tree.all_branches() {
                    if b.baskets.is_empty() {
                        continue;
                    }
                    println!(
                        "    {} [{} {}] eol {} entries {} baskets {}",
                        b.name,
                        b.class,
                        b.element_class,
                        b.entry_offset_len,
                        b.entries,
                        b.baskets.len()
                    );
                    for info in b.baskets.iter().take(3) {
                        let k = file.read_key(info.seek)?;
                        println!(
                            "      basket at {}: {} entries, {} B stored, {} B uncompressed",
                            info.seek,
                            info.end_entry - info.first_entry,
                            k.stored_len(),
                            k.objlen
                        );
                    }
                }
            }
        }
    }
    Ok(())
}
