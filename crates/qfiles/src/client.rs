//! The injectors' side of the rqmail-queue interface: run rqmail-queue (or `$QMAILQUEUE`)
//! with the message on its fd 0 and the envelope on its fd 1, and read the exit code.

use std::io::{self, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

/// Why a message was not queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueFailure {
    /// Permanent (the queue refuses the message) or temporary (try again later).
    pub permanent: bool,
    /// Explanation with an enhanced status code, as qmail words its errors.
    pub text: String,
}

impl std::fmt::Display for QueueFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for QueueFailure {}

fn temporary(text: &str) -> QueueFailure {
    QueueFailure {
        permanent: false,
        text: text.to_string(),
    }
}

/// The meaning of each rqmail-queue exit code (qmail-queue's table).
pub fn explain_exit(code: i32) -> Option<QueueFailure> {
    let (permanent, text) = match code {
        0 => return None,
        11 => (true, "envelope address too long for the queue (#5.1.3)"),
        31 => (
            true,
            "mail server permanently rejected the message (#5.3.0)",
        ),
        12..=40 => (true, "message refused by the queue (#5.3.0)"),
        51 => (false, "queue is out of memory (#4.3.0)"),
        52 => (false, "timeout in the queue (#4.3.0)"),
        53 => (
            false,
            "queue write error, perhaps the disk is full (#4.3.0)",
        ),
        54 => (false, "unable to read the message or envelope (#4.3.0)"),
        55 => (false, "queue unable to read a configuration file (#4.3.0)"),
        56 => (
            false,
            "queue had a problem making a network connection (#4.3.0)",
        ),
        61 => (false, "queue has trouble with its home directory (#4.3.0)"),
        62 => (false, "queue has trouble with the queue directory (#4.3.0)"),
        63 => (false, "queue has trouble with queue/pid (#4.3.0)"),
        64 => (false, "queue has trouble with queue/mess (#4.3.0)"),
        65 => (false, "queue has trouble with queue/intd (#4.3.0)"),
        66 => (false, "queue has trouble with queue/todo (#4.3.0)"),
        71 => (
            false,
            "mail server temporarily rejected the message (#4.3.0)",
        ),
        72 => (false, "connection to the mail server timed out (#4.4.1)"),
        73 => (false, "connection to the mail server rejected (#4.4.1)"),
        74 => (false, "communication with the mail server failed (#4.4.2)"),
        81 => (false, "internal bug in the queue (#4.3.0)"),
        91 => (false, "envelope format error (#4.3.0)"),
        120 => (false, "unable to run the queue program (#4.3.0)"),
        _ => (false, "temporary queue failure (#4.3.0)"),
    };
    Some(QueueFailure {
        permanent,
        text: text.to_string(),
    })
}

/// One message on its way into the queue. Write the message to [`Submission::body`],
/// then call [`Submission::finish`] with the envelope.
pub struct Submission {
    child: Child,
    body: Option<ChildStdin>,
    envelope: Option<std::fs::File>,
    write_failed: bool,
}

impl Submission {
    /// Starts rqmail-queue of `home` (or the program named by `$QMAILQUEUE`, which admins
    /// use to put a filter in front of the queue).
    pub fn start(home: &Path) -> io::Result<Submission> {
        match std::env::var_os("QMAILQUEUE") {
            Some(p) if !p.is_empty() => Self::start_program(Path::new(&p), home),
            // rqmail-queue finds its home and changes into it by itself: started without a
            // working directory to set, the child is spawned without a copy of this
            // process (std's posix_spawn path), which costs less than a fork.
            _ => Self::spawn(Command::new(home.join("bin/rqmail-queue"))),
        }
    }

    /// Starts a given queue program with the working directory `home`.
    pub fn start_program(program: &Path, home: &Path) -> io::Result<Submission> {
        let mut command = Command::new(program);
        command.current_dir(home);
        Self::spawn(command)
    }

    fn spawn(mut command: Command) -> io::Result<Submission> {
        let (env_read, env_write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
        let child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::from(env_read))
            .spawn()?;
        let mut child = child;
        Ok(Submission {
            body: child.stdin.take(),
            child,
            envelope: Some(std::fs::File::from(env_write)),
            write_failed: false,
        })
    }

    /// The queue program's pid: the "qp" shown to clients and in logs.
    pub fn qp(&self) -> u32 {
        self.child.id()
    }

    /// Writes message bytes (LF line ends). A failed write is remembered and reported by
    /// `finish` as a temporary failure.
    pub fn write_body(&mut self, data: &[u8]) {
        if self.write_failed {
            return;
        }
        if let Some(body) = self.body.as_mut()
            && body.write_all(data).is_err()
        {
            self.write_failed = true;
        }
    }

    /// Closes the message, writes the envelope, waits for the queue program and returns
    /// its qp on success.
    pub fn finish(mut self, sender: &[u8], recipients: &[&[u8]]) -> Result<u32, QueueFailure> {
        drop(self.body.take());
        let mut env = Vec::with_capacity(sender.len() + 3 + recipients.len() * 32);
        env.push(b'F');
        env.extend_from_slice(sender);
        env.push(0);
        for r in recipients {
            env.push(b'T');
            env.extend_from_slice(r);
            env.push(0);
        }
        env.push(0);
        if let Some(mut e) = self.envelope.take()
            && e.write_all(&env).is_err()
        {
            self.write_failed = true;
        }
        let qp = self.qp();
        let status = self
            .child
            .wait()
            .map_err(|_| temporary("unable to wait for the queue program (#4.3.0)"))?;
        use std::os::unix::process::ExitStatusExt;
        if status.signal().is_some() {
            return Err(temporary("queue program crashed (#4.3.0)"));
        }
        match status.code().and_then(explain_exit) {
            Some(failure) => Err(failure),
            None if self.write_failed => {
                Err(temporary("unable to write to the queue program (#4.3.0)"))
            }
            None => Ok(qp),
        }
    }
}

/// Writing to a submission writes the message body. Writes never fail here: a failed one
/// is remembered and reported by `finish` as a temporary failure.
impl Write for Submission {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.write_body(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Submission {
    fn drop(&mut self) {
        // An abandoned submission: close both pipes so the queue program sees EOF in the
        // envelope and exits without queueing anything; reap it.
        if self.envelope.is_some() || self.body.is_some() {
            self.body.take();
            self.envelope.take();
            let _ = self.child.wait();
        }
    }
}

/// Queues a whole message held in memory.
pub fn queue_message(
    home: &Path,
    message: &[u8],
    sender: &[u8],
    recipients: &[&[u8]],
) -> Result<u32, QueueFailure> {
    let mut sub = Submission::start(home)
        .map_err(|_| temporary("unable to run the queue program (#4.3.0)"))?;
    sub.write_body(message);
    sub.finish(sender, recipients)
}
