//! rqmail-start [DEFAULTDELIVERY]: creates the six pipes, starts rqmail-lspawn (root),
//! rqmail-rspawn (rqmailr) and rqmail-clean (rqmailq), then becomes rqmail-send (rqmails),
//! so the supervisor's process is the scheduler and its TERM reaches the right program.

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use rqmail_outcome::EXIT_TEMPORARY;
use rqmail_privs::{GROUP, Ids, RQMAILQ, RQMAILR, RQMAILS, service_ids};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

/// Where rqmail-send expects its pipes: to/from lspawn, to/from rspawn, to/from clean.
const FIRST_SEND_FD: i32 = 3;
/// Send's pipe ends are parked above this while the low numbers are freed.
const PARKING_FD: i32 = 64;

fn pipe() -> anyhow::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(OFlag::O_CLOEXEC)?)
}

/// Starts one helper with the given stdin/stdout, as `ids` when running as root.
fn start_helper(
    home: &Path,
    program: &str,
    args: &[std::ffi::OsString],
    ids: Option<Ids>,
    stdin: OwnedFd,
    stdout: OwnedFd,
) -> anyhow::Result<()> {
    let mut cmd = Command::new(home.join("bin").join(program));
    cmd.args(args)
        .current_dir("/")
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::from(stdout));
    if rqmail_privs::is_root()
        && let Some(ids) = ids
    {
        // std clears supplementary groups when it changes uid as root.
        cmd.uid(ids.uid).gid(ids.gid);
    }
    cmd.spawn()
        .map_err(|e| anyhow::anyhow!("unable to start {program}: {e}"))?;
    Ok(())
}

fn run() -> anyhow::Result<std::io::Error> {
    // Whatever else was open when root started us must not reach send, lspawn, rspawn,
    // clean, or the users' programs lspawn runs.
    rqmail_privs::cloexec_from(3)?;
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let home = rqmail_control::home()?;
    std::env::set_current_dir(&home)?;
    let default_delivery: std::ffi::OsString = match std::env::args_os().nth(1) {
        Some(d) => d,
        None => rqmail_control::Control::new(&home)
            .line("defaultdelivery")?
            .unwrap_or_else(|| "./Maildir/".into())
            .into(),
    };
    let send_ids = service_ids(RQMAILS, GROUP)?;
    let queue_ids = service_ids(RQMAILQ, GROUP)?;
    let remote_ids = service_ids(RQMAILR, GROUP)?;
    let lspawn_gid = if rqmail_privs::is_root() {
        rqmail_privs::group(GROUP)?.ok_or_else(|| anyhow::anyhow!("no group {GROUP}"))?
    } else {
        rqmail_privs::current().gid
    };

    let (to_lspawn_r, to_lspawn_w) = pipe()?;
    let (from_lspawn_r, from_lspawn_w) = pipe()?;
    let (to_rspawn_r, to_rspawn_w) = pipe()?;
    let (from_rspawn_r, from_rspawn_w) = pipe()?;
    let (to_clean_r, to_clean_w) = pipe()?;
    let (from_clean_r, from_clean_w) = pipe()?;
    // lspawn stays root (it must become each recipient) with the queue group.
    start_helper(
        &home,
        "rqmail-lspawn",
        &[default_delivery],
        Some(Ids {
            uid: 0,
            gid: lspawn_gid,
        }),
        to_lspawn_r,
        from_lspawn_w,
    )?;
    start_helper(
        &home,
        "rqmail-rspawn",
        &[],
        Some(remote_ids),
        to_rspawn_r,
        from_rspawn_w,
    )?;
    start_helper(
        &home,
        "rqmail-clean",
        &[],
        Some(queue_ids),
        to_clean_r,
        from_clean_w,
    )?;

    // Park send's ends high, so that moving them to 3..8 cannot overwrite one of them.
    let ends = [
        to_lspawn_w,
        from_lspawn_r,
        to_rspawn_w,
        from_rspawn_r,
        to_clean_w,
        from_clean_r,
    ];
    let mut parked = Vec::with_capacity(ends.len());
    for end in ends {
        let fd = fcntl(&end, FcntlArg::F_DUPFD_CLOEXEC(PARKING_FD))?;
        // SAFETY: fcntl just returned this new descriptor; nothing else owns it.
        parked.push(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    for (i, fd) in parked.iter().enumerate() {
        let target = FIRST_SEND_FD + i as i32;
        // SAFETY: fds 3..8 hold nothing this process still uses (every earlier descriptor
        // was closed or parked above 64); dup2 gives them to the exec'd scheduler without
        // close-on-exec, and they must stay open, so the new OwnedFd is forgotten.
        let moved = unsafe { nix::unistd::dup2_raw(fd, target) }?;
        debug_assert_eq!(moved.as_raw_fd(), target);
        std::mem::forget(moved);
    }
    drop(parked);
    rqmail_privs::become_ids(send_ids, &[send_ids.gid])?;
    Ok(Command::new(home.join("bin/rqmail-send"))
        .current_dir(&home)
        .stdin(Stdio::null())
        .exec())
}

fn main() -> ExitCode {
    match run() {
        Ok(exec_error) => rqmail_log::line(&format!(
            "alert: cannot start: unable to run rqmail-send: {exec_error}"
        )),
        Err(e) => rqmail_log::line(&format!("alert: cannot start: {e}")),
    }
    ExitCode::from(EXIT_TEMPORARY)
}
