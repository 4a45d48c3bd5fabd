//! The services' own command lines, install/daemontools/NAME/run and the ExecStart of
//! install/systemd/NAME.service, run in a scratch home in place of /var/rqmail: the real
//! rqmail-tcpserver, with stand-ins for `id` and for the programs it runs per connection
//! (each says hello and waits for a line), so no accounts are needed and it also runs as
//! a developer. What they make of `control/concurrencyincoming` is what an admin writes
//! there (issue 13: a bare `300` was taken as no value, and the limit stayed 40).

use rqmail_e2e::{target_dir, unit_command, wait_for};
use socket2::{Domain, Socket, Type};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// How long a test waits for something that should happen at once.
const PATIENCE: Duration = Duration::from_secs(10);

/// Each network service and its standard port (the scripts listen on `0 PORT`).
const SERVICES: [(&str, u16); 7] = [
    ("rqmail-smtpd", 25),
    ("rqmail-submission", 587),
    ("rqmail-smtps", 465),
    ("rqmail-pop3d", 110),
    ("rqmail-pop3s", 995),
    ("rqmail-imapd", 143),
    ("rqmail-imaps", 993),
];

/// The programs the scripts run under rqmail-tcpserver, all stood in for by STAND_IN.
const PROGRAMS: [&str; 5] = [
    "rqmail-smtpd",
    "rqmail-login",
    "rqmail-pop3d",
    "rqmail-imapd",
    "rqmail-checkpassword",
];

/// What each connection runs: a greeting, then the session lasts until the client sends
/// a line or closes.
const STAND_IN: &str = "#!/bin/sh\necho hello\nread line\n";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn write_program(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A scratch home laid out as /var/rqmail: `bin/` with the real rqmail-tcpserver and the
/// stand-ins, `control/me` and rules that allow everyone, and `stub/id`, which answers
/// 65534 (nobody) for `id -u rqmaild` and `id -g rqmaild`. Everything is readable by
/// nobody, as the SMTP services switch to that uid when the test runs as root.
struct Home {
    dir: PathBuf,
}

impl Home {
    fn new(name: &str) -> Home {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir =
            std::env::temp_dir().join(format!("rqmail-services-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["bin", "control", "stub", "logs"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let tcpserver = target_dir().join("rqmail-tcpserver");
        assert!(
            tcpserver.exists(),
            "{} is not built: run `cargo build --workspace` first",
            tcpserver.display()
        );
        std::fs::copy(&tcpserver, dir.join("bin/rqmail-tcpserver")).unwrap();
        for program in PROGRAMS {
            write_program(&dir.join("bin").join(program), STAND_IN);
        }
        write_program(&dir.join("stub/id"), "#!/bin/sh\necho 65534\n");
        std::fs::write(dir.join("control/me"), "services-test.example\n").unwrap();
        for rules in ["tcp.smtp", "tcp.pop3", "tcp.imap"] {
            let mut tcprules = Command::new(target_dir().join("rqmail-tcprules"))
                .arg(dir.join(format!("control/{rules}.cdb")))
                .arg(dir.join(format!("control/{rules}.tmp")))
                .stdin(Stdio::piped())
                .spawn()
                .unwrap();
            tcprules
                .stdin
                .take()
                .unwrap()
                .write_all(b":allow\n")
                .unwrap();
            assert!(tcprules.wait().unwrap().success(), "rqmail-tcprules");
        }
        Home { dir }
    }

    /// Sets `control/concurrencyincoming`, or removes it (`None`).
    fn limit(&self, text: Option<&str>) {
        let path = self.dir.join("control/concurrencyincoming");
        match text {
            Some(text) => std::fs::write(path, text).unwrap(),
            None => {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How a service is started.
#[derive(Debug, Clone, Copy)]
enum Form {
    /// install/daemontools/NAME/run, run by sh as supervise would.
    Daemontools,
    /// install/systemd/NAME.service's ExecStart, run as systemd would.
    Systemd,
}

/// A service's rqmail-tcpserver on 127.0.0.1:port, its output in a log file.
struct Service {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Service {
    /// Starts `service` in `form` from `home` and waits for rqmail-tcpserver's first
    /// status line, which says the limit it was given.
    fn start(home: &Home, service: &str, standard_port: u16, form: Form) -> Service {
        let port = free_port();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let log = home.dir.join(format!("logs/{service}-{n}"));
        let prefix = home.dir.to_str().unwrap();
        let mut cmd = match form {
            Form::Daemontools => {
                let run = repo().join("install/daemontools").join(service).join("run");
                let listen = format!(" 0 {standard_port} ");
                let text = std::fs::read_to_string(&run)
                    .unwrap()
                    .replace("/var/rqmail", prefix);
                assert!(text.contains(&listen), "{service}/run listens on {listen}");
                let script = home.dir.join(format!("logs/{service}-{n}.run"));
                std::fs::write(
                    &script,
                    text.replace(&listen, &format!(" 127.0.0.1 {port} ")),
                )
                .unwrap();
                let mut cmd = Command::new("/bin/sh");
                cmd.arg(script).env_clear();
                cmd
            }
            Form::Systemd => {
                let unit = repo()
                    .join("install/systemd")
                    .join(format!("{service}.service"));
                let (command, env) = unit_command(&unit, &home.dir, standard_port, port);
                let mut cmd = Command::new("/bin/sh");
                cmd.arg("-c").arg(format!("exec {command}"));
                cmd.env_clear().envs(env);
                cmd
            }
        };
        // The stand-in `id` comes first; the rest is the unit's PATH (the run scripts
        // set their own for rqmail-tcpserver).
        let path = cmd
            .get_envs()
            .find(|(name, _)| *name == "PATH")
            .and_then(|(_, value)| value)
            .map_or("/usr/bin:/bin".into(), |v| v.to_string_lossy().into_owned());
        let file = std::fs::File::create(&log).unwrap();
        let child = cmd
            .env("PATH", format!("{prefix}/stub:{path}"))
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        let mut service = Service { child, port, log };
        let started = wait_for(PATIENCE, || {
            service.log_text().contains("status: 0/")
                || matches!(service.child.try_wait(), Ok(Some(_)))
        });
        assert!(
            started && service.log_text().contains("status: 0/"),
            "{service:?} {form:?} did not start:\n{}",
            service.log_text()
        );
        service
    }

    fn log_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// The limit rqmail-tcpserver was started with (`-c`), from its first status line.
    fn limit(&self) -> u32 {
        let log = self.log_text();
        let line = log
            .lines()
            .find_map(|l| l.split_once("status: 0/"))
            .unwrap();
        line.1
            .parse()
            .unwrap_or_else(|_| panic!("status line {line:?}"))
    }

    /// Connects from `ip` (any 127/8 address is this host's), so that 10 sessions per
    /// client IP (`-i 10` in every service) do not stand in the way.
    fn connect_from(&self, ip: Ipv4Addr) -> TcpStream {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        socket.bind(&SocketAddr::from((ip, 0)).into()).unwrap();
        socket
            .connect(&SocketAddr::from((Ipv4Addr::LOCALHOST, self.port)).into())
            .unwrap();
        let stream = TcpStream::from(socket);
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream
    }
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "service on port {}", self.port)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // TERM: it stops accepting, and exits once its sessions (closed by now) end.
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        if !wait_for(PATIENCE, || matches!(self.child.try_wait(), Ok(Some(_)))) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A loopback port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Reads one line (up to the read timeout); what came before a timeout or end of file.
fn read_line(stream: &TcpStream) -> Result<String, std::io::Error> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    let mut reader = stream;
    while reader.read(&mut byte)? == 1 {
        line.push(byte[0]);
        if byte[0] == b'\n' {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// Client IP number `i`: 127.0.1.0, 127.0.1.1, ...
fn client_ip(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 1, 0)) + i)
}

#[test]
fn every_service_takes_concurrencyincoming_as_an_admin_writes_it() {
    let home = Home::new("limits");
    let cases = [
        // What every qmail admin writes: `echo 300 > control/concurrencyincoming`.
        (Some("300\n"), 300),
        (Some("300"), 300),
        (Some("250 sessions at once\n# a comment\n"), 250),
        (Some("75\t\n"), 75),
        (Some("\n"), 40),
        (Some("many\n"), 40),
        (None, 40),
    ];
    for (text, limit) in cases {
        home.limit(text);
        for (service, port) in SERVICES {
            for form in [Form::Daemontools, Form::Systemd] {
                let server = Service::start(&home, service, port, form);
                assert_eq!(
                    server.limit(),
                    limit,
                    "{service} {form:?} with concurrencyincoming {text:?}"
                );
            }
        }
    }
}

#[test]
fn a_bare_300_in_concurrencyincoming_lets_300_sessions_run_at_once() {
    let home = Home::new("sessions");
    home.limit(Some("300\n"));
    for form in [Form::Daemontools, Form::Systemd] {
        let server = Service::start(&home, "rqmail-smtpd", 25, form);
        // 300 sessions from 30 client IPs, 10 each (the per-IP limit), one after another
        // so that none waits in the listen backlog: each is greeted.
        let sessions: Vec<TcpStream> = (0..300)
            .map(|i| {
                let stream = server.connect_from(client_ip(i / 10));
                assert_eq!(
                    read_line(&stream).unwrap(),
                    "hello\n",
                    "{form:?}: session {i}"
                );
                stream
            })
            .collect();
        // The 301st, from an IP of its own, waits in the backlog: accepted by the kernel,
        // not served.
        let waiting = server.connect_from(client_ip(300));
        waiting
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let err = read_line(&waiting).unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{form:?}: {err}"
        );
        assert!(server.log_text().contains("status: 300/300\n"));
        // One session ends: the waiting one is served.
        (&sessions[0]).write_all(b"bye\n").unwrap();
        waiting.set_read_timeout(Some(PATIENCE)).unwrap();
        assert_eq!(
            read_line(&waiting).unwrap(),
            "hello\n",
            "{form:?}: the 301st"
        );
        assert!(!server.log_text().contains("status: 301/"));
    }
}
