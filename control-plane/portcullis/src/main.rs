//! The `portcullis` binary; everything is in the library (`portcullis::main`).

fn main() -> std::process::ExitCode {
    portcullis::main()
}
