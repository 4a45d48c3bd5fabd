//! The Received line rqmail-smtpd adds: qmail's layout, RFC 3848's protocol keywords, and
//! the TLS version and authenticated user (never a password).

/// What the Received line says about one transaction.
pub struct Trace<'a> {
    /// TCPREMOTEHOST, if known.
    pub remote_host: Option<&'a str>,
    /// The HELO/EHLO argument.
    pub helo: Option<&'a str>,
    /// The authenticated user, or TCPREMOTEINFO.
    pub remote_info: Option<&'a str>,
    /// TCPREMOTEIP.
    pub remote_ip: &'a str,
    /// TCPLOCALHOST or the host name.
    pub local_host: &'a str,
    /// The client used EHLO.
    pub esmtp: bool,
    /// TLS version and cipher suite, when TLS is active.
    pub tls: Option<&'a str>,
    /// The client authenticated.
    pub authenticated: bool,
    /// The transaction used SMTPUTF8.
    pub utf8: bool,
}

/// qmail's safe set for Received fields (plus `_`, for cipher names); others become `?`.
fn safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " .@%+/=:-[]_".contains(c) {
                c
            } else {
                '?'
            }
        })
        .collect()
}

impl Trace<'_> {
    /// The RFC 3848 / RFC 6531 `with` keyword.
    pub fn protocol(&self) -> String {
        let base = if self.utf8 {
            "UTF8SMTP"
        } else if self.esmtp || self.tls.is_some() || self.authenticated {
            "ESMTP"
        } else {
            "SMTP"
        };
        let mut p = base.to_string();
        if self.tls.is_some() {
            p.push('S');
        }
        if self.authenticated {
            p.push('A');
        }
        p
    }

    /// `Received: from HOST (HELO x) (info@IP)` LF `  by LOCAL with PROTO (TLS); DATE` LF.
    pub fn line(&self, now: i64) -> String {
        let host = self.remote_host.unwrap_or("unknown");
        let mut s = format!("Received: from {}", safe(host));
        if let Some(helo) = self.helo
            && !helo.eq_ignore_ascii_case(host)
        {
            s.push_str(&format!(" (HELO {})", safe(helo)));
        }
        s.push_str(" (");
        if let Some(info) = self.remote_info {
            s.push_str(&safe(info));
            s.push('@');
        }
        s.push_str(&safe(self.remote_ip));
        s.push_str(")\n  by ");
        s.push_str(&safe(self.local_host));
        s.push_str(" with ");
        s.push_str(&self.protocol());
        if let Some(tls) = self.tls {
            s.push_str(&format!(" ({})", safe(tls)));
        }
        s.push_str("; ");
        s.push_str(&rqmail_date::Utc::from_unix(now).received());
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_qmails_layout_with_rfc3848_keywords() {
        let t = Trace {
            remote_host: None,
            helo: Some("client.example"),
            remote_info: Some("joe"),
            remote_ip: "127.0.0.1",
            local_host: "mail.example.com",
            esmtp: true,
            tls: Some("TLSv1.3 TLS13_AES_256_GCM_SHA384"),
            authenticated: true,
            utf8: false,
        };
        assert_eq!(
            t.line(0),
            "Received: from unknown (HELO client.example) (joe@127.0.0.1)\n  by mail.example.com with ESMTPSA (TLSv1.3 TLS13_AES_256_GCM_SHA384); 1 Jan 1970 00:00:00 -0000\n"
        );
        let t = Trace {
            helo: Some("x\ny"),
            tls: None,
            authenticated: false,
            remote_info: None,
            esmtp: false,
            ..t
        };
        assert!(t.line(0).starts_with(
            "Received: from unknown (HELO x?y) (127.0.0.1)\n  by mail.example.com with SMTP; "
        ));
    }
}
