//! buildpack.toml and package.toml decoding and messages, labels against pack's fixtures, stacks, composite checks.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use cnbpkg::descriptor::*;
use cnbpkg::target::{Distro, Target};

fn bp(text: &str) -> cnbpkg::Result<(BuildpackDescriptor, Vec<String>)> {
    parse_buildpack_toml(Path::new("bp/buildpack.toml"), text)
}

fn bp_err(text: &str) -> String {
    bp(text).unwrap_err().to_string()
}

#[test]
fn buildpack_toml_basics() {
    let (d, w) = bp(r#"
api = "v0.10"
[buildpack]
id = "my/bp"
version = "1.0.0"
name = "My"
exec-env = ["build"]
clear-env = true
[[buildpack.licenses]]
type = "MIT"
[[targets]]
os = "linux"
arch = "arm"
variant = "v7"
path = "arm-bins"
[[targets.distros]]
name = "ubuntu"
version = "22.04"
"#)
    .unwrap();
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(d.api, "0.10");
    assert_eq!(d.kind, ModuleKind::Buildpack);
    assert_eq!(d.info.full_name(), "my/bp@1.0.0");
    assert_eq!(d.info.escaped_id(), "my_bp");
    assert!(d.info.has("exec-env") && !d.info.has("homepage"));
    assert_eq!(d.targets[0].path.as_deref(), Some("arm-bins"));
    assert_eq!(
        d.targets[0].distros,
        vec![Distro {
            name: "ubuntu".into(),
            version: "22.04".into()
        }]
    );
    assert_eq!(
        buildpackage_metadata_label(&d.info, Some(&[])),
        r#"{"id":"my/bp","name":"My","version":"1.0.0","exec-env":["build"],"licenses":[{"Type":"MIT","URI":""}],"clear-env":true,"stacks":[]}"#
    );
    // The layers label never carries targets.path.
    let mut l = LayersLabel::new();
    l.insert(&d, "sha256:00");
    assert_eq!(
        l.to_json(),
        r#"{"my/bp":{"1.0.0":{"api":"0.10","targets":[{"os":"linux","arch":"arm","variant":"v7","distros":[{"name":"ubuntu","version":"22.04"}]}],"layerDiffID":"sha256:00","name":"My"}}}"#
    );

    let (d, _) = bp("[buildpack]\nid = \"a\"\nversion = \"1\"\n").unwrap();
    assert_eq!(d.api, "0.1");
    assert_eq!(
        bp("api = \"0.02\"\n[buildpack]\nid = \"a\"\nversion = \"1\"\n")
            .unwrap()
            .0
            .api,
        "0.2"
    );
}

#[test]
fn buildpack_toml_errors() {
    assert_eq!(
        bp_err("[buildpack]\nversion = \"1\"\n"),
        "bp/buildpack.toml: 'buildpack.id' is required"
    );
    assert_eq!(
        bp_err("[buildpack]\nid = \"a\"\n"),
        "bp/buildpack.toml: 'buildpack.version' is required"
    );
    assert_eq!(
        bp_err("[extension]\nid = \"a\"\n"),
        "bp/buildpack.toml: 'extension.version' is required"
    );
    let both = "[buildpack]\nid = \"a\"\nversion = \"1\"\n[[stacks]]\nid = \"s\"\n[[order]]\n[[order.group]]\nid = \"b\"\nversion = \"2\"\n";
    assert_eq!(
        bp_err(both),
        "bp/buildpack.toml: buildpack 'a@1': cannot have both 'targets'/'stacks' and an 'order' defined"
    );
    let both = "[buildpack]\nid = \"a\"\nversion = \"1\"\n[[targets]]\nos = \"linux\"\n[[order]]\n[[order.group]]\nid = \"b\"\nversion = \"2\"\n";
    assert!(bp_err(both).contains("cannot have both 'targets'/'stacks' and an 'order' defined"));
    assert_eq!(
        bp_err("api = \"1\"\n[buildpack]\nid = \"a\"\nversion = \"1\"\n"),
        "bp/buildpack.toml: decoding buildpack.toml: invalid api version '1': could not parse '1' as version"
    );
    let e = bp_err("[buildpack\nid = 1");
    assert!(
        e.starts_with("bp/buildpack.toml: decoding buildpack.toml: ") && !e.contains('\n'),
        "{e}"
    );
    // Spec-style exec-env tables cannot decode into pack's string list.
    assert!(bp_err(
        "[buildpack]\nid = \"a\"\nversion = \"1\"\n[[buildpack.exec-env]]\nname = \"x\"\n"
    )
    .contains("decoding"));
}

#[test]
fn unknown_keys_warn_like_pack() {
    // pack:pkg/buildpack/buildpack_test.go "there are wrong things in the file".
    let (d, w) = bp(r#"
api = "0.3"

[buildpack]
id = "bp.one"
version = "1.2.3"
homepage = "http://geocities.com/cool-bp"
sbom-formats = ["this should not warn"]
clear-env = true

[[targets]]
os = "some-os"
arch = "some-arch"
variant = "some-arch-variant"
[[targets.distributions]]
name = "some-distro-name"
version = "some-distro-version"
[[targets.distros]]
name = "some-distro-name"
versions = ["some-distro-version"]

[metadata]
this-key = "is totally allowed and should not warn"
"#)
    .unwrap();
    assert_eq!(
        d.targets[0].distros,
        vec![Distro {
            name: "some-distro-name".into(),
            version: String::new()
        }]
    );
    assert_eq!(
        w[0],
        "Ignoring unexpected key(s) in descriptor for buildpack bp.one: targets.distributions, targets.distributions.name, targets.distributions.version, targets.distros.versions"
    );
    assert!(
        w[1].contains("[[targets.distributions]] is not read"),
        "{w:?}"
    );
    assert!(
        w[2].contains("'versions' in [[targets.distros]] is not read"),
        "{w:?}"
    );
    assert_eq!(w.len(), 3);

    // Document order, escaped ID, quoting.
    let (_, w) =
        bp("[buildpack]\nid = \"a/b\"\nversion = \"1\"\nzzz = 1\n[foo]\n\"x.y\" = 2\n").unwrap();
    assert_eq!(w, vec!["Ignoring unexpected key(s) in descriptor for buildpack a_b: buildpack.zzz, foo, foo.\"x.y\""]);
    // Legacy keys pack decodes silently; [[stacks]] is not deprecated before API 0.10.
    let (d, w) = bp(
        "WithLinuxBuild = true\n[buildpack]\nid = \"a\"\nversion = \"1\"\n[[stacks]]\nid = \"*\"\n",
    )
    .unwrap();
    assert!(d.with_linux_build);
    assert!(w.is_empty(), "{w:?}");
    // From API 0.10 on, [[stacks]] without [[targets]] warns, naming the id as written.
    let (_, w) =
        bp("api = \"0.10\"\n[buildpack]\nid = \"a/b\"\nversion = \"1\"\n[[stacks]]\nid = \"*\"\n")
            .unwrap();
    assert_eq!(w.len(), 1);
    assert!(w[0].contains("[[stacks]] is deprecated"), "{w:?}");
    assert!(w[0].contains("buildpack a/b uses API 0.10"), "{w:?}");
    // Extensions: stacks/order are unknown there, sbom-formats is not exempt.
    let (d, w) =
        bp("[extension]\nid = \"e\"\nversion = \"1\"\nsbom-formats = []\n[[order]]\n").unwrap();
    assert_eq!(d.kind, ModuleKind::Extension);
    assert!(d.order.is_empty());
    assert_eq!(w, vec!["Ignoring unexpected key(s) in descriptor for extension e: extension.sbom-formats, order"]);
}

fn pkg(text: &str) -> cnbpkg::Result<(PackageConfig, Vec<String>)> {
    parse_package_toml(Path::new("p/package.toml"), text)
}

#[test]
fn package_toml() {
    let (c, w) = pkg("[buildpack]\nuri = \".\"\n[[dependencies]]\nuri = \"../dep.cnb\"\n[[targets]]\nos = \"linux\"\narch = \"amd64\"\n").unwrap();
    assert!(w.is_empty());
    assert_eq!(c.buildpack_uri, ".");
    assert_eq!(c.kind, ModuleKind::Buildpack);
    assert_eq!(
        c.dependencies,
        vec![Dependency {
            uri: "../dep.cnb".into()
        }]
    );
    assert_eq!(
        c.targets,
        vec![Target {
            os: "linux".into(),
            arch: "amd64".into(),
            ..Default::default()
        }]
    );
    assert_eq!(c.platform_os, None);
    check_platform_os_with_targets(&c, true).unwrap();

    let (c, _) = pkg("[extension]\nuri = \"ext\"\n").unwrap();
    assert_eq!(
        (c.kind, c.buildpack_uri.as_str()),
        (ModuleKind::Extension, "ext")
    );

    let d = PackageConfig::default_for_path(None);
    assert_eq!((d.buildpack_uri.as_str(), d.os()), (".", "linux"));

    let e = |t: &str| pkg(t).unwrap_err().to_string();
    assert_eq!(
        e("[platform]\nos = \"linux\"\n"),
        "p/package.toml: missing 'buildpack.uri' configuration"
    );
    assert_eq!(
        e("[buildpack]\nuri = \".\"\n[platform]\nos = \"darwin\"\n"),
        "p/package.toml: invalid 'platform.os' configuration: only ['linux', 'windows'] is permitted, found 'darwin'"
    );
    assert_eq!(
        e("[buildpack]\nuri = \".\"\n[[dependencies]]\nuri = \"a\"\nimage = \"b\"\n"),
        "p/package.toml: dependency configured with both 'uri' and 'image'"
    );
    assert_eq!(
        e("[buildpack]\nuri = \".\"\nfoo = 1\n"),
        "unknown configuration element 'buildpack.foo' in 'p/package.toml'"
    );
    assert_eq!(
        e("[buildpack]\nuri = \".\"\n[nope]\na = 1\n[[dependencies]]\nuri = \"x\"\nbad = 2\n"),
        "unknown configuration elements 'nope', 'dependencies.bad' in 'p/package.toml'"
    );
    // targets.path belongs to buildpack.toml only.
    assert!(
        e("[buildpack]\nuri = \".\"\n[[targets]]\nos = \"linux\"\npath = \"x\"\n")
            .contains("'targets.path'")
    );

    let (c, w) = pkg("[buildpack]\nuri = \".\"\n[platform]\nos = \"windows\"\n[[dependencies]]\nimage = \"reg/x:1\"\n").unwrap();
    assert_eq!(c.platform_os.as_deref(), Some("windows"));
    assert_eq!(c.dependencies[0].uri, "docker://reg/x:1");
    assert_eq!(
        w,
        vec![
            "'platform.os' field in package.toml will be deprecated, use new '--target' flag or `targets` field in buildpack.toml to set the platform.",
            "The 'image' key is deprecated. Use 'uri=\"docker://...\"' instead."
        ]
    );
    let err = check_platform_os_with_targets(&c, true).unwrap_err();
    assert!(err.is_usage());
    assert!(err
        .to_string()
        .starts_with("'platform.os' and '--target' flag can not be used in conjunction"));
    check_platform_os_with_targets(&c, false).unwrap();
}

#[test]
fn read_files_from_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("buildpack.toml");
    std::fs::write(&p, "[buildpack]\nid = \"a\"\nversion = \"1\"\n").unwrap();
    assert_eq!(read_buildpack_toml(&p).unwrap().0.info.id, "a");
    let q = tmp.path().join("package.toml");
    std::fs::write(&q, "[buildpack]\nuri = \".\"\n").unwrap();
    assert_eq!(read_package_toml(&q).unwrap().0.buildpack_uri, ".");
    assert!(read_package_toml(&tmp.path().join("missing.toml"))
        .unwrap_err()
        .to_string()
        .contains("missing.toml"));
}

// ---- fixtures ------------------------------------------------------------------------------

fn cnb_labels(name: &str) -> BTreeMap<String, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/fixtures/pack")
        .join(name);
    let mut entries: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut ar = tar::Archive::new(std::fs::File::open(path).unwrap());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let n = e
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_start_matches('/')
            .to_string();
        let mut buf = Vec::new();
        e.read_to_end(&mut buf).unwrap();
        entries.insert(n, buf);
    }
    let blob = |digest: &str| {
        entries[&format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))].clone()
    };
    let index: serde_json::Value = serde_json::from_slice(&entries["index.json"]).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&blob(manifest["config"]["digest"].as_str().unwrap())).unwrap();
    serde_json::from_value(config["config"]["Labels"].clone()).unwrap()
}

#[test]
fn fixture_labels_round_trip_byte_for_byte() {
    for (fixture, layers_key) in [
        ("hello-universe.cnb", BUILDPACK_LAYERS_LABEL),
        ("hello-universe-oci.cnb", BUILDPACK_LAYERS_LABEL),
        ("tree-extension.cnb", EXTENSION_LAYERS_LABEL),
    ] {
        let labels = cnb_labels(fixture);
        let layers = &labels[layers_key];
        assert_eq!(
            &LayersLabel::parse(layers).unwrap().to_json(),
            layers,
            "{fixture}"
        );
        let meta = &labels[METADATA_LABEL];
        assert_eq!(
            &PackageMetadata::parse(meta).unwrap().to_json(),
            meta,
            "{fixture}"
        );
    }
    let labels = cnb_labels("hello-universe.cnb");
    let m = PackageMetadata::parse(&labels[METADATA_LABEL]).unwrap();
    assert_eq!(
        buildpackage_metadata_label(&m.info, m.stacks.as_deref()),
        r#"{"id":"io.buildpacks.samples.hello-universe","version":"0.0.1","stacks":[{"id":"io.buildpacks.samples.stacks.bionic"},{"id":"io.buildpacks.samples.stacks.alpine"}]}"#
    );
    let ext = PackageMetadata::parse(&cnb_labels("tree-extension.cnb")[METADATA_LABEL]).unwrap();
    assert!(ext.stacks.is_none());
    assert!(ext.to_json().ends_with(r#""stacks":null}"#));
}

#[test]
fn hello_universe_labels_rebuilt_from_descriptors() {
    // Rebuild pack's labels from buildpack.toml text matching the fixture and compare bytes.
    let stacks = "[[stacks]]\nid = \"io.buildpacks.samples.stacks.bionic\"\n[[stacks]]\nid = \"io.buildpacks.samples.stacks.alpine\"\n";
    let leaf = |id: &str| {
        bp(&format!(
            "api = \"0.2\"\n[buildpack]\nid = \"{id}\"\nversion = \"0.0.1\"\n{stacks}"
        ))
        .unwrap()
        .0
    };
    let world = leaf("io.buildpacks.samples.hello-world");
    let moon = leaf("io.buildpacks.samples.hello-moon");
    let universe = bp("api = \"0.2\"\n[buildpack]\nid = \"io.buildpacks.samples.hello-universe\"\nversion = \"0.0.1\"\n[[order]]\n[[order.group]]\nid = \"io.buildpacks.samples.hello-world\"\nversion = \"0.0.1\"\n[[order.group]]\nid = \"io.buildpacks.samples.hello-moon\"\nversion = \"0.0.1\"\n").unwrap().0;
    let labels = cnb_labels("hello-universe.cnb");
    let orig = LayersLabel::parse(&labels[BUILDPACK_LAYERS_LABEL]).unwrap();
    let diff = |d: &BuildpackDescriptor| {
        orig.get(&d.info.id, &d.info.version)
            .unwrap()
            .layer_diff_id
            .clone()
    };
    let mut l = LayersLabel::new();
    for d in [&universe, &world, &moon] {
        l.insert(d, &diff(d));
    }
    assert_eq!(l.to_json(), labels[BUILDPACK_LAYERS_LABEL]);
    let stacks = validate_package(&universe, &[world.clone(), moon.clone()]).unwrap();
    assert_eq!(
        buildpackage_metadata_label(&universe.info, stacks.as_deref()),
        labels[METADATA_LABEL]
    );
}

#[test]
fn go_escaping_and_omitempty() {
    let info = ModuleInfo {
        id: "a<b>&c".into(),
        homepage: "https://x?a=1&b=2".into(),
        keywords: vec!["k".into()],
        ..Default::default()
    };
    assert_eq!(
        buildpackage_metadata_label(&info, None),
        r#"{"id":"a\u003cb\u003e\u0026c","homepage":"https://x?a=1\u0026b=2","keywords":["k"],"stacks":null}"#
    );
    // An order group entry keeps every ModuleInfo field plus optional, in Go's order.
    let label = r#"{"c":{"1":{"api":"0.9","order":[{"group":[{"id":"a","name":"A","version":"1","optional":true}]}],"layerDiffID":"sha256:1","homepage":"h","name":"C"}}}"#;
    assert_eq!(LayersLabel::parse(label).unwrap().to_json(), label);
}

fn stack(id: &str, mixins: &[&str]) -> Stack {
    Stack {
        id: id.into(),
        mixins: mixins.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn merge_compatible_examples() {
    // The examples in pack:internal/stack/merge.go.
    assert_eq!(
        merge_compatible(
            &[stack("stack1", &["build:mixinA", "mixinB", "run:mixinC"])],
            &[stack("stack1", &["build:mixinA", "run:mixinC"])]
        ),
        vec![stack("stack1", &["build:mixinA", "mixinB", "run:mixinC"])]
    );
    assert_eq!(
        merge_compatible(
            &[
                stack("stack1", &["build:mixinA"]),
                stack("stack2", &["mixinA"])
            ],
            &[
                stack("stack1", &["run:mixinC"]),
                stack("stack2", &["mixinA"])
            ]
        ),
        vec![
            stack("stack1", &["build:mixinA", "run:mixinC"]),
            stack("stack2", &["mixinA"])
        ]
    );
    assert_eq!(
        merge_compatible(
            &[
                stack("stack1", &["build:mixinA"]),
                stack("stack2", &["mixinA"])
            ],
            &[stack("stack2", &["mixinA", "run:mixinB"])]
        ),
        vec![stack("stack2", &["mixinA", "run:mixinB"])]
    );
    assert_eq!(
        merge_compatible(
            &[stack("stack1", &["build:mixinA"])],
            &[stack("stack2", &["mixinA"])]
        ),
        vec![]
    );
    let b = vec![
        stack("stack1", &["build:mixinA"]),
        stack("stack2", &["mixinA", "run:mixinB"]),
    ];
    assert_eq!(
        merge_compatible(&[stack("*", &[]), stack("stack1", &["build:mixinC"])], &b),
        b
    );
    assert_eq!(
        merge_compatible(&b, &[stack("*", &[]), stack("stack1", &["build:mixinC"])]),
        b
    );
    assert_eq!(
        merge_compatible(
            &[stack("*", &[]), stack("stack1", &[])],
            &[stack("*", &[]), stack("stack1", &["x"])]
        ),
        vec![stack("*", &[])]
    );
}

fn desc(
    id: &str,
    version: &str,
    stacks: &[Stack],
    order: &[&[(&str, &str)]],
) -> BuildpackDescriptor {
    BuildpackDescriptor {
        api: "0.10".into(),
        info: ModuleInfo {
            id: id.into(),
            version: version.into(),
            ..Default::default()
        },
        stacks: stacks.to_vec(),
        order: order
            .iter()
            .map(|g| OrderEntry {
                group: g
                    .iter()
                    .map(|(i, v)| ModuleRef {
                        info: ModuleInfo {
                            id: i.to_string(),
                            version: v.to_string(),
                            ..Default::default()
                        },
                        optional: false,
                    })
                    .collect(),
            })
            .collect(),
        ..Default::default()
    }
}

#[test]
fn resolve_stacks_and_composite_checks() {
    // Targets-only buildpacks count as "*" (pack#2047).
    let a = desc("a", "1", &[], &[]);
    assert_eq!(resolve_stacks(&a, &[]), vec![stack("*", &[])]);
    let main = desc("m", "1", &[], &[&[("a", "1"), ("b", "2")]]);
    let b = desc("b", "2", &[stack("s1", &["x"]), stack("s2", &[])], &[]);
    assert_eq!(
        resolve_stacks(&main, &[a.clone(), b.clone()]),
        vec![stack("s1", &["x"]), stack("s2", &[])]
    );
    assert_eq!(
        validate_package(&main, &[a.clone(), b.clone()])
            .unwrap()
            .unwrap()
            .len(),
        2
    );

    let c = desc("c", "3", &[stack("other", &[])], &[]);
    let main2 = desc("m", "1", &[], &[&[("b", "2"), ("c", "3")]]);
    assert_eq!(
        validate_package(&main2, &[b.clone(), c])
            .unwrap_err()
            .to_string(),
        "no compatible stacks among provided buildpacks"
    );
    assert_eq!(
        validate_composite(&main, std::slice::from_ref(&a))
            .unwrap_err()
            .to_string(),
        "buildpack 'm@1' references buildpack 'b@2' which is not present"
    );
    let noversion = desc("m", "1", &[], &[&[("a", "")]]);
    assert_eq!(
        validate_composite(&noversion, std::slice::from_ref(&a)).unwrap_err().to_string(),
        "buildpack 'm@1' must specify a version when referencing buildpack 'a': buildpack 'a' does not have a version defined"
    );
    let only_a = desc("m", "1", &[], &[&[("a", "1")]]);
    assert_eq!(
        validate_composite(&only_a, &[a.clone(), b.clone()])
            .unwrap_err()
            .to_string(),
        "buildpack 'b@2' is not used by buildpack 'm@1'"
    );
    // Nested composites: references from dependencies count.
    let inner = desc("inner", "1", &[], &[&[("b", "2")]]);
    let outer = desc("m", "1", &[], &[&[("inner", "1"), ("a", "1")]]);
    validate_composite(&outer, &[inner, a, b]).unwrap();
    // Extensions have no stacks.
    let mut ext = desc("e", "1", &[], &[]);
    ext.kind = ModuleKind::Extension;
    assert_eq!(validate_package(&ext, &[]).unwrap(), None);
}
