//! Local delivery as the recipient, qmail-local's behaviour exactly: the loop check, the
//! search for `.qmail-EXT` / `-default`, and every dot-qmail line type.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod lines;

pub use lines::{Instruction, parse_instructions};

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// qmail-local's exit code for success.
pub const EXIT_OK: u8 = 0;
use rqmail_outcome::Outcome;
/// qmail-local's exit codes for a permanent failure (bounce) and a temporary failure
/// (retry later).
pub use rqmail_outcome::{EXIT_PERMANENT, EXIT_TEMPORARY};

/// Mode bits forbidden on the home directory and `.qmail` files (qmail's `conf-patrn`).
const FORBIDDEN_MODE: u32 = 0o002;

/// One local delivery: qmail-local's arguments.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The account name.
    pub user: Vec<u8>,
    /// The home directory whose `.qmail` files control the address (absolute).
    pub homedir: PathBuf,
    /// The local part of the recipient, original case.
    pub local: Vec<u8>,
    /// `""` or `-`: joins `.qmail` and the extension.
    pub dash: Vec<u8>,
    /// The extension, original case.
    pub ext: Vec<u8>,
    /// The domain of the recipient.
    pub domain: Vec<u8>,
    /// The envelope sender (empty for bounces).
    pub sender: Vec<u8>,
    /// Instructions used when there is no `.qmail` or it is empty, e.g. `./Maildir/`.
    pub default_delivery: Vec<u8>,
    /// The rqmail home, whose queue takes forwarded messages.
    pub rqmail_home: PathBuf,
}

/// A failed delivery: permanent (bounce) or temporary (retry), with qmail-style text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Bounce rather than retry.
    pub permanent: bool,
    /// The explanation, ending with an enhanced status code.
    pub text: String,
}

fn temporary(text: impl Into<String>) -> Failure {
    Failure {
        permanent: false,
        text: text.into(),
    }
}

fn permanent(text: impl Into<String>) -> Failure {
    Failure {
        permanent: true,
        text: text.into(),
    }
}

/// LF inside a header line value would end the line: qmail writes `_` instead.
fn no_newlines(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .map(|&b| if b == b'\n' { b'_' } else { b })
        .collect()
}

impl Delivery {
    /// `LOCAL@DOMAIN`.
    pub fn recipient(&self) -> Vec<u8> {
        let mut r = self.local.clone();
        r.push(b'@');
        r.extend_from_slice(&self.domain);
        r
    }

    /// `Delivered-To: LOCAL@DOMAIN` LF.
    pub fn dtline(&self) -> Vec<u8> {
        let mut line = b"Delivered-To: ".to_vec();
        line.extend(no_newlines(&self.recipient()));
        line.push(b'\n');
        line
    }

    /// `Return-Path: <SENDER>` LF, the local part quoted where it is not a dot-atom.
    pub fn rpline(&self) -> Vec<u8> {
        let mut line = b"Return-Path: <".to_vec();
        line.extend(no_newlines(&rqmail_address::quote(&self.sender)));
        line.extend_from_slice(b">\n");
        line
    }

    /// The mbox `From ` line: sender (blanks as `-`, `MAILER-DAEMON` when empty) and date.
    pub fn ufline(&self, now: i64) -> Vec<u8> {
        let mut line = b"From ".to_vec();
        if self.sender.is_empty() {
            line.extend_from_slice(b"MAILER-DAEMON");
        } else {
            line.extend(self.sender.iter().map(|&b| match b {
                b' ' | b'\t' | b'\n' => b'-',
                _ => b,
            }));
        }
        line.push(b' ');
        line.extend_from_slice(rqmail_date::Utc::from_unix(now).mbox().as_bytes());
        line.push(b'\n');
        line
    }

    /// EXT with ASCII uppercase lowered and `.` as `:`, as dot-qmail file names use it.
    fn safe_ext(&self) -> Vec<u8> {
        self.ext
            .iter()
            .map(|&b| {
                if b == b'.' {
                    b':'
                } else {
                    b.to_ascii_lowercase()
                }
            })
            .collect()
    }
}

/// The `.qmail` file chosen for a delivery, and what `default` stood for.
#[derive(Debug, PartialEq, Eq)]
pub struct DotQmail {
    /// The file's name (relative to the home directory).
    pub name: Vec<u8>,
    /// The part of the original extension that `default` matched, when it did.
    pub default: Option<Vec<u8>>,
}

/// How a candidate `.qmail` name fared.
enum Probe {
    Found(File),
    Missing,
}

fn probe(name: &[u8]) -> Result<Probe, Failure> {
    match File::open(OsStr::from_bytes(name)) {
        Ok(file) => match file.metadata() {
            Ok(m) if m.file_type().is_file() => Ok(Probe::Found(file)),
            Ok(_) => Ok(Probe::Missing),
            Err(_) => Err(temporary("Unable to stat a .qmail file. (#4.3.0)")),
        },
        Err(e) => match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => Ok(Probe::Missing),
            io::ErrorKind::PermissionDenied => Err(temporary(
                "Unable to open a .qmail file: permission denied. (#4.3.0)",
            )),
            _ if matches!(e.raw_os_error(), Some(code) if is_temporary_errno(code)) => Err(
                temporary(format!("Unable to open a .qmail file: {e}. (#4.3.0)")),
            ),
            _ => Ok(Probe::Missing),
        },
    }
}

fn is_temporary_errno(code: i32) -> bool {
    // The errors qmail's error_temp() lists as temporary.
    [
        4,   // EINTR
        5,   // EIO
        11,  // EAGAIN
        12,  // ENOMEM
        23,  // ENFILE
        24,  // EMFILE
        110, // ETIMEDOUT
        116, // ESTALE
    ]
    .contains(&code)
}

/// The `.qmail` names that can control `.qmail` + dash + ext, in the order qmail-local tries
/// them (local-delivery.md §5), each with what `default` would stand for.
fn candidates(dash: &[u8], ext: &[u8]) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let safe: Vec<u8> = ext
        .iter()
        .map(|&b| {
            if b == b'.' {
                b':'
            } else {
                b.to_ascii_lowercase()
            }
        })
        .collect();
    let mut base = b".qmail".to_vec();
    base.extend_from_slice(dash);
    let mut exact = base.clone();
    exact.extend_from_slice(&safe);
    let exact_default = exact
        .ends_with(b"default")
        .then(|| ext[ext.len().saturating_sub(7)..].to_vec());
    let mut out = vec![(exact, exact_default)];
    for i in (0..=safe.len()).rev() {
        if i != 0 && safe[i - 1] != b'-' {
            continue;
        }
        let mut name = base.clone();
        name.extend_from_slice(&safe[..i]);
        name.extend_from_slice(b"default");
        out.push((name, Some(ext.get(i..).unwrap_or_default().to_vec())));
    }
    out
}

/// Finds the controlling `.qmail` file in the current directory (local-delivery.md §5).
fn find_dot_qmail(d: &Delivery) -> Result<Option<(DotQmail, File)>, Failure> {
    for (name, default) in candidates(&d.dash, &d.ext) {
        if let Probe::Found(file) = probe(&name)? {
            return Ok(Some((DotQmail { name, default }, file)));
        }
    }
    Ok(None)
}

/// Whether an address has somewhere to go, judged as the recipient's delivery would:
/// the user's own address always does (the default delivery); an extension needs a
/// `.qmail-EXT` or `-default` file. `None` when it cannot be told (an unreadable home),
/// so the caller accepts and leaves the decision to the delivery. Used by smtpd at RCPT.
pub fn mailbox_exists(homedir: &Path, dash: &[u8], ext: &[u8]) -> Option<bool> {
    if dash.is_empty() {
        return Some(true);
    }
    for (name, _) in candidates(dash, ext) {
        match std::fs::metadata(homedir.join(OsStr::from_bytes(&name))) {
            Ok(m) if m.is_file() => return Some(true),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(_) => return None,
        }
    }
    Some(false)
}

/// NEWSENDER: the sender for forwards, following `-owner` files and VERP requests.
fn new_sender(d: &Delivery) -> Result<Vec<u8>, Failure> {
    if d.sender.is_empty() || d.sender == b"#@[]" {
        return Ok(d.sender.clone());
    }
    let mut owner = b".qmail".to_vec();
    owner.extend_from_slice(&d.dash);
    owner.extend_from_slice(&d.safe_ext());
    owner.extend_from_slice(b"-owner");
    let exists = |name: &[u8]| match std::fs::metadata(OsStr::from_bytes(name)) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(_) => Err(temporary("Unable to stat a .qmail-owner file. (#4.3.0)")),
    };
    if !exists(&owner)? {
        return Ok(d.sender.clone());
    }
    let mut verp = owner.clone();
    verp.extend_from_slice(b"-default");
    let mut sender = d.local.clone();
    if exists(&verp)? {
        sender.extend_from_slice(b"-owner-@");
        sender.extend_from_slice(&d.domain);
        sender.extend_from_slice(b"-@[]");
    } else {
        sender.extend_from_slice(b"-owner@");
        sender.extend_from_slice(&d.domain);
    }
    Ok(sender)
}

/// The message header lines, each with its LF, up to the blank line.
fn header_has_line(message: &mut File, wanted: &[u8]) -> Result<bool, Failure> {
    let read_error = || temporary("Unable to read message. (#4.3.0)");
    message.seek(SeekFrom::Start(0)).map_err(|_| read_error())?;
    let mut reader = BufReader::new(&*message);
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        // Header lines are bounded only by the message; cap each read to stay in memory.
        let n = (&mut reader)
            .take(64 * 1024)
            .read_until(b'\n', &mut line)
            .map_err(|_| read_error())?;
        if n == 0 || line == b"\n" {
            return Ok(false);
        }
        if line == wanted {
            return Ok(true);
        }
    }
}

fn rewind(message: &mut File) -> Result<(), Failure> {
    message
        .seek(SeekFrom::Start(0))
        .map(|_| ())
        .map_err(|_| temporary("Unable to rewind message. (#4.3.0)"))
}

/// Counts of what a delivery did, for `did F+W+P`.
#[derive(Default)]
struct Tally {
    files: usize,
    forwards: usize,
    programs: usize,
}

/// Delivers the message on `message` (a seekable file) as qmail-local does, writing the
/// report text to `out`, and returns qmail-local's exit code: 0, 100 or 111.
/// The process must already run as the recipient; this changes its working directory.
pub fn deliver(d: &Delivery, message: &mut File, out: &mut dyn Write) -> u8 {
    match deliver_for_spawn(d, message, out) {
        EXIT_INTERRUPTED => EXIT_TEMPORARY,
        code => code,
    }
}

/// A program of the delivery was killed from outside (SIGKILL, SIGTERM, SIGINT, SIGHUP):
/// temporary, and nothing was wrong with the message, so rqmail-lspawn reports it as an
/// interrupted delivery, tried again soon. Only [`deliver_for_spawn`] returns it.
pub const EXIT_INTERRUPTED: u8 = 113;
/// The text of that failure, which [`deliver_for_spawn`] recognises it by.
const PROGRAM_KILLED: &str = "Uh-oh: program was killed; trying again soon. (#4.3.0)";

/// [`deliver`] for rqmail-lspawn's forked child, whose exit code stays inside rqmail:
/// [`EXIT_INTERRUPTED`] where a program was killed from outside, qmail's codes otherwise.
pub fn deliver_for_spawn(d: &Delivery, message: &mut File, out: &mut dyn Write) -> u8 {
    match run(d, message, out) {
        Ok(()) => EXIT_OK,
        Err(failure) => {
            if !failure.text.is_empty() {
                let _ = out.write_all(failure.text.as_bytes());
                let _ = out.write_all(b"\n");
            }
            let _ = out.flush();
            if failure.permanent {
                EXIT_PERMANENT
            } else if failure.text == PROGRAM_KILLED {
                EXIT_INTERRUPTED
            } else {
                EXIT_TEMPORARY
            }
        }
    }
}

/// Prints what a delivery would do, without delivering or reading the message (`-n`).
pub fn describe(d: &Delivery, out: &mut dyn Write) -> u8 {
    let result = (|| -> Result<(), Failure> {
        std::env::set_current_dir(&d.homedir)
            .map_err(|_| temporary("Unable to switch to home directory. (#4.3.0)"))?;
        let (text, _, _) = instructions_text(d)?;
        for inst in parse_instructions(&text).map_err(temporary)? {
            let line = match inst {
                Instruction::Program(c) => [b"program ".as_slice(), &c].concat(),
                Instruction::Forward(a) => [b"forward ".as_slice(), &a].concat(),
                Instruction::Mbox(p) => [b"mbox ".as_slice(), &p].concat(),
                Instruction::Maildir(p) => [b"maildir ".as_slice(), &p].concat(),
                Instruction::ForwardOnly => continue,
            };
            let _ = out.write_all(&line);
            let _ = out.write_all(b"\n");
        }
        Ok(())
    })();
    match result {
        Ok(()) => EXIT_OK,
        Err(f) => {
            let _ = writeln!(out, "{}", f.text);
            if f.permanent {
                EXIT_PERMANENT
            } else {
                EXIT_TEMPORARY
            }
        }
    }
}

/// The instruction text in force, the `.qmail` file it came from, and whether that file
/// has the x bit (forward-only mode, as mailing lists use).
fn instructions_text(d: &Delivery) -> Result<(Vec<u8>, Option<DotQmail>, bool), Failure> {
    match find_dot_qmail(d)? {
        None if !d.dash.is_empty() => {
            Err(permanent("Sorry, no mailbox here by that name. (#5.1.1)"))
        }
        None => Ok((d.default_delivery.clone(), None, false)),
        Some((found, mut file)) => {
            let meta = file
                .metadata()
                .map_err(|_| temporary("Unable to stat a .qmail file. (#4.3.0)"))?;
            if meta.permissions().mode() & FORBIDDEN_MODE != 0 {
                return Err(temporary("Uh-oh: .qmail file is writable. (#4.7.0)"));
            }
            let mut text = Vec::new();
            file.read_to_end(&mut text)
                .map_err(|_| temporary("Unable to read a .qmail file. (#4.3.0)"))?;
            if text.is_empty() {
                // An empty file means the default delivery, with no forward-only mode.
                return Ok((d.default_delivery.clone(), Some(found), false));
            }
            let forward_only = meta.mode() & 0o100 != 0;
            Ok((text, Some(found), forward_only))
        }
    }
}

fn run(d: &Delivery, message: &mut File, out: &mut dyn Write) -> Result<(), Failure> {
    std::env::set_current_dir(&d.homedir)
        .map_err(|_| temporary("Unable to switch to home directory. (#4.3.0)"))?;
    let home =
        std::fs::metadata(".").map_err(|_| temporary("Unable to stat home directory. (#4.3.0)"))?;
    if home.permissions().mode() & FORBIDDEN_MODE != 0 {
        return Err(temporary("Uh-oh: home directory is writable. (#4.7.0)"));
    }
    if home.permissions().mode() & 0o1000 != 0 {
        return Err(temporary(
            "Home directory is sticky: user is editing his .qmail file. (#4.2.1)",
        ));
    }
    let dtline = d.dtline();
    if header_has_line(message, &dtline)? {
        return Err(permanent(
            "This message is looping: it already has my Delivered-To line. (#5.4.6)",
        ));
    }
    let (text, found, mut forward_only) = instructions_text(d)?;
    let instructions = parse_instructions(&text).map_err(temporary)?;
    let newsender = new_sender(d)?;
    let rpline = d.rpline();
    let mut prefix = rpline.clone();
    prefix.extend_from_slice(&dtline);

    let mut tally = Tally::default();
    let mut forwards: Vec<Vec<u8>> = Vec::new();
    for inst in instructions {
        match inst {
            Instruction::ForwardOnly => forward_only = true,
            Instruction::Forward(address) => {
                tally.forwards += 1;
                forwards.push(address);
            }
            Instruction::Mbox(path) | Instruction::Maildir(path) if forward_only => {
                let _ = path;
                return Err(temporary(
                    "Uh-oh: .qmail has file delivery but has x bit set. (#4.7.0)",
                ));
            }
            Instruction::Program(_) if forward_only => {
                return Err(temporary(
                    "Uh-oh: .qmail has prog delivery but has x bit set. (#4.7.0)",
                ));
            }
            Instruction::Maildir(path) => {
                rewind(message)?;
                rqmail_mailbox::deliver_maildir(
                    Path::new(OsStr::from_bytes(&path)),
                    &prefix,
                    message,
                )
                .map_err(|e| temporary(e.text))?;
                tally.files += 1;
            }
            Instruction::Mbox(path) => {
                rewind(message)?;
                let ufline = d.ufline(rqmail_date::now());
                rqmail_mailbox::deliver_mbox(
                    Path::new(OsStr::from_bytes(&path)),
                    &ufline,
                    &prefix,
                    message,
                )
                .map_err(|e| temporary(e.text))?;
                tally.files += 1;
            }
            Instruction::Program(command) => {
                tally.programs += 1;
                let _ = out.flush();
                let env = ProgramEnv {
                    d,
                    newsender: &newsender,
                    default: found.as_ref().and_then(|f| f.default.as_deref()),
                    dtline: &dtline,
                    rpline: &rpline,
                };
                if run_program(&command, &env, message)? == ProgramResult::Stop {
                    break;
                }
            }
        }
    }
    let mut report = format!(
        "did {}+{}+{}\n",
        tally.files, tally.forwards, tally.programs
    );
    if !forwards.is_empty() {
        let qp = forward(d, &dtline, &newsender, &forwards, message)?;
        report.push_str(&format!("qp {qp}\n"));
    }
    let _ = out.write_all(report.as_bytes());
    let _ = out.flush();
    Ok(())
}

/// Queues DTLINE + the message to all forward addresses at once.
fn forward(
    d: &Delivery,
    dtline: &[u8],
    sender: &[u8],
    recipients: &[Vec<u8>],
    message: &mut File,
) -> Result<u32, Failure> {
    rewind(message)?;
    let mut sub = rqmail_qfiles::client::Submission::start(&d.rqmail_home)
        .map_err(|_| temporary("Unable to run the queue to forward. (#4.3.0)"))?;
    sub.write_body(dtline);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match message.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => sub.write_body(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(temporary("Unable to read message. (#4.3.0)")),
        }
    }
    let list: Vec<&[u8]> = recipients.iter().map(Vec::as_slice).collect();
    sub.finish(sender, &list).map_err(|f| Failure {
        permanent: f.permanent,
        text: format!("Unable to forward message: {} ", f.text),
    })
}

struct ProgramEnv<'a> {
    d: &'a Delivery,
    newsender: &'a [u8],
    default: Option<&'a [u8]>,
    dtline: &'a [u8],
    rpline: &'a [u8],
}

#[derive(PartialEq, Eq)]
enum ProgramResult {
    Continue,
    Stop,
}

/// The part of `s` after its `n`-th `-` (empty if there are fewer).
fn after_dashes(s: &[u8], n: usize) -> &[u8] {
    let mut rest = s;
    for _ in 0..n {
        match rest.iter().position(|&b| b == b'-') {
            Some(i) => rest = &rest[i + 1..],
            None => return b"",
        }
    }
    rest
}

/// HOST with its last `n` dot-separated labels removed (all of HOST if it has no dot).
fn host_prefix(host: &[u8], n: usize) -> &[u8] {
    let mut end = host.len();
    for _ in 0..n {
        match host[..end].iter().rposition(|&b| b == b'.') {
            Some(i) => end = i,
            None => return &host[..end],
        }
    }
    &host[..end]
}

/// The PATH for programs in `.qmail` lines: the rqmail home's `bin/` first, so that
/// qmail's lines (`|preline procmail`, `|forward addr`) find rqmail's helpers by their
/// qmail names, as qmail's rc puts `/var/qmail/bin` first; then the PATH rqmail-start was
/// given, or `/usr/local/bin:/usr/bin:/bin` if it had none.
fn program_path(rqmail_home: &Path, inherited: Option<std::ffi::OsString>) -> std::ffi::OsString {
    let mut path = rqmail_home.join("bin").into_os_string();
    path.push(":");
    match inherited {
        Some(p) if !p.is_empty() => path.push(p),
        _ => path.push("/usr/local/bin:/usr/bin:/bin"),
    }
    path
}

fn run_program(
    command: &[u8],
    env: &ProgramEnv,
    message: &mut File,
) -> Result<ProgramResult, Failure> {
    rewind(message)?;
    let d = env.d;
    let stdin = message
        .try_clone()
        .map_err(|_| temporary("Unable to duplicate message descriptor. (#4.3.0)"))?;
    let os = |b: &[u8]| OsStr::from_bytes(b).to_os_string();
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(os(command))
        .current_dir(&d.homedir)
        .stdin(Stdio::from(stdin))
        .env("USER", os(&d.user))
        .env("HOME", &d.homedir)
        .env("LOCAL", os(&d.local))
        .env("HOST", os(&d.domain))
        .env("RECIPIENT", os(&d.recipient()))
        .env("SENDER", os(&d.sender))
        .env("NEWSENDER", os(env.newsender))
        .env("EXT", os(&d.ext))
        .env("EXT2", os(after_dashes(&d.ext, 1)))
        .env("EXT3", os(after_dashes(&d.ext, 2)))
        .env("EXT4", os(after_dashes(&d.ext, 3)))
        .env("HOST2", os(host_prefix(&d.domain, 1)))
        .env("HOST3", os(host_prefix(&d.domain, 2)))
        .env("HOST4", os(host_prefix(&d.domain, 3)))
        .env("DTLINE", os(env.dtline))
        .env("RPLINE", os(env.rpline))
        .env("UFLINE", os(&d.ufline(rqmail_date::now())))
        .env(
            "PATH",
            program_path(&d.rqmail_home, std::env::var_os("PATH")),
        );
    match env.default {
        Some(v) => cmd.env("DEFAULT", os(v)),
        None => cmd.env_remove("DEFAULT"),
    };
    let status = cmd
        .status()
        .map_err(|_| temporary("Unable to run /bin/sh. (#4.3.0)"))?;
    match status.signal() {
        // SIGHUP, SIGINT, SIGKILL, SIGTERM: the same numbers on every Unix.
        Some(1 | 2 | 9 | 15) => {
            return Err(temporary(PROGRAM_KILLED));
        }
        Some(_) => return Err(temporary("Uh-oh: program crashed. (#4.3.0)")),
        None => {}
    }
    match status.code() {
        Some(0) => Ok(ProgramResult::Continue),
        Some(99) => Ok(ProgramResult::Stop),
        // The shell's own report of a command it ran being killed (128 + the signal).
        Some(129 | 130 | 137 | 143) => Err(temporary(PROGRAM_KILLED)),
        // qmail-command(8)'s table: 100, 64, 65, 70, 76, 77, 78 and 112 bounce.
        Some(code) if Outcome::from_exit_code(code) == Outcome::Permanent => Err(permanent("")),
        _ => Err(temporary("")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_path_quotes_a_local_part_that_is_not_a_dot_atom() {
        let mut d = Delivery {
            user: b"joe".to_vec(),
            homedir: PathBuf::from("/home/joe"),
            local: b"joe".to_vec(),
            dash: Vec::new(),
            ext: Vec::new(),
            domain: b"example.com".to_vec(),
            sender: b"a b@remote.test".to_vec(),
            default_delivery: b"./Maildir/\n".to_vec(),
            rqmail_home: PathBuf::from("/var/rqmail"),
        };
        assert_eq!(d.rpline(), b"Return-Path: <\"a b\"@remote.test>\n");
        d.sender = b"a\"b\nc@x".to_vec();
        assert_eq!(d.rpline(), b"Return-Path: <\"a\\\"b_c\"@x>\n");
        d.sender = Vec::new();
        assert_eq!(d.rpline(), b"Return-Path: <>\n");
    }

    #[test]
    fn programs_find_the_rqmail_bin_first() {
        let home = Path::new("/var/rqmail");
        assert_eq!(
            program_path(home, Some("/usr/bin:/bin".into())),
            "/var/rqmail/bin:/usr/bin:/bin"
        );
        assert_eq!(
            program_path(home, None),
            "/var/rqmail/bin:/usr/local/bin:/usr/bin:/bin"
        );
        assert_eq!(
            program_path(home, Some("".into())),
            "/var/rqmail/bin:/usr/local/bin:/usr/bin:/bin"
        );
    }

    #[test]
    fn splits_extensions_and_hosts_like_qmail() {
        assert_eq!(after_dashes(b"foo-bar-baz", 1), b"bar-baz");
        assert_eq!(after_dashes(b"foo-bar-baz", 2), b"baz");
        assert_eq!(after_dashes(b"foo-bar-baz", 3), b"");
        assert_eq!(host_prefix(b"a.b.example.com", 1), b"a.b.example");
        assert_eq!(host_prefix(b"a.b.example.com", 2), b"a.b");
        assert_eq!(host_prefix(b"a.b.example.com", 3), b"a");
        assert_eq!(host_prefix(b"localhost", 1), b"localhost");
    }
}
