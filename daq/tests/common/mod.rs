//! Where the KM3NeT sample files are: `$KM3MON_TESTDATA`, else
//! `../shared/testdata` beside the workspace.
#![allow(dead_code)]

use std::path::PathBuf;

pub fn testdata() -> PathBuf {
    if let Some(dir) = std::env::var_os("KM3MON_TESTDATA") {
        return PathBuf::from(dir);
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata");
    assert!(
        dir.is_dir(),
        "sample files not found at {}: set KM3MON_TESTDATA or run scripts/test",
        dir.display()
    );
    dir
}
