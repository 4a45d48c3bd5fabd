//! The checkpassword interface from the caller's side: start the program with
//! `user\0password\0...` on its fd 3 (smtpd's AUTH, rqmail-login's root half), and wipe the
//! buffers that held a password. Kept tiny: rqmail-login links it into code run as root.
#![deny(missing_docs)]
// One unsafe block, allowed where it is: the pre_exec that puts the pipe on fd 3.
#![deny(unsafe_code)]

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};

/// True if `path` is an ELF binary or a `#!` script. exec falls back to running any other
/// file through /bin/sh, and an empty or truncated checkpassword run that way exits 0:
/// every password would be accepted.
pub fn is_program(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| magic == *b"\x7fELF" || magic.starts_with(b"#!"))
}

/// Starts `command` (set up by the caller: program, arguments, stdin, stdout, environment)
/// with the read end of a pipe as its fd 3, writes `data` into the pipe and closes it.
/// `command` is dropped once the child runs, so descriptors given to it as stdin or stdout
/// belong to the child alone. A child that exits without reading is not an error here:
/// its exit status is its answer.
pub fn spawn_with_fd3(mut command: Command, data: &[u8]) -> io::Result<Child> {
    let (read, mut write) = io::pipe()?;
    let raw = read.as_raw_fd();
    // SAFETY: between fork and exec the child only calls dup2 or fcntl, which are
    // async-signal-safe, on descriptors it owns; it allocates nothing and takes no locks.
    #[allow(unsafe_code)]
    unsafe {
        command.pre_exec(move || {
            // dup2 onto itself would leave close-on-exec set: clear it instead.
            let r = if raw == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(raw, 3)
            };
            if r < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command.spawn();
    drop(command);
    drop(read);
    let child = child?;
    let _ = write.write_all(data);
    drop(write);
    Ok(child)
}

/// Overwrites a buffer that held a password; `black_box` keeps the writes from being
/// optimised away as dead stores.
pub fn wipe(buf: &mut [u8]) {
    buf.fill(0);
    std::hint::black_box(buf);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Stdio;

    #[test]
    fn the_child_reads_the_data_on_fd_3() {
        let mut command = Command::new("/bin/sh");
        command
            .args(["-c", "cat <&3"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        let child = spawn_with_fd3(command, b"joe\0secret\0\0").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, b"joe\0secret\0\0");
    }

    #[test]
    fn wipe_zeroes_the_buffer() {
        let mut buf = *b"secret";
        wipe(&mut buf);
        assert_eq!(buf, [0; 6]);
    }
}
