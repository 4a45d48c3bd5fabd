//! Descriptors a root program inherited from whoever started it: marked close-on-exec at
//! start, so that none of them reaches a program it runs for a less trusted account.
#![allow(unsafe_code)]

use std::io;

/// Marks every open descriptor numbered `first` or above close-on-exec; the program itself
/// can still use them (systemd's listening sockets, for one), but nothing it execs sees
/// them. Call it at the top of `main`, before any thread exists: a descriptor opened by
/// another thread meanwhile would be missed by the `/proc/self/fd` fallback.
///
/// A `|program` delivery run by rqmail-lspawn would otherwise read whatever root had open
/// when rqmail-start was started (a root-only file on fd 9, say) through `<&9`.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: close_range(2) with CLOSE_RANGE_CLOEXEC takes plain integers, touches only
    // this process's descriptor table and closes nothing, so no Rust owner of a descriptor
    // is invalidated. Called through syscall(2) so that it needs no particular libc.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == 0 {
        return Ok(());
    }
    // ENOSYS (before Linux 5.11) or EINVAL (no CLOSE_RANGE_CLOEXEC, before 5.11 too).
    walk_proc_self_fd(first)
}

/// The fallback: each descriptor listed in `/proc/self/fd` from `first` on, one fcntl each.
fn walk_proc_self_fd(first: u32) -> io::Result<()> {
    let mut fds = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let name = entry?.file_name();
        if let Some(fd) = name.to_str().and_then(|n| n.parse::<i32>().ok())
            && u32::try_from(fd).is_ok_and(|fd| fd >= first)
        {
            fds.push(fd);
        }
    }
    // The directory's own descriptor was listed too and is closed by now: EBADF on it
    // (or on any other number no longer open) is not an error.
    for fd in fds {
        // SAFETY: fcntl(F_SETFD) on an integer only sets a flag in the descriptor table; on
        // a number that is not open it fails with EBADF. (nix's fcntl wants a BorrowedFd,
        // which would promise the descriptor is open and owned, which is what is unknown.)
        let r = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        if r == -1 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EBADF) {
                return Err(e);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn cloexec(fd: i32) -> bool {
        // SAFETY: F_GETFD only reads a flag of an open descriptor the test owns.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        flags != -1 && flags & libc::FD_CLOEXEC != 0
    }

    /// A descriptor without close-on-exec, as an inherited one would be.
    fn inheritable() -> std::os::fd::OwnedFd {
        let (read, _write) = nix::unistd::pipe().unwrap();
        // SAFETY: clearing FD_CLOEXEC on a descriptor this test owns.
        assert_eq!(
            unsafe { libc::fcntl(read.as_raw_fd(), libc::F_SETFD, 0) },
            0
        );
        read
    }

    // One test, not two: each marks every descriptor above its own, the other's included.
    #[test]
    fn marks_descriptors_from_first_on_and_leaves_the_ones_below() {
        let fd = inheritable();
        assert!(!cloexec(fd.as_raw_fd()));
        cloexec_from(fd.as_raw_fd() as u32 + 1).unwrap();
        assert!(!cloexec(fd.as_raw_fd()), "below first: left alone");
        cloexec_from(fd.as_raw_fd() as u32).unwrap();
        assert!(cloexec(fd.as_raw_fd()));

        let fd = inheritable();
        walk_proc_self_fd(fd.as_raw_fd() as u32 + 1).unwrap();
        assert!(!cloexec(fd.as_raw_fd()), "below first: left alone");
        walk_proc_self_fd(fd.as_raw_fd() as u32).unwrap();
        assert!(cloexec(fd.as_raw_fd()), "the /proc fallback marks them too");
    }
}
