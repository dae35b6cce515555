//! Generates the Rust stubs for every `.proto` under the repository's `proto/` folder, with the
//! vendored `protoc` so that nothing has to be installed by hand.

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time, not baked in with env!: cargo shares one compiled build script between
    // checkouts of the same workspace that share a target directory.
    let proto_root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let proto_root = proto_root.canonicalize()?;
    let mut files = Vec::new();
    collect_protos(&proto_root, &mut files)?;
    files.sort();

    // tonic-prost-build emits no rerun-if-changed lines of its own.
    println!("cargo:rerun-if-changed={}", proto_root.display());
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }

    // SAFETY: build scripts are single-threaded; nothing else reads the environment concurrently.
    unsafe { std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?) };
    let well_known = protoc_bin_vendored::include_path()?;
    let descriptor = PathBuf::from(std::env::var("OUT_DIR")?).join("interlock_descriptor.bin");

    tonic_prost_build::configure()
        // The audit leaf encoding writes `details` in key order (event.proto); a BTreeMap makes
        // prost's encoding exactly that, where a HashMap would hash differently on every run.
        .btree_map(".interlock.audit.v1.AuditEvent.details")
        .file_descriptor_set_path(&descriptor)
        .compile_protos(&files, &[proto_root, well_known])?;
    Ok(())
}

fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
