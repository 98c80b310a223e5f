//! `cnbpkg push` with references, `--tag`, `--digest-file` and `--platform` combined, against
//! the real distribution registry; skopeo reads back what every tag and digest points at.

use crate::support;
use std::path::Path;

use crate::support::registry::Registry;
use crate::support::{child, packages, skopeo_raw};
use cnbpkg::digest::Digest;

fn push(pkg: &Path, refs: &[String], extra: &[&str], home: &Path) -> child::Outcome {
    let mut args = child::push_args(pkg, &refs[0], &["--insecure"]);
    args.extend(refs[1..].iter().map(Into::into));
    args.extend(extra.iter().map(Into::into));
    child::run(args, home, &[], None)
}

fn digest_at(reference: &str) -> Digest {
    Digest::of(&skopeo_raw(reference))
}

#[test]
fn every_tag_and_digest_file_name_what_was_pushed() {
    let reg = Registry::start_plain();
    let tmp = tempfile::tempdir().unwrap();
    let pkg = packages::multi(tmp.path(), "pkg", 81, 20_000);
    let (top, _) = packages::top(&pkg);
    let arm = packages::manifests(&pkg)
        .into_iter()
        .find(|(d, _)| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.architecture == "arm64")
        })
        .unwrap()
        .0
        .digest;
    let h = reg.host();
    let file = tmp.path().join("digest");
    let file_s = file.display().to_string();
    let read = || std::fs::read_to_string(&file).unwrap();

    // One platform, two repositories, extra tags: its own manifest everywhere.
    let refs = vec![format!("{h}/c/app:arm"), format!("{h}/c2/app:arm")];
    let r = push(
        &pkg,
        &refs,
        &[
            "--platform",
            "linux/arm64",
            "--tag",
            "arm-latest",
            "--digest-file",
            &file_s,
        ],
        tmp.path(),
    );
    assert!(r.ok(), "{r}");
    for repo in ["c", "c2"] {
        for tag in ["arm", "arm-latest"] {
            assert_eq!(
                digest_at(&format!("{h}/{repo}/app:{tag}")),
                arm,
                "{repo}:{tag}"
            );
        }
    }
    assert_eq!(read(), format!("{arm}\n"));

    // Every platform chosen: the package's own index.
    let r = push(
        &pkg,
        &[format!("{h}/e/app:both")],
        &[
            "--platform",
            "linux/amd64",
            "--platform",
            "linux/arm64",
            "--digest-file",
            &file_s,
        ],
        tmp.path(),
    );
    assert!(r.ok(), "{r}");
    assert_eq!(digest_at(&format!("{h}/e/app:both")), top.digest);
    assert_eq!(read(), format!("{}\n", top.digest));

    // By digest, plus a tag.
    let r = push(
        &pkg,
        &[format!("{h}/d/app@{}", top.digest)],
        &["--tag", "t", "--digest-file", &file_s],
        tmp.path(),
    );
    assert!(r.ok(), "{r}");
    assert_eq!(digest_at(&format!("{h}/d/app@{}", top.digest)), top.digest);
    assert_eq!(digest_at(&format!("{h}/d/app:t")), top.digest);
    assert_eq!(read(), format!("{}\n", top.digest));

    // The arm64 manifest by its digest, chosen with --platform.
    let r = push(
        &pkg,
        &[format!("{h}/f/app@{arm}")],
        &[
            "--platform",
            "linux/arm64",
            "--tag",
            "arm",
            "--digest-file",
            &file_s,
        ],
        tmp.path(),
    );
    assert!(r.ok(), "{r}");
    assert_eq!(digest_at(&format!("{h}/f/app@{arm}")), arm);
    assert_eq!(digest_at(&format!("{h}/f/app:arm")), arm);
    assert_eq!(read(), format!("{arm}\n"));

    // A digest that is not what would be pushed: refused before sending, file untouched.
    let r = push(
        &pkg,
        &[format!("{h}/g/app@{arm}"), format!("{h}/g/app:x")],
        &["--digest-file", &file_s],
        tmp.path(),
    );
    assert_eq!(r.code(), Some(2), "{r}");
    assert_eq!(read(), format!("{arm}\n"));
    let skopeo = support::require("skopeo", "skopeo");
    let out = std::process::Command::new(skopeo)
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{h}/g/app:x"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "g/app:x was tagged");
    // No temporary file of the digest file stays behind.
    let mut names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["digest", "pkg.cnb"]);
}
