//! The `mcp-warden` binary: a trampoline into the library.

fn main() -> std::process::ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // Each upstream's launcher starts here; it skips the command-line parser to stay
    // small in memory (see `launcher::dispatch`).
    if let Some(status) = mcp_warden::sandbox::launcher::dispatch(&args) {
        return status.into();
    }
    mcp_warden::run(args)
}
