//! Reading a connection string: libpq's `key=value` form or a
//! `postgres://` / `postgresql://` URL. The TLS options the client library
//! does not know (`sslmode=verify-ca|verify-full`, `sslrootcert`) are taken
//! out here and handled by [`super::tls`]; the rest goes to
//! `tokio_postgres::Config` unchanged.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::{Host, SslMode};

use super::error::ServerError;

/// How a session protects its connection, from `sslmode` and `sslrootcert`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TlsMode {
    /// `sslmode=disable`: plain TCP or a Unix socket.
    Disable,
    /// `sslmode=prefer` (libpq's default) or `allow`: TLS when the server
    /// offers it, without checking its certificate.
    Prefer,
    /// `sslmode=require`: TLS or nothing, without checking the certificate
    /// (unless `sslrootcert` is given: then as `verify-ca`, like libpq).
    Require,
    /// `sslmode=verify-ca`: TLS with a certificate signed by `root`.
    VerifyCa { root: PathBuf },
    /// `sslmode=verify-full`: as `verify-ca`, and the certificate must
    /// name the host connected to.
    VerifyFull { root: PathBuf },
}

/// How often a session that is not waiting is pinged, unless the builder
/// says otherwise.
pub(crate) const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(5);

/// A parsed connection string, and the session settings beside it.
#[derive(Clone, Debug)]
pub(crate) struct ServerConfig {
    pub(crate) client: tokio_postgres::Config,
    pub(crate) tls: TlsMode,
    /// How often sessions are pinged (see [`super::session`]).
    pub(crate) heartbeat: Duration,
}

impl ServerConfig {
    /// Parses `text`; errors name the offending option, never a value.
    pub(crate) fn parse(text: &str) -> Result<ServerConfig, ServerError> {
        let (rest, tls) = if is_url(text) { split_url(text)? } else { split_key_values(text)? };
        let mut client = tokio_postgres::Config::from_str(&rest)
            .map_err(|e| invalid(super::error::reason(&e)))?;
        let tls = tls.into_mode()?;
        client.ssl_mode(match tls {
            TlsMode::Disable => SslMode::Disable,
            TlsMode::Prefer => SslMode::Prefer,
            _ => SslMode::Require,
        });
        if client.get_hosts().is_empty() {
            client.host("localhost"); // libpq's default (a Unix socket on most systems)
        }
        if client.get_user().is_none() {
            return Err(invalid("no user given (add user=NAME)".into()));
        }
        Ok(ServerConfig { client, tls, heartbeat: DEFAULT_HEARTBEAT })
    }

    /// The server as `host:port/dbname as user`: what every message names.
    pub(crate) fn describe(&self) -> String {
        let user = self.client.get_user().unwrap_or("?");
        format!("{} as {user}", self.location())
    }

    /// The server as `host:port/dbname`.
    pub(crate) fn location(&self) -> String {
        let client = &self.client;
        let hosts: Vec<String> = client
            .get_hosts()
            .iter()
            .map(|host| match host {
                Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        let port = client.get_ports().first().copied().unwrap_or(5432);
        let user = client.get_user().unwrap_or("?");
        let dbname = client.get_dbname().unwrap_or(user);
        format!("{}:{port}/{dbname}", hosts.join(","))
    }
}

fn invalid(reason: String) -> ServerError {
    ServerError::InvalidConnectionString { reason }
}

fn is_url(text: &str) -> bool {
    text.starts_with("postgres://") || text.starts_with("postgresql://")
}

/// The TLS options taken out of a connection string.
#[derive(Default)]
struct TlsOptions {
    sslmode: Option<String>,
    sslrootcert: Option<String>,
}

impl TlsOptions {
    /// Takes `key=value` if it is a TLS option; false otherwise.
    fn take(&mut self, key: &str, value: &str) -> Result<bool, ServerError> {
        match key {
            "sslmode" => self.sslmode = Some(value.to_string()),
            "sslrootcert" => self.sslrootcert = Some(value.to_string()),
            "sslcert" | "sslkey" | "sslpassword" | "sslcrl" | "sslcrldir" => {
                return Err(invalid(format!("option `{key}` is not supported")));
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn into_mode(self) -> Result<TlsMode, ServerError> {
        let root = self.sslrootcert.map(root_path).transpose()?;
        let mode = self.sslmode.as_deref().unwrap_or("prefer");
        Ok(match (mode, root) {
            ("disable", _) => TlsMode::Disable,
            ("allow" | "prefer", _) => TlsMode::Prefer,
            ("require", None) => TlsMode::Require,
            ("require" | "verify-ca", Some(root)) => TlsMode::VerifyCa { root },
            ("verify-full", Some(root)) => TlsMode::VerifyFull { root },
            ("verify-ca" | "verify-full", None) => {
                let root = default_root().ok_or_else(|| {
                    invalid(format!(
                        "sslmode={mode} needs the server's CA certificate: add sslrootcert=PATH"
                    ))
                })?;
                if mode == "verify-ca" {
                    TlsMode::VerifyCa { root }
                } else {
                    TlsMode::VerifyFull { root }
                }
            }
            _ => {
                return Err(invalid(
                    "invalid value for option `sslmode` (disable, allow, prefer, require, \
                     verify-ca or verify-full)"
                        .into(),
                ));
            }
        })
    }
}

fn root_path(value: String) -> Result<PathBuf, ServerError> {
    if value == "system" {
        return Err(invalid("sslrootcert=system is not supported: give a PEM file".into()));
    }
    Ok(PathBuf::from(value))
}

/// libpq's default CA file, `~/.postgresql/root.crt`, if it exists.
fn default_root() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    let path = PathBuf::from(home).join(".postgresql").join("root.crt");
    path.is_file().then_some(path)
}

/// Splits `key=value ...` into the TLS options and the rest, rebuilt with
/// every value quoted.
fn split_key_values(text: &str) -> Result<(String, TlsOptions), ServerError> {
    let mut tls = TlsOptions::default();
    let mut rest = String::new();
    for (key, value) in key_values(text)? {
        if !tls.take(&key, &value)? {
            let quoted = value.replace('\\', "\\\\").replace('\'', "\\'");
            rest.push_str(&format!("{key}='{quoted}' "));
        }
    }
    Ok((rest, tls))
}

/// The pairs of a libpq `key=value` string: values may be single-quoted,
/// with `\'` and `\\` escapes inside.
fn key_values(text: &str) -> Result<Vec<(String, String)>, ServerError> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(invalid("expected key=value, found a word without `=`".into()));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                    None => return Err(invalid(format!("unterminated quote in `{key}`"))),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

/// Splits a URL's query into the TLS options and the rest of the URL.
fn split_url(text: &str) -> Result<(String, TlsOptions), ServerError> {
    let mut tls = TlsOptions::default();
    let Some((base, query)) = text.split_once('?') else {
        return Ok((text.to_string(), tls));
    };
    let mut kept = Vec::new();
    for param in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        let value = percent_decode(value)
            .ok_or_else(|| invalid(format!("bad percent-encoding in `{key}`")))?;
        if !tls.take(key, &value)? {
            kept.push(param);
        }
    }
    let rest =
        if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
    Ok((rest, tls))
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_take_quotes_and_escapes() {
        let pairs = key_values("host=h  password='a b\\'c' dbname = d").unwrap();
        assert_eq!(
            pairs,
            [
                ("host".into(), "h".into()),
                ("password".into(), "a b'c".into()),
                ("dbname".into(), "d".into())
            ]
        );
    }

    #[test]
    fn tls_options_come_out_of_both_forms() {
        let config =
            ServerConfig::parse("host=h user=u sslmode=verify-full sslrootcert=/ca.pem").unwrap();
        assert_eq!(config.tls, TlsMode::VerifyFull { root: "/ca.pem".into() });
        let config =
            ServerConfig::parse("postgresql://u@h:5433/d?sslmode=require&sslrootcert=%2Fca.pem")
                .unwrap();
        assert_eq!(config.tls, TlsMode::VerifyCa { root: "/ca.pem".into() });
        assert_eq!(config.describe(), "h:5433/d as u");
    }

    #[test]
    fn errors_never_echo_values() {
        for text in [
            "host=h user=u pasword=hunter2",
            "host=h user=u password='hunter2",
            "host=h user=u sslmode=hunter2",
            "host=h user=u port=hunter2",
            "host=h hunter2",
        ] {
            let err = ServerConfig::parse(text).unwrap_err().to_string();
            assert!(!err.contains("hunter2"), "{err}");
        }
    }
}
