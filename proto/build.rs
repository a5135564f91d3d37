//! Compiles `trust/**/*.proto` with protox (pure Rust), so building needs no system `protoc`.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "trust/common/v1/common.proto",
    "trust/ingest/v1/ingest.proto",
    "trust/alerting/v1/escalation.proto",
    "trust/notifications/v1/notifications.proto",
    "trust/safeguarding/v1/safeguarding.proto",
    "trust/commissioning/v1/commissioning.proto",
    "trust/operations/v1/operations.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let mut compiler = protox::Compiler::new(["."])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(PROTOS)?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    // Served by gRPC reflection, so tools like grpcurl can call the services without the .proto files.
    std::fs::write(
        out_dir.join("trust_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    let descriptors = compiler.file_descriptor_set();
    // Type names let a bus message say what it is (`Trust-Message-Type` header) via `prost::Name`.
    let mut prost_config = prost_build::Config::new();
    prost_config.enable_type_names();
    tonic_prost_build::configure().compile_fds_with_config(descriptors, prost_config)?;
    Ok(())
}
