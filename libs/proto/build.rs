//! Generates the tonic/prost code for `proto/mixmon/v1` with protox, so no system `protoc`
//! is needed. Output goes to OUT_DIR only.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        root.join("mixmon/v1/control.proto"),
        root.join("mixmon/v1/checks.proto"),
        root.join("mixmon/v1/samples.proto"),
    ];
    println!("cargo:rerun-if-changed={}", root.display());
    let descriptors = protox::compile(&files, [&root])?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(descriptors)?;
    Ok(())
}
