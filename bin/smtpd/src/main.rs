//! rqmail-smtpd [HOSTNAME CHECKPASSWORD SUBPROGRAM [ARGS...]]: one SMTP session on fds 0
//! and 1, as tcpserver runs it. With the checkpassword arguments, AUTH is offered.
#![forbid(unsafe_code)]

use rqmail_outcome::EXIT_TEMPORARY;
use rqmail_smtpd_session::conn::Conn;
use rqmail_smtpd_session::session::Session;
use rqmail_smtpd_session::settings::Settings;
use std::os::fd::AsFd;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let settings = match Settings::load(&args) {
        Ok(s) => s,
        Err(e) => {
            // A configuration problem is the server's fault: say so and let the client retry.
            print!("421 4.3.0 temporary server configuration problem\r\n");
            rqmail_log::line(&format!("rqmail-smtpd: fatal: {e}"));
            return ExitCode::from(EXIT_TEMPORARY);
        }
    };
    let dup = |fd: std::os::fd::BorrowedFd| fd.try_clone_to_owned().map(std::fs::File::from);
    let (input, output) = match (
        dup(std::io::stdin().as_fd()),
        dup(std::io::stdout().as_fd()),
    ) {
        (Ok(i), Ok(o)) => (i, o),
        _ => return ExitCode::from(EXIT_TEMPORARY),
    };
    let conn = Conn::new(input, output, settings.timeout);
    Session::new(settings, conn).run();
    ExitCode::SUCCESS
}
