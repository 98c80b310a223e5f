//! pack's flags for publishing (`--publish`, `--format image`) are explained, not rejected
//! as unknown: cnbpkg writes files and `cnbpkg push` publishes them.

use crate::support::*;

#[test]
fn publish_and_format_image_point_at_push() {
    let d = tempfile::tempdir().unwrap();
    let bp = d.path().join("bp");
    minimal_buildpack(&bp, "test/a", "1.0.0", "");
    for flags in [&["--publish"][..], &["--format", "image"][..]] {
        let mut args = vec![
            "buildpack",
            "package",
            "x.cnb",
            "--path",
            bp.to_str().unwrap(),
        ];
        args.extend_from_slice(flags);
        let stderr = fails(cnbpkg_in(d.path(), &args), 2);
        let shown = flags.join(" ");
        assert!(
            stderr.starts_with(&format!(
                "error: {shown}: cnbpkg writes the package to a file"
            )),
            "{stderr}"
        );
        assert!(
            stderr.contains("`cnbpkg push FILE REGISTRY/REPO[:TAG]`"),
            "{stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert_eq!(list(d.path()), vec!["bp"]);
    }
    // The usual values still work and stay the ones listed in the help.
    let help = ok(cnbpkg(["buildpack", "package", "--help"]));
    assert!(help.contains("- layout: An OCI layout directory"), "{help}");
    assert!(!help.contains("- image"), "{help}");
    assert!(!help.contains("--publish"), "{help}");
}
