//! Image references: `REGISTRY/REPO[:TAG]` or `REGISTRY/REPO@sha256:…`, Docker Hub defaults.

use std::fmt;

use crate::digest::Digest;
use crate::error::{Error, Result};

/// Docker Hub's name in references.
pub const DOCKER_HUB: &str = "docker.io";
/// The host that serves Docker Hub's registry API.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// A parsed push destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Registry host with optional port, as the user wrote it (`docker.io` for Docker Hub).
    pub registry: String,
    /// Repository path inside the registry (`library/` added for official Docker Hub images).
    pub repository: String,
    /// Tag or digest.
    pub target: Target,
}

/// What a reference points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A tag (`latest` when none was given).
    Tag(String),
    /// A manifest digest.
    Digest(Digest),
}

/// `input` (a reference, or a repository to mount from) as messages may show it: what comes
/// before an '@' that does not start a digest may be `user:password`, and is never echoed.
pub(crate) fn shown(input: &str) -> String {
    match input.split_once('@') {
        Some((_, after)) if after.parse::<Digest>().is_err() => {
            format!("...@{}", crate::ui::quote_name(after))
        }
        _ => crate::ui::quote_name(input),
    }
}

impl Reference {
    /// Parse `REGISTRY/REPO[:TAG]`, `REGISTRY/REPO@DIGEST` (or `REPO…` for Docker Hub).
    pub fn parse(input: &str) -> Result<Self> {
        let shown = shown(input);
        let bad = |why: &str| Error::usage(format!("invalid reference '{shown}': {why}"));
        if input.is_empty() {
            return Err(bad("empty"));
        }
        let (name, target) = match input.split_once('@') {
            Some((name, digest)) => {
                let digest: Digest = digest
                    .parse()
                    .map_err(|_| bad("the digest must be sha256: and 64 hex digits"))?;
                // A tag before the digest is allowed by Docker but meaningless for a push.
                let name = match name.rsplit_once(':') {
                    Some((n, tag)) if !tag.contains('/') => n,
                    _ => name,
                };
                (name, Target::Digest(digest))
            }
            None => match input.rsplit_once(':') {
                Some((n, tag)) if !tag.contains('/') => {
                    if !valid_tag(tag) {
                        return Err(bad(&format!("'{tag}' is not a valid tag")));
                    }
                    (n, Target::Tag(tag.to_string()))
                }
                _ => (input, Target::Tag("latest".to_string())),
            },
        };
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let registry = match registry.as_str() {
            "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
            _ => registry,
        };
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if repository.is_empty() || !valid_repository(&repository) {
            return Err(bad(
                "the repository must be lower-case path components of letters, digits and . _ -",
            ));
        }
        if registry.is_empty() || registry.contains(|c: char| c.is_whitespace() || c == '@') {
            return Err(bad("invalid registry host"));
        }
        Ok(Reference {
            registry,
            repository,
            target,
        })
    }

    /// The host (and port) that serves the registry API.
    pub fn api_host(&self) -> &str {
        api_host(&self.registry)
    }

    /// The host part without the port (for loopback checks).
    pub fn hostname(&self) -> &str {
        hostname(&self.registry)
    }
}

/// The host serving the API for a registry name (Docker Hub's differs).
pub fn api_host(registry: &str) -> &str {
    if registry == DOCKER_HUB {
        DOCKER_HUB_API
    } else {
        registry
    }
}

/// `host:port` → `host`, `[::1]:5000` → `::1`.
pub fn hostname(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match registry.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => registry,
    }
}

/// Whether `registry` names this machine (plain HTTP there needs no warning).
pub fn is_loopback(registry: &str) -> bool {
    let h = hostname(registry);
    h == "localhost"
        || h.ends_with(".localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        match &self.target {
            Target::Tag(t) => write!(f, ":{t}"),
            Target::Digest(d) => write!(f, "@{d}"),
        }
    }
}

/// Whether `tag` is a valid tag: 1 to 128 of `[A-Za-z0-9_.-]`, not starting with `.` or `-`.
pub fn valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// Repository names per the distribution spec: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/…)*`.
pub fn valid_repository(repo: &str) -> bool {
    repo.split('/').all(|part| {
        let b = part.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(&c))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_with_user_info_is_not_echoed() {
        let e = Reference::parse("alice:s3cr3t@registry.example/repo:1")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("s3cr3t") && !e.contains("alice"), "{e}");
        assert!(e.contains("registry.example/repo:1"), "{e}");
    }

    #[test]
    fn parses_registries_tags_and_digests() {
        let r = Reference::parse("127.0.0.1:5000/a/b:v1").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "a/b");
        assert_eq!(r.target, Target::Tag("v1".into()));
        let r = Reference::parse("localhost/x").unwrap();
        assert_eq!(r.target, Target::Tag("latest".into()));
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.registry, "docker.io");
        assert_eq!(r.repository, "library/busybox");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        let d = Digest::of(b"x");
        let r = Reference::parse(&format!("ghcr.io/o/p@{d}")).unwrap();
        assert_eq!(r.target, Target::Digest(d));
        assert!(Reference::parse("ghcr.io/O/p").is_err());
        assert!(Reference::parse("ghcr.io/o/p:").is_err());
        assert!(Reference::parse("ghcr.io/o/p@sha256:12").is_err());
    }

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost:80"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("registry.example.com:5000"));
        assert!(!is_loopback("10.0.0.1"));
    }
}
