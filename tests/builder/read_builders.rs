//! `inspect` and `verify` on builders: a builder-shaped layout written by hand (pack's layers and
//! labels), sound and with each flaw verify must report; the CLI's text and JSON.

use crate::support::builder::{builder_shaped, Flaw, ARCHES};
use crate::support::{cnbpkg, ok};

#[test]
fn verify_accepts_a_sound_builder() {
    let dir = tempfile::tempdir().unwrap();
    let b = builder_shaped(dir.path(), "b", Flaw::None);
    let report = cnbpkg::verify::verify(&b).unwrap();
    assert!(report.is_ok(), "{:?}", report.defects);
    assert_eq!(report.images, 2);
    assert_eq!(report.platforms, ["linux/amd64", "linux/arm64"]);
    ok(cnbpkg(["verify".as_ref(), b.as_os_str()]));
}

#[test]
fn verify_reports_each_broken_builder_invariant() {
    let table = [
        (Flaw::MissingExporter, "lacks /cnb/lifecycle/exporter"),
        (Flaw::ForeignDiffId, "example/a@1.0.0 points at"),
        (
            Flaw::UnknownOrderEntry,
            "io.buildpacks.buildpack.order: example/nope is not among the modules of io.buildpacks.buildpack.layers",
        ),
        (Flaw::NoRunImage, "io.buildpacks.builder.metadata: no run image"),
        (Flaw::BadMetadata, "io.buildpacks.builder.metadata: invalid JSON"),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (i, (flaw, expected)) in table.iter().enumerate() {
        let b = builder_shaped(dir.path(), &format!("b{i}"), *flaw);
        let report = cnbpkg::verify::verify(&b).unwrap();
        // One defect per platform image, each naming it.
        let hits: Vec<&String> = report
            .defects
            .iter()
            .filter(|d| d.contains(expected))
            .collect();
        assert_eq!(hits.len(), ARCHES.len(), "{flaw:?}: {:#?}", report.defects);
        let out = cnbpkg(["verify".as_ref(), b.as_os_str()]);
        assert_eq!(out.status.code(), Some(1), "{flaw:?}");
        if *flaw == Flaw::ForeignDiffId {
            // The buildpack's layer is then listed for no module.
            assert!(report.defects.iter().any(|d| d.contains("holds cnb/buildpacks/example_a/1.0.0/, which io.buildpacks.buildpack.layers does not list")));
        } else if *flaw == Flaw::BadMetadata {
            // Nothing else is read from a metadata label that is not JSON.
            assert!(report
                .defects
                .iter()
                .any(|d| d.contains("no lifecycle version")));
        } else {
            assert_eq!(
                report.defects.len(),
                ARCHES.len(),
                "{flaw:?}: {:#?}",
                report.defects
            );
        }
    }
}

#[test]
fn inspect_shows_a_builders_lifecycle_run_images_order_and_buildpacks() {
    let dir = tempfile::tempdir().unwrap();
    let b = builder_shaped(dir.path(), "b", Flaw::None);
    let json: serde_json::Value = serde_json::from_str(&ok(cnbpkg([
        "inspect".as_ref(),
        b.as_os_str(),
        "--json".as_ref(),
    ])))
    .unwrap();
    assert_eq!(json["builder"], true);
    assert!(json.get("buildpack").is_none() || json["buildpack"].is_null());
    let images = json["images"].as_array().unwrap();
    assert_eq!(images.len(), 2);
    for (img, arch) in images.iter().zip(ARCHES) {
        assert_eq!(img["platform"]["architecture"], arch);
        let bl = &img["builder"];
        assert_eq!(bl["lifecycle"]["version"], "0.20.5");
        assert_eq!(
            bl["lifecycle"]["buildpackApis"],
            serde_json::json!(["0.7", "0.10"])
        );
        assert_eq!(
            bl["lifecycle"]["platformApis"],
            serde_json::json!(["0.7", "0.13"])
        );
        assert_eq!(
            bl["runImages"],
            serde_json::json!([{"image": "example.com/run:1", "mirrors": ["mirror.example.com/run:1"]}])
        );
        assert_eq!(bl["order"], serde_json::json!([[{"id": "example/a"}]]));
        assert_eq!(bl["distro"], "ubuntu@22.04");
        assert_eq!(bl["createdBy"], "hand 0");
        let bps = img["buildpacks"].as_array().unwrap();
        assert_eq!(bps.len(), 1);
        assert_eq!(bps[0]["id"], "example/a");
        let diff = bps[0]["layerDiffID"].as_str().unwrap();
        assert!(
            img["layers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l["diffId"] == diff),
            "{img}"
        );
        // The JSON labels are shown parsed, not as text.
        assert!(img["labels"]
            .get("io.buildpacks.builder.metadata")
            .is_none());
        assert!(img["labels"].get("io.buildpacks.buildpack.order").is_none());
    }
    let text = ok(cnbpkg(["inspect".as_ref(), b.as_os_str()]));
    for line in [
        "Builder:",
        "lifecycle    0.20.5",
        "buildpack APIs 0.7, 0.10",
        "platform APIs  0.7, 0.13",
        "example.com/run:1  mirrors: mirror.example.com/run:1",
        "1. example/a",
        "example/a@1.0.0",
        "distro       ubuntu@22.04",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
}

#[test]
fn inspect_of_a_package_is_unchanged_by_builder_support() {
    let dir = tempfile::tempdir().unwrap();
    let p = crate::support::packages::multi(dir.path(), "p", 7, 1024);
    let json: serde_json::Value = serde_json::from_str(&ok(cnbpkg([
        "inspect".as_ref(),
        p.as_os_str(),
        "--json".as_ref(),
    ])))
    .unwrap();
    assert!(json.get("builder").is_none(), "{json}");
    assert!(!json["images"].as_array().unwrap().is_empty(), "{json}");
    for img in json["images"].as_array().unwrap() {
        assert!(img.get("builder").is_none());
    }
}

#[test]
fn a_builder_label_does_not_excuse_a_package_from_placement() {
    let dir = tempfile::tempdir().unwrap();
    let b = builder_shaped(dir.path(), "b", Flaw::AlsoAPackage);
    let report = cnbpkg::verify::verify(&b).unwrap();
    // The build image's, lifecycle's and config files' layers lie outside any module directory.
    for entry in [
        "etc/os-release",
        "cnb/lifecycle/lifecycle",
        "cnb/order.toml",
    ] {
        assert!(
            report
                .defects
                .iter()
                .any(|d| d.contains(entry) && d.contains("lies outside /cnb/buildpacks")),
            "{entry}: {:#?}",
            report.defects
        );
    }
}
