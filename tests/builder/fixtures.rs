//! The builder fixtures themselves, checked with the tools that will read builders: a build
//! image made by umoci is an image index skopeo reads per platform, and the lifecycle image
//! holds its binaries in its last layer, for the right architecture.

use crate::support::builder::*;

#[test]
fn build_image_is_an_index_skopeo_reads_per_platform() {
    let dir = tempfile::tempdir().unwrap();
    let layout = default_build_image(dir.path());
    let tar = archive(&layout, &dir.path().join("build.tar"));
    for arch in ARCHES {
        let (_, config) = skopeo_platform(&tar, arch);
        let image = skopeo_image(&tar, arch);
        assert_eq!(config["architecture"], arch);
        assert_eq!(image["Architecture"], arch);
        assert_eq!(image["Layers"].as_array().unwrap().len(), 1);
        let env = env_of(&config);
        assert_eq!(env["CNB_USER_ID"], "1000");
        assert_eq!(env["CNB_GROUP_ID"], "1000");
        assert_eq!(config["config"]["User"], "1000:1000");
        assert_eq!(
            config["config"]["Labels"]["io.buildpacks.base.distro.name"],
            "ubuntu"
        );
    }
    let raw = skopeo_raw_archive(&tar);
    assert_eq!(raw["mediaType"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(raw["manifests"].as_array().unwrap().len(), 2);
    let listed = platform_manifests(&layout);
    assert_eq!(
        listed.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(),
        ARCHES
    );
}

#[test]
fn lifecycle_image_holds_the_lifecycle_in_its_last_layer() {
    let dir = tempfile::tempdir().unwrap();
    let layout = lifecycle_image(dir.path(), "lifecycle", &ARCHES, &[]);
    for arch in ARCHES {
        let p = read_platform(&layout, arch, dir.path());
        let last = p.manifest["layers"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        let blob = read_blob(&layout, last["digest"].as_str().unwrap());
        let names: Vec<String> = layer_headers(&blob, last["mediaType"].as_str().unwrap())
            .into_iter()
            .map(|h| h.0)
            .collect();
        assert!(names.iter().any(|n| n == "cnb/lifecycle.toml"), "{names:?}");
        for bin in LIFECYCLE_BINARIES {
            assert!(
                names.iter().any(|n| *n == format!("cnb/lifecycle/{bin}")),
                "{bin}: {names:?}"
            );
        }
        let bin = std::fs::read(p.rootfs.join("cnb/lifecycle/lifecycle")).unwrap();
        assert_eq!(elf_machine(&bin), e_machine_of(arch));
    }
}

#[test]
fn elf_stand_ins_name_their_machine() {
    for arch in ["amd64", "arm64", "ppc64le", "s390x"] {
        assert_eq!(elf_machine(&elf(arch, b"x")), e_machine_of(arch), "{arch}");
    }
}
