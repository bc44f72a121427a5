//! TLS and mutual TLS with throwaway certificates.

use std::path::Path;

use rcgen::{CertificateParams, KeyPair};
use vouch_server::client::{ClientTls, connect};
use vouch_server::config::TlsConfig;
use vouch_server::proto::v1 as pb;

use crate::support::{client_tls, config, serve};

/// A CA, and PEM certificate and key pairs it signed.
struct Pki {
    ca_pem: String,
    server: (String, String),
    client: (String, String),
}

fn pki() -> Pki {
    let ca = pki::ca();
    let leaf = |names: Vec<String>| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    };
    Pki {
        ca_pem: ca.pem(),
        server: leaf(vec!["localhost".into(), "127.0.0.1".into()]),
        client: leaf(vec!["client.test".into()]),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn trust(pki: &Pki, identity: Option<&(String, String)>) -> ClientTls {
    ClientTls {
        ca_pem: Some(pki.ca_pem.clone().into_bytes()),
        identity_pem: identity.map(|(c, k)| (c.clone().into_bytes(), k.clone().into_bytes())),
        domain: Some("localhost".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_clients_that_trust_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let mut cfg = config(dir.path());
    cfg.tls = Some(TlsConfig {
        cert: write(dir.path(), "server.pem", &pki.server.0),
        key: write(dir.path(), "server.key", &pki.server.1),
        client_ca: None,
    });
    let server = serve(cfg).await;
    assert!(server.grpc_url().starts_with("https://127.0.0.1:"));
    let mut c = client_tls(&server, None, Some(trust(&pki, None))).await;
    let info = c
        .get_ledger(pb::GetLedgerRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.name, "default");

    // A client that does not trust the CA cannot connect or call.
    let untrusting = ClientTls {
        ca_pem: Some(pki::other_ca().into_bytes()),
        identity_pem: None,
        domain: Some("localhost".into()),
    };
    if let Ok(mut c) = connect(&server.grpc_url(), None, Some(untrusting)).await {
        assert!(c.get_ledger(pb::GetLedgerRequest::default()).await.is_err());
    }
    // Nor can a plaintext client.
    let plain = format!("http://{}", server.grpc_addr);
    if let Ok(mut c) = connect(&plain, None, None).await {
        assert!(c.get_ledger(pb::GetLedgerRequest::default()).await.is_err());
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_requires_a_client_certificate_from_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let mut cfg = config(dir.path());
    cfg.tls = Some(TlsConfig {
        cert: write(dir.path(), "server.pem", &pki.server.0),
        key: write(dir.path(), "server.key", &pki.server.1),
        client_ca: Some(write(dir.path(), "ca.pem", &pki.ca_pem)),
    });
    let server = serve(cfg).await;
    assert!(server.banner().contains("mTLS"), "{}", server.banner());
    let mut c = client_tls(&server, None, Some(trust(&pki, Some(&pki.client)))).await;
    c.get_ledger(pb::GetLedgerRequest::default()).await.unwrap();

    // Without a client certificate the handshake or the first call fails.
    if let Ok(mut c) = connect(&server.grpc_url(), None, Some(trust(&pki, None))).await {
        assert!(c.get_ledger(pb::GetLedgerRequest::default()).await.is_err());
    }
    // A certificate from another CA is refused too.
    let stranger = pki::other_leaf();
    if let Ok(mut c) = connect(&server.grpc_url(), None, Some(trust(&pki, Some(&stranger)))).await {
        assert!(c.get_ledger(pb::GetLedgerRequest::default()).await.is_err());
    }
    server.shutdown().await.unwrap();
}

mod pki {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

    /// A new certificate authority.
    pub fn ca() -> CertifiedIssuer<'static, KeyPair> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
    }

    /// A CA that signed nothing of the server's.
    pub fn other_ca() -> String {
        ca().pem()
    }

    /// A client certificate and key from another CA.
    pub fn other_leaf() -> (String, String) {
        let ca = ca();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["stranger.test".to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }
}
