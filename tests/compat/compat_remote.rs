//! Remote buildpacks (images, Buildpack Registry ids, downloads) are listed together in one
//! error, each with the command that fetches it; following that advice against a real registry
//! gives a package.

use std::path::Path;

use crate::support::registry::Registry;
use crate::support::*;

/// A composite `meta` buildpack ordering `deps` (id, version) with package.toml `dependencies`.
fn composite(dir: &Path, deps: &[(&str, &str)], dependency_lines: &str) {
    let group: String = deps
        .iter()
        .map(|(id, v)| format!("[[order.group]]\nid = \"{id}\"\nversion = \"{v}\"\n"))
        .collect();
    write_file(
        &dir.join("meta/buildpack.toml"),
        &format!("api = \"0.10\"\n[buildpack]\nid = \"test/meta\"\nversion = \"1.0.0\"\n\n[[order]]\n{group}"),
        0o644,
    );
    write_file(
        &dir.join("package.toml"),
        &format!("[buildpack]\nuri = \"meta\"\n\n{dependency_lines}\n[[targets]]\nos = \"linux\"\narch = \"amd64\"\n[[targets]]\nos = \"linux\"\narch = \"arm64\"\n"),
        0o644,
    );
}

/// `line` with the default store's path (under a fresh home) as `HOME/.cache/cnbpkg/store`.
fn without_store_path(line: &str) -> String {
    match (line.find("(the store /"), line.find("/.cache/cnbpkg/store")) {
        (Some(start), Some(end)) if start < end => {
            format!("{}(the store HOME{}", &line[..start], &line[end..])
        }
        _ => line.to_string(),
    }
}

#[test]
fn every_remote_dependency_is_listed_in_one_error() {
    let d = tempfile::tempdir().unwrap();
    minimal_buildpack(&d.path().join("local"), "test/local", "1.0.0", "");
    composite(
        d.path(),
        &[("test/local", "1.0.0")],
        "[[dependencies]]\nuri = \"local\"\n\
         [[dependencies]]\nuri = \"docker://gcr.io/paketo-buildpacks/node-engine:1.2.3\"\n\
         [[dependencies]]\nuri = \"urn:cnb:registry:heroku/procfile@1.0.0\"\n\
         [[dependencies]]\nuri = \"https://example.com/dl/bp-1.0.tgz?x=1&y=2\"\n\
         [[dependencies]]\nuri = \"gcr.io/paketo-buildpacks/npm-install:2.0.0\"\n\
         [[dependencies]]\nimage = \"docker.io/acme/yarn:3\"\n",
    );
    let stderr = fails(
        cnbpkg_in(
            d.path(),
            ["buildpack", "package", "x.cnb", "--config", "package.toml"],
        ),
        1,
    );
    // pack's warning for the `image` key, then one error: the images the store lacks are
    // fetched by one command (into the default store, which is named).
    let errors: Vec<String> = stderr.lines().map(without_store_path).collect();
    assert_eq!(
        errors,
        vec![
            "warning: The 'image' key is deprecated. Use 'uri=\"docker://...\"' instead.",
            "error: package.toml: 5 buildpacks are not on this machine and cnbpkg never downloads while packaging:",
            "  dependency 'urn:cnb:registry:heroku/procfile@1.0.0' is a Buildpack Registry id: look up the image it stands for (the registry index at https://github.com/buildpacks/registry-index), run `cnbpkg pull IMAGE` and give uri = \"docker://IMAGE\"",
            "  dependency 'https://example.com/dl/bp-1.0.tgz?x=1&y=2' is a download: run `curl -fL -o bp-1.0.tgz 'https://example.com/dl/bp-1.0.tgz?x=1&y=2'` and give uri = \"bp-1.0.tgz\"",
            "  dependency 'docker://gcr.io/paketo-buildpacks/node-engine:1.2.3' is image gcr.io/paketo-buildpacks/node-engine:1.2.3, not in the store",
            "  dependency 'gcr.io/paketo-buildpacks/npm-install:2.0.0' is image gcr.io/paketo-buildpacks/npm-install:2.0.0, not in the store",
            "  dependency 'docker://docker.io/acme/yarn:3' is image docker.io/acme/yarn:3, not in the store",
            "  fetch them with `cnbpkg pull gcr.io/paketo-buildpacks/node-engine:1.2.3 gcr.io/paketo-buildpacks/npm-install:2.0.0 docker.io/acme/yarn:3` (the store HOME/.cache/cnbpkg/store does not exist yet), then package again",
        ],
        "{stderr}"
    );
    assert_eq!(list(d.path()), vec!["local", "meta", "package.toml"]);
}

#[test]
fn missing_paths_stay_missing_paths_and_are_shown_as_written() {
    let d = tempfile::tempdir().unwrap();
    let work = d.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    // A missing relative directory is not mistaken for an image.
    composite(
        &work,
        &[("test/x", "1.0.0")],
        "[[dependencies]]\nuri = \"../missing\"\n",
    );
    let stderr = fails(
        cnbpkg_in(
            &work,
            ["buildpack", "package", "x.cnb", "--config", "package.toml"],
        ),
        1,
    );
    assert_eq!(stderr, "error: ../missing: no such file or directory\n");
    // The main buildpack from --path, relative to the current directory.
    let stderr = fails(
        cnbpkg_in(
            &work,
            ["buildpack", "package", "x.cnb", "--path", "../nope"],
        ),
        1,
    );
    assert_eq!(stderr, "error: ../nope: no such file or directory\n");
    // A main buildpack image is refused for what it is.
    let stderr = fails(
        cnbpkg_in(
            &work,
            [
                "buildpack",
                "package",
                "x.cnb",
                "--path",
                "docker://gcr.io/a/b:1",
            ],
        ),
        1,
    );
    assert!(
        stderr.contains("buildpack 'docker://gcr.io/a/b:1' is an image; the buildpack itself must be a directory or a .tgz/.tar archive"),
        "{stderr}"
    );
    // A main buildpack download: the command, then --path (there is no package.toml).
    let stderr = fails(
        cnbpkg_in(
            &work,
            [
                "buildpack",
                "package",
                "x.cnb",
                "--path",
                "https://example.com/r/bp.tgz",
            ],
        ),
        1,
    );
    assert!(
        stderr.ends_with("buildpack 'https://example.com/r/bp.tgz' is a download: run `curl -fL -o bp.tgz https://example.com/r/bp.tgz` and give --path bp.tgz\n"),
        "{stderr}"
    );
}

#[test]
fn fetching_as_advised_gives_a_package() {
    let reg = Registry::start_plain();
    let d = tempfile::tempdir().unwrap();
    // A multi-platform dependency package in a real registry.
    minimal_buildpack(
        &d.path().join("dep"),
        "test/dep",
        "1.0.0",
        "\n[[targets]]\nos = \"linux\"\narch = \"amd64\"\n[[targets]]\nos = \"linux\"\narch = \"arm64\"\n",
    );
    let dep_cnb = d.path().join("dep.cnb");
    ok(cnbpkg([
        "buildpack",
        "package",
        dep_cnb.to_str().unwrap(),
        "--path",
        d.path().join("dep").to_str().unwrap(),
    ]));
    let reference = format!("{}/deps/dep:1", reg.host());
    ok(cnbpkg([
        "push",
        dep_cnb.to_str().unwrap(),
        &reference,
        "--insecure",
    ]));

    let work = d.path().join("work");
    composite(
        &work,
        &[("test/dep", "1.0.0")],
        &format!("[[dependencies]]\nuri = \"docker://{reference}\"\n"),
    );
    // One home for every step: the advised command fills its default store.
    let home = child::fresh_home();
    let in_work =
        |args: &[&str]| child::output(child::isolated(&home).current_dir(&work).args(args));
    let package = ["buildpack", "package", "x.cnb", "--config", "package.toml"];
    let stderr = fails(in_work(&package), 1);
    // Run the advised command (plain HTTP to the local registry needs --insecure).
    let line = stderr.lines().last().unwrap_or_default();
    let command = line
        .split('`')
        .nth(1)
        .unwrap_or_else(|| panic!("no command in {stderr}"));
    let words: Vec<&str> = command.split(' ').collect();
    assert_eq!(words, ["cnbpkg", "pull", reference.as_str()], "{command}");
    ok(in_work(&["pull", "--insecure", words[2]]));
    // The same package.toml now packages, from the store.
    ok(in_work(&package));
    ok(in_work(&["verify", "x.cnb"]));
    let text = ok(in_work(&["inspect", "x.cnb"]));
    assert!(text.contains("Platform linux/amd64\n"), "{text}");
    assert!(text.contains("Platform linux/arm64\n"), "{text}");
}
