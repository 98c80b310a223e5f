//! The commands cnbpkg advises for remote dependencies are copied into shells: a hostile
//! `uri` in package.toml must reach the advised command as one quoted word, never as shell
//! syntax.

use std::process::Command;

use crate::support::*;

#[test]
fn advised_commands_quote_hostile_uris() {
    let d = tempfile::tempdir().unwrap();
    let image = "docker://x/y:1;touch pwned-image";
    let valid_image = "docker://x/y:1";
    let download = "https://e.com/a'b;$(touch pwned-download).tgz";
    // The store is named in the advised pull command: a hostile path is one word too.
    let store = "st'ore;$(touch pwned-store)";
    write_file(
        &d.path().join("meta/buildpack.toml"),
        "api = \"0.10\"\n[buildpack]\nid = \"test/meta\"\nversion = \"1.0.0\"\n\n[[order]]\n[[order.group]]\nid = \"x/y\"\nversion = \"1\"\n",
        0o644,
    );
    write_file(
        &d.path().join("package.toml"),
        &format!(
            "[buildpack]\nuri = \"meta\"\n[[dependencies]]\nuri = {image:?}\n[[dependencies]]\nuri = {valid_image:?}\n[[dependencies]]\nuri = {download:?}\n"
        ),
        0o644,
    );
    let stderr = fails(
        cnbpkg_in(
            d.path(),
            [
                "buildpack",
                "package",
                "o.cnb",
                "--config",
                "package.toml",
                "--store",
                store,
            ],
        ),
        1,
    );
    // Each advised command, with its program swapped for printf, prints its words one a line.
    let commands: Vec<&str> = stderr
        .lines()
        .filter_map(|l| {
            l.split_once("run `")
                .or_else(|| l.split_once("with `"))
                .map(|(_, rest)| rest)
        })
        .filter_map(|rest| rest.split_once('`').map(|(cmd, _)| cmd))
        .collect();
    assert_eq!(commands.len(), 2, "{stderr}");
    let mut words = Vec::new();
    for cmd in commands {
        let (program, args) = cmd.split_once(' ').unwrap();
        assert!(["cnbpkg", "curl"].contains(&program), "{cmd}");
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s\\n' {args}"))
            .current_dir(d.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{cmd}: {out:?}");
        words.extend(
            String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(str::to_string),
        );
    }
    // An invalid reference is refused as one, with no command to copy.
    assert!(
        stderr.contains(&format!(
            "dependency '{image}' is not a valid image reference"
        )),
        "{stderr}"
    );
    assert!(
        !words.iter().any(|w| w.contains("pwned-image")),
        "{words:?}"
    );
    assert!(words.iter().any(|w| w == "docker.io/x/y:1"), "{words:?}");
    assert!(words.iter().any(|w| w == store), "{words:?}");
    assert!(words.iter().any(|w| w == download), "{words:?}");
    for name in ["pwned-image", "pwned-download", "pwned-store"] {
        assert!(!d.path().join(name).exists(), "{name}");
    }
    assert_eq!(list(d.path()), ["meta", "package.toml"]);
}
