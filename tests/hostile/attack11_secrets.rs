//! Secrets in option values: a `user:password@` written into a push's `--from` (as into its
//! reference) is never echoed, whichever of the `--from` checks refuses it.

use crate::support::child::push_args;
use crate::support::*;

#[test]
fn credentials_written_into_from_are_not_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let package = dir.path().join("never-read.cnb");
    for (from, shown) in [
        // Another registry than the reference's: refused before anything is read.
        (
            "user:s3cr3t@127.0.0.1:1/other",
            "--from ...@127.0.0.1:1/other: blobs can only be mounted from a repository on 127.0.0.1:1",
        ),
        // No registry: the user name is read as a repository, and is not a valid one.
        (
            "User:s3cr3t@example.com",
            "--from ...@example.com: not a valid repository name",
        ),
    ] {
        let out = cnbpkg(push_args(&package, "127.0.0.1:1/repo", &["--from", from]));
        let stderr = fails(out, 2);
        assert!(!stderr.contains("s3cr3t"), "{from}: {stderr}");
        assert_eq!(stderr.trim_end(), format!("error: {shown}"), "{from}");
    }
}
