//! Bearer-token authentication and the permission table.
//!
//! A client sends `authorization: Bearer <token>`. The configuration holds only each token's
//! SHA-256 (hex), its name and its role; a presented token is hashed and compared with every
//! configured hash in constant time. [`PERMISSIONS`] maps every RPC the server serves to the
//! roles allowed to call it; a method missing from the table is refused (fail closed), and a
//! unit test checks that every RPC of every Vouch proto has a row.
//!
//! With no tokens configured, authentication is disabled: every call is allowed. The
//! configuration refuses that on a non-loopback listen address.
//!
//! Tokens are never logged: logs and metrics name the token's configured name only.

use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tonic::Status;
use tonic::codegen::http::HeaderMap;

use crate::config::TokenConfig;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Appends records, and reads.
    Writer,
    /// Reads, proves and watches; changes nothing.
    Auditor,
    /// Publishes policies (policy service), and reads.
    PolicyAdmin,
    /// Everything, including creating ledgers.
    Admin,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Writer, Role::Auditor, Role::PolicyAdmin, Role::Admin];

    /// The role's name as written in the configuration.
    pub const fn name(self) -> &'static str {
        match self {
            Role::Writer => "writer",
            Role::Auditor => "auditor",
            Role::PolicyAdmin => "policy-admin",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| {
                format!("unknown role {s:?}: use writer, auditor, policy-admin or admin")
            })
    }
}

/// Who may call a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a token: health checks and reflection (the schema is public).
    Public,
    /// A token with one of these roles.
    Roles(&'static [Role]),
}

const ANY_ROLE: Access = Access::Roles(&Role::ALL);
const WRITERS: Access = Access::Roles(&[Role::Writer, Role::Admin]);
const ADMINS: Access = Access::Roles(&[Role::Admin]);
const POLICY_ADMINS: Access = Access::Roles(&[Role::PolicyAdmin, Role::Admin]);
/// Overrides and exceptions: recorded by writers (release tooling) and policy admins.
const WRITERS_AND_POLICY_ADMINS: Access =
    Access::Roles(&[Role::Writer, Role::PolicyAdmin, Role::Admin]);
/// Dry runs that record nothing: every role that works with policies, auditors included.
const POLICY_READERS: Access =
    Access::Roles(&[Role::Writer, Role::PolicyAdmin, Role::Auditor, Role::Admin]);

/// The permission table: gRPC method path → who may call it. Every RPC the server serves has
/// one row; calls to a path without a row are refused.
pub const PERMISSIONS: &[(&str, Access)] = &[
    ("/vouch.v1.LedgerService/CreateLedger", ADMINS),
    ("/vouch.v1.LedgerService/ListLedgers", ANY_ROLE),
    ("/vouch.v1.LedgerService/GetLedger", ANY_ROLE),
    ("/vouch.v1.LedgerService/Append", WRITERS),
    ("/vouch.v1.LedgerService/AppendBatch", WRITERS),
    ("/vouch.v1.LedgerService/GetEntry", ANY_ROLE),
    ("/vouch.v1.LedgerService/StreamEntries", ANY_ROLE),
    ("/vouch.v1.LedgerService/GetInclusionProof", ANY_ROLE),
    ("/vouch.v1.LedgerService/GetConsistencyProof", ANY_ROLE),
    ("/vouch.v1.LedgerService/GetCheckpoint", ANY_ROLE),
    ("/vouch.v1.LedgerService/WatchCheckpoints", ANY_ROLE),
    ("/vouch.v1.PolicyService/LintBundle", POLICY_READERS),
    ("/vouch.v1.PolicyService/PublishBundle", POLICY_ADMINS),
    ("/vouch.v1.PolicyService/GetBundle", ANY_ROLE),
    ("/vouch.v1.PolicyService/ListBundles", ANY_ROLE),
    ("/vouch.v1.PolicyService/Evaluate", POLICY_READERS),
    ("/vouch.v1.PolicyService/Decide", WRITERS),
    ("/vouch.v1.PolicyService/GetDecision", ANY_ROLE),
    (
        "/vouch.v1.PolicyService/RecordOverride",
        WRITERS_AND_POLICY_ADMINS,
    ),
    (
        "/vouch.v1.PolicyService/RecordException",
        WRITERS_AND_POLICY_ADMINS,
    ),
    ("/vouch.v1.PolicyService/Replay", ANY_ROLE),
    ("/vouch.v1.PolicyService/Simulate", POLICY_READERS),
    ("/vouch.v1.PolicyService/QueryDecisions", ANY_ROLE),
    // A read (it may sign a checkpoint of entries already appended, as a proof would need):
    // every role holds the auditor's permissions.
    ("/vouch.v1.PolicyService/ExportProofPack", ANY_ROLE),
    ("/grpc.health.v1.Health/Check", Access::Public),
    ("/grpc.health.v1.Health/Watch", Access::Public),
    (
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        Access::Public,
    ),
    (
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        Access::Public,
    ),
];

/// The rule for a method path, if it has one.
pub fn access_for(path: &str) -> Option<Access> {
    PERMISSIONS
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, a)| *a)
}

/// The caller of a request, as the authenticator established it. Put in the request's
/// extensions for the handlers and the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's configured name; `anonymous` when authentication is disabled or the
    /// method is public.
    pub name: String,
    /// The token's role; `None` for anonymous callers.
    pub role: Option<Role>,
}

impl Principal {
    fn anonymous() -> Self {
        Self {
            name: "anonymous".to_owned(),
            role: None,
        }
    }
}

struct KnownToken {
    name: String,
    role: Role,
    hash: [u8; 32],
}

/// Checks the bearer token of each call against the configured tokens and the table.
pub struct Authenticator {
    tokens: Vec<KnownToken>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("tokens", &self.tokens.len())
            .finish()
    }
}

impl Authenticator {
    /// An authenticator for the configured tokens (whose hashes the configuration validated).
    /// No tokens disables authentication.
    pub fn new(tokens: &[TokenConfig]) -> Self {
        let tokens = tokens
            .iter()
            .filter_map(|t| {
                let bytes = hex::decode(&t.sha256).ok()?;
                Some(KnownToken {
                    name: t.name.clone(),
                    role: t.role,
                    hash: <[u8; 32]>::try_from(bytes.as_slice()).ok()?,
                })
            })
            .collect();
        Self { tokens }
    }

    /// Whether tokens are checked at all.
    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// Decides a call to `path` with these request headers.
    ///
    /// # Errors
    ///
    /// `UNAUTHENTICATED` for a missing, malformed or unknown token; `PERMISSION_DENIED` for a
    /// known token whose role the method does not allow, or a method without a rule.
    pub fn authorize(&self, path: &str, headers: &HeaderMap) -> Result<Principal, Status> {
        let access = access_for(path);
        if access == Some(Access::Public) || !self.enabled() {
            return match access {
                Some(_) => Ok(Principal::anonymous()),
                None => Err(no_rule(path)),
            };
        }
        let token = bearer_token(headers)?;
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // Compare with every token, without stopping at a match, so the time taken does not
        // depend on which token (if any) matched.
        let mut found: Option<&KnownToken> = None;
        for known in &self.tokens {
            if constant_time_eq(&known.hash, &presented) {
                found = Some(known);
            }
        }
        let Some(known) = found else {
            return Err(Status::unauthenticated(
                "unknown bearer token (tokens are configured in [[tokens]] by their SHA-256)",
            ));
        };
        let Some(Access::Roles(roles)) = access else {
            return Err(no_rule(path));
        };
        if !roles.contains(&known.role) {
            let allowed: Vec<&str> = roles.iter().map(|r| r.name()).collect();
            return Err(Status::permission_denied(format!(
                "token {:?} has role {}; {} needs one of: {}",
                known.name,
                known.role,
                path.trim_start_matches('/'),
                allowed.join(", ")
            )));
        }
        Ok(Principal {
            name: known.name.clone(),
            role: Some(known.role),
        })
    }
}

fn no_rule(path: &str) -> Status {
    Status::permission_denied(format!(
        "{} has no permission rule on this server",
        path.trim_start_matches('/')
    ))
}

fn bearer_token(headers: &HeaderMap) -> Result<&str, Status> {
    let value = headers.get("authorization").ok_or_else(|| {
        Status::unauthenticated(
            "missing bearer token: send the header `authorization: Bearer <token>`",
        )
    })?;
    let text = value
        .to_str()
        .map_err(|_| Status::unauthenticated("the authorization header is not ASCII text"))?;
    let (scheme, token) = text.split_once(' ').unwrap_or((text, ""));
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(Status::unauthenticated(
            "the authorization header must be `Bearer <token>`",
        ));
    }
    Ok(token)
}

/// Equality of two digests in time independent of where they differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keep the optimiser from turning the fold into an early-exit comparison.
    std::hint::black_box(diff) == 0
}

/// A new random token: `vch_` and 32 random bytes in unpadded base64url.
///
/// # Errors
///
/// The operating system's random source failed.
pub fn generate_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!(
        "vch_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// The lowercase hex SHA-256 of a token: what the configuration stores.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use prost::Message as _;
    use tonic::Code;

    use super::*;

    fn headers(token: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(t) = token {
            h.insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        h
    }

    fn auth() -> Authenticator {
        Authenticator::new(&[
            TokenConfig {
                name: "w".into(),
                role: Role::Writer,
                sha256: hash_token("tw"),
            },
            TokenConfig {
                name: "a".into(),
                role: Role::Auditor,
                sha256: hash_token("ta"),
            },
            TokenConfig {
                name: "root".into(),
                role: Role::Admin,
                sha256: hash_token("tr"),
            },
        ])
    }

    #[test]
    fn every_rpc_of_every_proto_has_a_rule() {
        let fds =
            prost_types::FileDescriptorSet::decode(crate::proto::FILE_DESCRIPTOR_SET).unwrap();
        let mut n = 0;
        for file in &fds.file {
            for svc in &file.service {
                for m in &svc.method {
                    let path = format!("/{}.{}/{}", file.package(), svc.name(), m.name());
                    assert!(access_for(&path).is_some(), "{path} has no permission rule");
                    n += 1;
                }
            }
        }
        assert!(n >= 23, "{n}");
    }

    #[test]
    fn roles_are_enforced() {
        let a = auth();
        let append = "/vouch.v1.LedgerService/Append";
        let create = "/vouch.v1.LedgerService/CreateLedger";
        let get = "/vouch.v1.LedgerService/GetEntry";
        assert_eq!(a.authorize(append, &headers(Some("tw"))).unwrap().name, "w");
        assert_eq!(
            a.authorize(append, &headers(Some("ta")))
                .unwrap_err()
                .code(),
            Code::PermissionDenied
        );
        assert_eq!(
            a.authorize(create, &headers(Some("tw")))
                .unwrap_err()
                .code(),
            Code::PermissionDenied
        );
        a.authorize(create, &headers(Some("tr"))).unwrap();
        a.authorize(get, &headers(Some("ta"))).unwrap();
        assert_eq!(
            a.authorize(get, &headers(None)).unwrap_err().code(),
            Code::Unauthenticated
        );
        assert_eq!(
            a.authorize(get, &headers(Some("nope"))).unwrap_err().code(),
            Code::Unauthenticated
        );
        assert_eq!(
            a.authorize("/x.Y/Z", &headers(Some("tr")))
                .unwrap_err()
                .code(),
            Code::PermissionDenied
        );
        a.authorize("/grpc.health.v1.Health/Check", &headers(None))
            .unwrap();
    }

    #[test]
    fn errors_never_contain_the_token() {
        let a = auth();
        let e = a
            .authorize("/vouch.v1.LedgerService/CreateLedger", &headers(Some("tw")))
            .unwrap_err();
        assert!(!e.message().contains("tw\""), "{}", e.message());
        let e = a
            .authorize(
                "/vouch.v1.LedgerService/GetEntry",
                &headers(Some("secret-xyz")),
            )
            .unwrap_err();
        assert!(!e.message().contains("secret-xyz"));
    }

    #[test]
    fn disabled_auth_allows_everything_in_the_table() {
        let a = Authenticator::new(&[]);
        a.authorize("/vouch.v1.LedgerService/CreateLedger", &headers(None))
            .unwrap();
        assert_eq!(
            a.authorize("/x.Y/Z", &headers(None)).unwrap_err().code(),
            Code::PermissionDenied
        );
    }

    #[test]
    fn generated_tokens_are_random_and_hash_to_hex() {
        let t1 = generate_token().unwrap();
        let t2 = generate_token().unwrap();
        assert!(t1.starts_with("vch_") && t1.len() == 4 + 43, "{t1}");
        assert_ne!(t1, t2);
        let h = hash_token(&t1);
        assert_eq!(h.len(), 64);
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
