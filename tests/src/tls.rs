//! A certificate authority made by the test, and a TLS front for the broker.
//!
//! Contract: [`TestPki::create`] writes a fresh CA (`ca.pem`), a server certificate it signed
//! for `127.0.0.1` and `localhost` (`server.pem`, `server.key`), and a second, unrelated CA
//! (`other-ca.pem`) for clients that must refuse the server. [`TlsFront`] accepts TLS 1.2/1.3
//! with that server certificate on a loopback port and forwards the decrypted stream to a
//! plaintext target, both ways, until dropped.
//!
//! Why a front: Tansu 0.6.0 builds a TLS acceptor from `--cert`/`--key` but never uses it, and
//! its command line refuses the two flags together (they share a clap group), so the broker
//! itself cannot serve TLS. SASL is still the broker's: the front passes the SASL exchange
//! through, and Tansu (`--authentication`) checks the SCRAM proof against its stored
//! credentials. The clients under test see exactly a `SASL_SSL` listener.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use tokio::net::{TcpListener, TcpStream};

/// The files of a test PKI.
#[derive(Debug, Clone)]
pub struct TestPki {
    /// The CA clients should trust.
    pub ca: PathBuf,
    /// A CA that did not sign the server's certificate.
    pub other_ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

fn ca(name: &str) -> anyhow::Result<CertifiedIssuer<'static, KeyPair>> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(CertifiedIssuer::self_signed(params, KeyPair::generate()?)?)
}

impl TestPki {
    /// Makes the CAs and the server certificate in `dir`.
    pub fn create(dir: &Path) -> anyhow::Result<TestPki> {
        let issuer = ca("Northstar test CA")?;
        let other = ca("Some other CA")?;
        let mut leaf = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])?;
        leaf.distinguished_name
            .push(DnType::CommonName, "localhost");
        let key = KeyPair::generate()?;
        let cert = leaf.signed_by(&key, &issuer)?;
        let pki = TestPki {
            ca: dir.join("ca.pem"),
            other_ca: dir.join("other-ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
        };
        std::fs::write(&pki.ca, issuer.pem())?;
        std::fs::write(&pki.other_ca, other.pem())?;
        std::fs::write(&pki.server_cert, cert.pem())?;
        std::fs::write(&pki.server_key, key.serialize_pem())?;
        Ok(pki)
    }

    /// A rustls server configuration presenting the server certificate.
    pub fn server_config(&self) -> anyhow::Result<rustls::ServerConfig> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let certs =
            CertificateDer::pem_file_iter(&self.server_cert)?.collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_file(&self.server_key)?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        Ok(rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?)
    }
}

/// A TLS-terminating forwarder on a loopback port.
#[derive(Debug)]
pub struct TlsFront {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl TlsFront {
    /// Listens on `port` (TLS with `pki`'s server certificate) and forwards to `target`.
    pub async fn start(port: u16, target: SocketAddr, pki: &TestPki) -> anyhow::Result<TlsFront> {
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(pki.server_config()?));
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that fails the handshake (plaintext, or distrusting the
                    // certificate) is simply dropped, as a broker's TLS listener would.
                    let Ok(mut tls) = acceptor.accept(client).await else {
                        return;
                    };
                    let Ok(mut upstream) = TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                });
            }
        });
        Ok(TlsFront { port, task })
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}
