//! Generates the Rust code and the file descriptor set of every `.proto` under `portcullis/`.
//!
//! Needs no system `protoc`: unless `PROTOC` is already set, it uses the binary shipped by
//! the `protoc-bin-vendored` crate.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "portcullis/events/v1/events.proto",
    "portcullis/audit/v1/audit.proto",
    "portcullis/control/v1/control.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("PROTOC").is_none() {
        let protoc = protoc_bin_vendored::protoc_bin_path()?;
        // SAFETY: build scripts are single-threaded here; nothing else reads the environment
        // while we set it.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("PROTOC", protoc);
        }
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed=portcullis");
    println!("cargo:rerun-if-env-changed=PROTOC");
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("portcullis_descriptor.bin"))
        .compile_protos(PROTOS, &["."])?;
    Ok(())
}
