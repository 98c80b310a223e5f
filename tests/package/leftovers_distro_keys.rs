//! An unknown key in `[[targets.distros]]` is treated as unknown keys elsewhere in the same
//! file: an error in package.toml, a warning in buildpack.toml (as pack does).

use crate::support::*;

const DISTRO_WITH_VERSIONS: &str = "[[targets]]\nos = \"linux\"\narch = \"amd64\"\n\n\
     [[targets.distros]]\nname = \"ubuntu\"\nversions = [\"22.04\"]\n";

#[test]
fn versions_in_a_package_toml_distro_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let bp = tmp.path().join("bp");
    minimal_buildpack(&bp, "acme/distros", "1.0.0", "");
    let config = tmp.path().join("package.toml");
    write_file(
        &config,
        &format!("[buildpack]\nuri = \"bp\"\n\n{DISTRO_WITH_VERSIONS}"),
        0o644,
    );
    let out = tmp.path().join("out.cnb");
    let err = fails(
        cnbpkg([
            "buildpack".as_ref(),
            "package".as_ref(),
            out.as_os_str(),
            "--config".as_ref(),
            config.as_os_str(),
        ]),
        1,
    );
    assert!(
        err.contains("unknown configuration element 'targets.distros.versions'"),
        "{err}"
    );
    assert!(err.contains("package.toml"), "{err}");
    assert!(!out.exists());
}

#[test]
fn versions_in_a_buildpack_toml_distro_is_warned_about() {
    let tmp = tempfile::tempdir().unwrap();
    let bp = tmp.path().join("bp");
    minimal_buildpack(&bp, "acme/distros", "1.0.0", DISTRO_WITH_VERSIONS);
    let out = tmp.path().join("out.cnb");
    let o = cnbpkg([
        "buildpack".as_ref(),
        "package".as_ref(),
        out.as_os_str(),
        "--path".as_ref(),
        bp.as_os_str(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    ok(o);
    assert!(err.contains("targets.distros.versions"), "{err}");
    assert!(
        err.contains("'versions' in [[targets.distros]] is not read"),
        "{err}"
    );
}
