//! The seccomp filter that closes what Landlock's TCP rules leave open when there is
//! no network namespace: every socket that is not a Unix socket or a plain TCP one
//! (UDP carries DNS exfiltration; raw, packet and netlink sockets; SCTP hides behind
//! `SOCK_STREAM`), and `io_uring`, whose socket operations would pass beside the filter.

use std::collections::BTreeMap;

use nix::libc;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

/// `socket(2)`'s type field: the low bits are the type, the rest are flags.
const SOCK_TYPE_MASK: u64 = 0xf;

/// Compiles the filter for this machine's architecture.
pub fn network_filter() -> Result<BpfProgram, String> {
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| format!("seccomp: {e}"))?;
    let cond = |arg: u8, op: SeccompCmpOp, value: u64| {
        SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value)
            .map_err(|e| format!("seccomp: {e}"))
    };
    let rule = |conditions: Vec<SeccompCondition>| {
        SeccompRule::new(conditions).map_err(|e| format!("seccomp: {e}"))
    };
    let family = |f: i32| u64::from(f.unsigned_abs());
    let (unix, inet, inet6) = (
        family(libc::AF_UNIX),
        family(libc::AF_INET),
        family(libc::AF_INET6),
    );
    let mut socket_rules = vec![rule(vec![
        cond(0, SeccompCmpOp::Ne, unix)?,
        cond(0, SeccompCmpOp::Ne, inet)?,
        cond(0, SeccompCmpOp::Ne, inet6)?,
    ])?];
    let stream = u64::from(libc::SOCK_STREAM.unsigned_abs());
    let tcp = u64::from(libc::IPPROTO_TCP.unsigned_abs());
    for ip in [inet, inet6] {
        for kind in (0..=SOCK_TYPE_MASK).filter(|&k| k != stream) {
            socket_rules.push(rule(vec![
                cond(0, SeccompCmpOp::Eq, ip)?,
                cond(1, SeccompCmpOp::MaskedEq(SOCK_TYPE_MASK), kind)?,
            ])?);
        }
        socket_rules.push(rule(vec![
            cond(0, SeccompCmpOp::Eq, ip)?,
            cond(2, SeccompCmpOp::Ne, 0)?,
            cond(2, SeccompCmpOp::Ne, tcp)?,
        ])?);
    }
    let mut rules = BTreeMap::new();
    rules.insert(libc::SYS_socket, socket_rules);
    for call in [
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
    ] {
        rules.insert(call, Vec::new());
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EACCES.unsigned_abs()),
        arch,
    )
    .map_err(|e| format!("seccomp: {e}"))?;
    filter.try_into().map_err(|e| format!("seccomp: {e}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn the_filter_compiles_here() {
        let program = super::network_filter().unwrap();
        assert!(program.len() > 20);
    }
}
