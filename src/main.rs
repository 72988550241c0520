//! The `mcp-warden` binary: a trampoline into the library.

fn main() -> std::process::ExitCode {
    mcp_warden::run(std::env::args_os())
}
