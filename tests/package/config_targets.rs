//! `--target` parsing, distro expansion, platform root folders and `--split` naming.

use std::fs;
use std::path::{Path, PathBuf};

use cnbpkg::target::*;

fn parse(values: &[&str]) -> (cnbpkg::Result<Vec<Target>>, Vec<String>) {
    let values: Vec<String> = values.iter().map(|s| s.to_string()).collect();
    let mut w = Vec::new();
    let r = parse_target_flags_into(&values, &mut w);
    (r, w)
}

fn err(values: &[&str]) -> (String, Vec<String>) {
    let (r, w) = parse(values);
    let e = r.unwrap_err();
    assert!(e.is_usage(), "{e}");
    (e.to_string(), w)
}

fn t(os: &str, arch: &str, variant: &str, distros: &[(&str, &str)]) -> Target {
    Target {
        os: os.into(),
        arch: arch.into(),
        variant: variant.into(),
        distros: distros
            .iter()
            .map(|(n, v)| Distro {
                name: n.to_string(),
                version: v.to_string(),
            })
            .collect(),
        path: None,
    }
}

#[test]
fn simple_targets_and_commas() {
    let (r, w) = parse(&["linux/amd64", "linux/arm64,windows/amd64"]);
    assert!(w.is_empty());
    assert_eq!(
        r.unwrap(),
        vec![
            t("linux", "amd64", "", &[]),
            t("linux", "arm64", "", &[]),
            t("windows", "amd64", "", &[])
        ]
    );
    let (ts, w) =
        parse_target_flags(&["linux/arm/v6:ubuntu@18.01;ubuntu@21.01".to_string()]).unwrap();
    assert!(w.is_empty());
    assert_eq!(
        ts,
        vec![t(
            "linux",
            "arm",
            "v6",
            &[("ubuntu", "18.01"), ("ubuntu", "21.01")]
        )]
    );
    let (ts, _) =
        parse_target_flags(&["windows/amd64:windows@10.0.20348.1970".to_string()]).unwrap();
    assert_eq!(ts[0].display(), "windows/amd64:windows@10.0.20348.1970");
    // An empty flag value gives no targets (pflag), a trailing comma an empty one.
    assert_eq!(parse(&[""]).0.unwrap(), vec![]);
    let (e, w) = err(&["linux/amd64,"]);
    assert_eq!(
        e,
        "invalid target , atleast one of [os][/arch][/archVariant] must be specified"
    );
    assert_eq!(w, vec!["os/arch must be defined"]);
}

#[test]
fn distro_messages() {
    let (r, w) = parse(&["linux/amd64:ubuntu"]);
    assert_eq!(r.unwrap(), vec![t("linux", "amd64", "", &[("ubuntu", "")])]);
    assert_eq!(
        w,
        vec!["distro with name 'ubuntu' has no specific version!"]
    );
    let (e, _) = err(&["linux/amd64:@22.04"]);
    assert_eq!(
        e,
        "distro's versions '@22.04' cannot be specified without distro's name"
    );
    let (e, _) = err(&["linux/amd64:ubuntu@22.04@24.04"]);
    assert_eq!(e, "invalid distro: ubuntu@22.04@24.04");
    let (e, _) = err(&["linux/amd64:ubuntu@22.04;"]);
    assert_eq!(
        e,
        "distro's versions '@' cannot be specified without distro's name"
    );
}

#[test]
fn platform_messages() {
    let (e, w) = err(&["linux"]);
    assert_eq!(e, "unknown target: 'linux'");
    assert_eq!(w, vec!["unknown arch "]);
    let (e, w) = err(&["linux/amd64/v9"]);
    assert_eq!(e, "unknown target: 'linux/amd64/v9'");
    assert_eq!(w, vec!["unknown variant v9"]);
    let (e, w) = err(&["lnux/amd64"]);
    assert_eq!(e, "unknown target: 'lnux/amd64'");
    assert_eq!(w, vec!["unknown os lnux, is this a typo"]);
    let (e, w) = err(&["linux/amd65"]);
    assert_eq!(e, "unknown target: 'linux/amd65'");
    assert_eq!(w, vec!["unknown arch amd65"]);
    // arm64 has no variants in pack's table.
    let (e, w) = err(&["linux/arm64/v8"]);
    assert_eq!(e, "unknown target: 'linux/arm64/v8'");
    assert_eq!(w, vec!["unknown variant v8"]);
    let (e, w) = err(&[":ubuntu@22.04"]);
    assert_eq!(e, "unknown target: ''");
    assert_eq!(
        w,
        vec![
            "adding distros ubuntu@22.04 without [os][/arch][/variant]",
            "os/arch must be defined",
            "unknown os , is this a typo"
        ]
    );
    for ok in [
        "linux/arm/v7",
        "linux/amd64/v3",
        "windows/arm64",
        "darwin/arm64",
        "js/wasm/satconv",
        "linux/386/sse2",
    ] {
        assert!(parse(&[ok]).0.is_ok(), "{ok}");
    }
}

#[test]
fn expansion() {
    let ts = vec![
        t(
            "linux",
            "arm",
            "v6",
            &[("ubuntu", "18.01"), ("ubuntu", "21.01")],
        ),
        t("linux", "amd64", "", &[]),
    ];
    let e = expand_distros(&ts);
    assert_eq!(e.len(), 3);
    assert_eq!(e[0].display(), "linux/arm/v6:ubuntu@18.01");
    assert_eq!(
        e[1].values_as_slice(),
        vec!["linux", "arm", "v6", "ubuntu@21.01"]
    );
    assert_eq!(e[2].distro, None);
}

fn mkdirs(root: &Path, dirs: &[&str]) {
    for d in dirs {
        fs::create_dir_all(root.join(d)).unwrap();
    }
}

fn one(s: &str) -> ExpandedTarget {
    let (ts, _) = parse_target_flags(&[s.to_string()]).unwrap();
    expand_distros(&ts).remove(0)
}

fn root_of(root: &Path, target: &str) -> (PathBuf, bool) {
    let r = platform_root(root, &one(target)).unwrap();
    (r.dir, r.is_root)
}

#[test]
fn platform_root_descends_as_deep_as_folders_exist() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    mkdirs(
        root,
        &[
            "linux/amd64/bin",
            "linux/arm/v6/ubuntu@18.01/bin",
            "windows/amd64/windows@10.0.20348.1970/bin",
        ],
    );
    fs::write(root.join("buildpack.toml"), "").unwrap();
    assert_eq!(
        root_of(root, "linux/amd64"),
        (root.join("linux/amd64"), false)
    );
    assert_eq!(
        root_of(root, "linux/arm/v6:ubuntu@18.01"),
        (root.join("linux/arm/v6/ubuntu@18.01"), false)
    );
    // Subsets: only as deep as folders exist.
    assert_eq!(
        root_of(root, "linux/arm/v6:ubuntu@21.01"),
        (root.join("linux/arm/v6"), false)
    );
    assert_eq!(root_of(root, "linux/arm64"), (root.join("linux"), false));
    assert_eq!(
        root_of(root, "linux/amd64:ubuntu@22.04"),
        (root.join("linux/amd64"), false)
    );
    assert_eq!(
        root_of(root, "windows/amd64:windows@10.0.20348.1970"),
        (root.join("windows/amd64/windows@10.0.20348.1970"), false)
    );
    // No OS folder: the root.
    assert_eq!(root_of(root, "darwin/arm64"), (root.to_path_buf(), true));
    // The default target {os: linux} also descends.
    let def = ExpandedTarget {
        os: "linux".into(),
        ..Default::default()
    };
    assert_eq!(platform_root(root, &def).unwrap().dir, root.join("linux"));
    // A file named like the OS is not a folder.
    let tmp2 = tempfile::tempdir().unwrap();
    fs::write(tmp2.path().join("linux"), "x").unwrap();
    assert!(platform_root(tmp2.path(), &def).unwrap().is_root);
    // A distro without version is looked up as `name@`.
    mkdirs(root, &["linux/arm/v7/ubuntu@"]);
    let (ts, _) = parse_target_flags(&["linux/arm/v7:ubuntu".to_string()]).unwrap();
    assert_eq!(
        platform_root(root, &expand_distros(&ts)[0]).unwrap().dir,
        root.join("linux/arm/v7/ubuntu@")
    );
}

#[cfg(unix)]
#[test]
fn platform_root_symlinks() {
    use std::os::unix::fs::symlink;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("bp");
    mkdirs(&root, &["shared/bin", "linux"]);
    // A link inside the root is fine.
    symlink("../shared", root.join("linux/amd64")).unwrap();
    assert_eq!(
        root_of(&root, "linux/amd64"),
        (root.join("linux/amd64"), false)
    );
    // A loop is an error naming the path.
    symlink("arm64", root.join("linux/arm64")).unwrap();
    let e = platform_root(&root, &one("linux/arm64"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("linux/arm64") && e.contains("symbolic link loop"),
        "{e}"
    );
    // Escaping the root through a link is an error.
    mkdirs(tmp.path(), &["outside"]);
    symlink("../../outside", root.join("linux/arm")).unwrap();
    let e = platform_root(&root, &one("linux/arm/v7"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("outside the buildpack root"), "{e}");
}

#[cfg(unix)]
#[test]
fn targets_path() {
    use std::os::unix::fs::symlink;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("bp");
    mkdirs(&root, &["dist/x86", "linux/amd64"]);
    mkdirs(tmp.path(), &["outside"]);
    let mut t = one("linux/amd64");
    t.path = Some("dist/x86".into());
    let r = platform_root(&root, &t).unwrap();
    assert_eq!((r.dir, r.is_root), (root.join("dist/x86"), false));
    t.path = Some(".".into());
    assert!(platform_root(&root, &t).unwrap().is_root);
    t.path = Some("../outside".into());
    let e = platform_root(&root, &t).unwrap_err().to_string();
    assert!(
        e.contains("targets.path '../outside'") && e.contains("outside the buildpack root"),
        "{e}"
    );
    symlink("../outside", root.join("escape")).unwrap();
    t.path = Some("escape".into());
    assert!(platform_root(&root, &t)
        .unwrap_err()
        .to_string()
        .contains("outside the buildpack root"));
    t.path = Some("missing".into());
    assert!(platform_root(&root, &t)
        .unwrap_err()
        .to_string()
        .contains("targets.path 'missing' of target 'linux/amd64' does not exist"));
    symlink("loop", root.join("loop")).unwrap();
    t.path = Some("loop".into());
    assert!(platform_root(&root, &t)
        .unwrap_err()
        .to_string()
        .contains("symbolic link loop"));
    fs::write(root.join("file"), "").unwrap();
    t.path = Some("file".into());
    assert!(platform_root(&root, &t)
        .unwrap_err()
        .to_string()
        .contains("is not a directory"));
}

#[test]
fn split_naming() {
    let e = |s: &str| one(s);
    assert_eq!(split_suffix(&e("linux/amd64")), "-linux-amd64");
    assert_eq!(
        split_suffix(&e("linux/arm/v6:ubuntu@18.01")),
        "-linux-arm-v6-ubuntu@18.01"
    );
    assert_eq!(
        split_suffix(&ExpandedTarget {
            os: "linux".into(),
            ..Default::default()
        }),
        "-linux"
    );
    let w = e("windows/amd64:windows@10.0.20348.1970");
    assert_eq!(
        split_output_path(Path::new("out/x.cnb"), &w),
        PathBuf::from("out/x-windows-amd64-windows@10.0.20348.1970.cnb")
    );
    assert_eq!(
        split_output_path(Path::new("x"), &e("linux/amd64")),
        PathBuf::from("x-linux-amd64")
    );
    assert_eq!(
        split_output_path(Path::new("a.b/x.tar.cnb"), &e("linux/amd64")),
        PathBuf::from("a.b/x.tar-linux-amd64.cnb")
    );

    // Variants and distros are kept, so these do not collide (they do in pack).
    let (ts, _) = parse_target_flags(&[
        "linux/arm/v6,linux/arm/v7,linux/arm".to_string(),
        "linux/amd64:ubuntu@22.04;ubuntu@24.04".to_string(),
    ])
    .unwrap();
    let all = expand_distros(&ts);
    validate_unique(&all).unwrap();
    let names: std::collections::BTreeSet<_> = all
        .iter()
        .map(|t| split_output_path(Path::new("x.cnb"), t))
        .collect();
    assert_eq!(names.len(), all.len());

    let dup = expand_distros(
        &parse_target_flags(&["linux/amd64,linux/amd64".to_string()])
            .unwrap()
            .0,
    );
    assert!(validate_unique(&dup)
        .unwrap_err()
        .to_string()
        .contains("more than once"));
    let clash = vec![
        ExpandedTarget {
            os: "linux".into(),
            arch: "a/b".into(),
            ..Default::default()
        },
        ExpandedTarget {
            os: "linux".into(),
            arch: "a_b".into(),
            ..Default::default()
        },
    ];
    assert!(validate_unique(&clash)
        .unwrap_err()
        .to_string()
        .contains("file name suffix '-linux-a_b'"));
}
