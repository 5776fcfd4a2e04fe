//! The agent's TLS files, read and checked at start: the shared checks of
//! [`gameday_proto::tls`] (PEM, CA, signature, key), plus what the controller will demand of an
//! agent's certificate: its common name is the agent's `name` and its role is `agent`.

use std::path::PathBuf;

use gameday_proto::tls::{self as files, TlsFileError, TlsMaterial, TlsPaths};

use super::AgentConfig;

/// The organizational unit (role) of an agent certificate made by `gameday certs`.
const AGENT_ROLE: &str = "agent";

/// TLS files the agent cannot work with; the message names the config key and the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file is unreadable, malformed, not signed by the CA, or the key is not the
    /// certificate's.
    #[error(transparent)]
    File(#[from] TlsFileError),
    /// The certificate is for another name than the config's `name`.
    #[error(
        "tls.cert ({}): the certificate is for {cert_name:?} but name = {name:?}; the \
         controller registers an agent only under its certificate's name",
        path.display()
    )]
    NameMismatch {
        /// The certificate file.
        path: PathBuf,
        /// Its common name, or `""` when it has none.
        cert_name: String,
        /// The configured name.
        name: String,
    },
    /// The certificate is not an agent certificate.
    #[error(
        "tls.cert ({}): the certificate's role (organizational unit) is {role:?}, not \
         \"agent\"; the controller accepts only agent certificates from agents (issue one \
         with `gameday certs issue --agent NAME`)",
        path.display()
    )]
    WrongRole {
        /// The certificate file.
        path: PathBuf,
        /// Its organizational unit, or `""` when it has none.
        role: String,
    },
}

/// Reads and checks the files named in `config.tls`.
pub fn load(config: &AgentConfig) -> Result<TlsMaterial, TlsError> {
    let material = files::load(TlsPaths {
        ca: &config.tls.ca,
        cert: &config.tls.cert,
        key: &config.tls.key,
    })?;
    let cert_name = material.common_name().unwrap_or_default();
    if cert_name != config.name {
        return Err(TlsError::NameMismatch {
            path: config.tls.cert.clone(),
            cert_name: cert_name.to_string(),
            name: config.name.clone(),
        });
    }
    let role = material.role().unwrap_or_default();
    if role != AGENT_ROLE {
        return Err(TlsError::WrongRole {
            path: config.tls.cert.clone(),
            role: role.to_string(),
        });
    }
    Ok(material)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use gameday_proto::tls::test_support::{TestCa, TestFiles};

    use super::*;

    /// A config for `name` using `files`.
    fn config(name: &str, files: &TestFiles) -> AgentConfig {
        let text = format!(
            "name = \"{name}\"\ncontroller = \"https://127.0.0.1:7443\"\n[tls]\nca = \"{}\"\n\
             cert = \"{}\"\nkey = \"{}\"\n",
            files.ca.display(),
            files.cert.display(),
            files.key.display()
        );
        super::super::parse("agent.toml", &text, Path::new("/")).unwrap()
    }

    fn error(name: &str, files: &TestFiles) -> String {
        load(&config(name, files)).unwrap_err().to_string()
    }

    #[test]
    fn loads_the_files_of_a_fleet() {
        let dir = tempfile::tempdir().unwrap();
        let files = TestCa::new("fleet").write(dir.path(), "agent", "web-1");
        let material = load(&config("web-1", &files)).unwrap();
        assert_eq!(material.common_name(), Some("web-1"));
    }

    #[test]
    fn refuses_a_garbage_ca_naming_the_key_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let files = TestCa::new("fleet").write(dir.path(), "agent", "web-1");
        std::fs::write(&files.ca, "this is not a certificate\n").unwrap();
        assert_eq!(
            error("web-1", &files),
            format!(
                "tls.ca ({}): expected PEM certificate (`-----BEGIN CERTIFICATE-----`), \
                 found none",
                files.ca.display()
            )
        );
    }

    #[test]
    fn refuses_a_ca_of_another_fleet() {
        let dir = tempfile::tempdir().unwrap();
        let files = TestCa::new("fleet").write(dir.path(), "agent", "web-1");
        std::fs::write(&files.ca, TestCa::new("other fleet").cert_pem).unwrap();
        let err = error("web-1", &files);
        assert!(err.starts_with("tls.cert ("), "{err}");
        assert!(err.contains("not by the CA in"), "{err}");
    }

    #[test]
    fn refuses_a_key_that_is_not_the_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("fleet");
        let files = ca.write(dir.path(), "agent", "web-1");
        std::fs::write(&files.key, ca.issue("agent", "web-1").1).unwrap();
        let err = error("web-1", &files);
        assert!(err.starts_with("tls.key ("), "{err}");
        assert!(err.contains("does not belong to the certificate"), "{err}");
    }

    #[test]
    fn refuses_a_certificate_for_another_name_or_role() {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("fleet");
        let files = ca.write(dir.path(), "agent", "web-1");
        assert_eq!(
            error("web-2", &files),
            format!(
                "tls.cert ({}): the certificate is for \"web-1\" but name = \"web-2\"; the \
                 controller registers an agent only under its certificate's name",
                files.cert.display()
            )
        );
        let operator = ca.write(dir.path(), "operator", "alice");
        let err = error("alice", &operator);
        assert!(
            err.contains("role (organizational unit) is \"operator\", not \"agent\""),
            "{err}"
        );
    }
}
