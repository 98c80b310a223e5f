//! Choosing, for one target, the modules (buildpacks) of an image: the main buildpack's folder,
//! each tree dependency's platform folder, and each package dependency's matching manifest.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::cnb::{platform_fit, platform_name, PlatformRequest};
use crate::cnb::{LayersLabel, ModuleKind, ModuleLayerInfo};
use crate::descriptor::{BuildpackDescriptor, ModuleInfo};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layout::{ImageRef, LayerLookup, LayerMiss};
use crate::oci::{self, Descriptor};
use crate::target::{self, ExpandedTarget};

use super::sources::{Dependency, Tree};
use super::{annotated_distros, LABEL_LAYERS};

/// Where a module's layer comes from.
#[derive(Debug, Clone)]
pub(crate) enum LayerSource {
    /// Built from a folder.
    Build {
        /// The platform folder.
        root: PathBuf,
        /// `buildpack.toml` from the buildpack root, when the folder is a platform folder.
        overlay: Option<PathBuf>,
    },
    /// Taken from a dependency package.
    Import {
        /// Index of the dependency.
        dependency: usize,
        /// The layer blob.
        blob: Box<Descriptor>,
        /// Its diffID.
        diff_id: Digest,
        /// The module directories (`cnb/buildpacks/<id>/<version>`, under `Files/` on Windows)
        /// the layer may hold: those of every module the package's label puts in it.
        allowed: crate::layer::ModuleDirs,
    },
}

/// One module to place in an image.
#[derive(Debug, Clone)]
pub(crate) struct ModulePlan {
    /// The descriptor (read from disk, or rebuilt from a dependency's label).
    pub descriptor: BuildpackDescriptor,
    /// Its entry of the layers label (`layerDiffID` filled once the layer exists).
    pub label: ModuleLayerInfo,
    /// Where its layer comes from.
    pub layer: LayerSource,
    /// The buildpack directory or package it comes from, for messages.
    pub origin: PathBuf,
    /// The dependency package's image (manifest digest) it comes from, for the report.
    pub image: Option<Digest>,
}

impl ModulePlan {
    /// `id@version`.
    pub fn key(&self) -> String {
        format!(
            "{}@{}",
            self.descriptor.info.id, self.descriptor.info.version
        )
    }
}

/// The module for a buildpack tree on `t`: its platform folder, with `buildpack.toml` from the root.
pub(crate) fn tree_module(
    tree: &Tree,
    t: &ExpandedTarget,
    check_entry_points: bool,
) -> Result<ModulePlan> {
    if t.os == "windows" {
        let info = &tree.descriptor.info;
        crate::descriptor::check_windows_id_version(
            tree.descriptor.kind.table(),
            &info.id,
            &info.version,
        )
        .map_err(|e| {
            Error::invalid(
                &tree.descriptor_path,
                format!("{e} (target {})", t.display()),
            )
        })?;
    }
    let resolved = target::platform_root(&tree.root, t)?;
    let root = resolved.dir;
    let is_buildpack = tree.descriptor.kind == crate::descriptor::ModuleKind::Buildpack;
    if check_entry_points && is_buildpack && !tree.descriptor.is_composite() {
        require_entry_points(tree, &root, t)?;
    }
    let overlay = (root != tree.root).then(|| tree.root.join(tree.descriptor_file_name()));
    Ok(ModulePlan {
        descriptor: tree.descriptor.clone(),
        label: ModuleLayerInfo::from_descriptor(&tree.descriptor, ""),
        layer: LayerSource::Build { root, overlay },
        origin: tree.origin.clone(),
        image: None,
    })
}

/// A target's folder must hold the buildpack's executables (`.bat`/`.exe` forms on Windows).
fn require_entry_points(tree: &Tree, root: &std::path::Path, t: &ExpandedTarget) -> Result<()> {
    let windows = t.os == "windows";
    for exe in ["build", "detect"] {
        let candidates: Vec<String> = if windows {
            vec![format!("bin/{exe}.bat"), format!("bin/{exe}.exe")]
        } else {
            vec![format!("bin/{exe}")]
        };
        if candidates
            .iter()
            .any(|c| is_file_within(root, std::path::Path::new(c)))
        {
            continue;
        }
        let wanted = if windows {
            format!("bin/{exe}.bat or bin/{exe}.exe")
        } else {
            format!("bin/{exe}")
        };
        let folder = match root.strip_prefix(&tree.root) {
            Ok(rel) if rel.as_os_str().is_empty() => "the buildpack root".to_string(),
            Ok(rel) => format!("folder {}", rel.display()),
            Err(_) => format!("folder {}", root.display()),
        };
        return Err(Error::invalid(
            &tree.origin,
            format!(
                "target {} uses {folder}, which has no {wanted}",
                t.display()
            ),
        ));
    }
    Ok(())
}

/// Whether `rel` names a regular file inside `base`, resolved as the image will resolve it once
/// `base` is the module's folder: each component is looked at without following it, and a
/// symbolic link is followed only when its target stays inside `base` (`bin/detect -> build`
/// is fine; `bin -> /usr/bin` would make the answer depend on the packaging host, and in the
/// image it points at something else).
fn is_file_within(base: &std::path::Path, rel: &std::path::Path) -> bool {
    use std::ffi::OsString;
    use std::path::Component;
    // More links than this on one path is a loop (the kernel's limit is 40).
    const MAX_LINKS: usize = 40;
    fn push_reversed(pending: &mut Vec<OsString>, path: &std::path::Path) -> bool {
        let mut parts = Vec::new();
        for c in path.components() {
            match c {
                Component::Normal(n) => parts.push(n.to_os_string()),
                Component::ParentDir => parts.push(OsString::from("..")),
                Component::CurDir => {}
                // An absolute target leaves the tree.
                Component::RootDir | Component::Prefix(_) => return false,
            }
        }
        pending.extend(parts.into_iter().rev());
        true
    }
    let mut pending = Vec::new();
    if !push_reversed(&mut pending, rel) {
        return false;
    }
    let mut resolved = base.to_path_buf();
    let mut depth = 0usize;
    let mut links = 0usize;
    while let Some(part) = pending.pop() {
        if part == ".." {
            if depth == 0 {
                return false;
            }
            resolved.pop();
            depth -= 1;
            continue;
        }
        let candidate = resolved.join(&part);
        let Ok(meta) = std::fs::symlink_metadata(&candidate) else {
            return false;
        };
        if meta.file_type().is_symlink() {
            links += 1;
            let Ok(target) = std::fs::read_link(&candidate) else {
                return false;
            };
            if links > MAX_LINKS || !push_reversed(&mut pending, &target) {
                return false;
            }
            continue;
        }
        if pending.is_empty() {
            return meta.is_file();
        }
        if !meta.is_dir() {
            return false;
        }
        resolved = candidate;
        depth += 1;
    }
    false
}

/// Whether a buildpack that declares `targets` supports `t` (no targets: every target; a
/// target naming no os, architecture or variant serves every one).
fn tree_supports(d: &BuildpackDescriptor, t: &ExpandedTarget) -> bool {
    let want = request(t);
    let want = PlatformRequest {
        distro: None,
        ..want
    };
    d.targets.is_empty()
        || d.targets.iter().any(|dt| {
            let have = oci::Platform {
                os: dt.os.clone(),
                architecture: dt.arch.clone(),
                variant: dt.variant.clone(),
                ..Default::default()
            };
            platform_fit(&have, None, &want).is_some()
        })
}

/// What a target asks of an image or a buildpack target.
fn request(t: &ExpandedTarget) -> PlatformRequest<'_> {
    PlatformRequest {
        os: &t.os,
        arch: &t.arch,
        variant: &t.variant,
        distro: t.distro.as_ref(),
        blank_serves_any: true,
    }
}

/// The modules a dependency contributes to the image for `t`.
pub(crate) fn dependency_modules(
    dep: &Dependency,
    index: usize,
    t: &ExpandedTarget,
) -> Result<Vec<ModulePlan>> {
    match dep {
        Dependency::Tree(tree) => {
            if !tree_supports(&tree.descriptor, t) {
                let have: Vec<String> = tree
                    .descriptor
                    .targets
                    .iter()
                    .map(|x| x.display())
                    .collect();
                return Err(Error::invalid(
                    &tree.origin,
                    format!(
                        "dependency {} has no target {} (it has {})",
                        tree.descriptor.info.full_name(),
                        t.display(),
                        have.join(", ")
                    ),
                ));
            }
            Ok(vec![tree_module(tree, t, true)?])
        }
        Dependency::Package { images, origin, .. } => {
            let image = select_image(images, origin, t)?;
            package_modules(origin, index, image, ModuleKind::Buildpack)
        }
    }
}

/// The modules every dependency contributes to the image for `t`. Package dependencies of
/// one buildpack (the same `id@version`; one package per architecture, say) act as one
/// multi-platform dependency: the image that fits `t` best among all of theirs is taken, and
/// two of them holding different images for one platform are an error naming both.
pub(crate) fn all_dependency_modules(
    deps: &[Dependency],
    t: &ExpandedTarget,
) -> Result<Vec<ModulePlan>> {
    let mut out = Vec::new();
    for group in package_groups(deps) {
        match group.as_slice() {
            [i] => out.extend(dependency_modules(&deps[*i], *i, t)?),
            _ => {
                check_disjoint(deps, &group)?;
                let (i, image) = select_in_group(deps, &group, t)?;
                let Dependency::Package { origin, .. } = &deps[i] else {
                    unreachable!("groups hold packages only")
                };
                out.extend(package_modules(origin, i, image, ModuleKind::Buildpack)?);
            }
        }
    }
    Ok(out)
}

/// The images and origin of a package dependency.
fn package_parts(dep: &Dependency) -> Option<(&[ImageRef], &std::path::Path)> {
    match dep {
        Dependency::Package { images, origin, .. } => Some((images, origin)),
        Dependency::Tree(_) => None,
    }
}

/// The dependencies in groups, in the order of their first member: each package dependency
/// with every other of the same buildpack (`id@version` of its metadata label), each tree on
/// its own.
fn package_groups(deps: &[Dependency]) -> Vec<Vec<usize>> {
    let mut groups: Vec<(Option<crate::cnb::BuildpackKey>, Vec<usize>)> = Vec::new();
    for (i, dep) in deps.iter().enumerate() {
        let key = package_parts(dep)
            .and_then(|(images, _)| images.first())
            .and_then(|image| crate::cnb::image_buildpack_key(&image.config));
        match groups.iter_mut().find(|(k, _)| key.is_some() && *k == key) {
            Some((_, members)) => members.push(i),
            None => groups.push((key, vec![i])),
        }
    }
    groups.into_iter().map(|(_, members)| members).collect()
}

/// Two packages of one buildpack may not hold different images for one platform (an entry
/// that names no distro serves every distro): which one a target gets would be a guess.
fn check_disjoint(deps: &[Dependency], group: &[usize]) -> Result<()> {
    let serves_same = |a: &ImageRef, b: &ImageRef| {
        if a.platform() != b.platform() {
            return false;
        }
        match (
            annotated_distros(&a.descriptor.annotations),
            annotated_distros(&b.descriptor.annotations),
        ) {
            (Some(x), Some(y)) => x.iter().any(|d| y.contains(d)),
            _ => true,
        }
    };
    for (n, &i) in group.iter().enumerate() {
        let (images_i, origin_i) = package_parts(&deps[i]).expect("a package");
        for &j in &group[n + 1..] {
            let (images_j, origin_j) = package_parts(&deps[j]).expect("a package");
            for a in images_i {
                if let Some(b) = images_j
                    .iter()
                    .find(|b| serves_same(a, b) && b.descriptor.digest != a.descriptor.digest)
                {
                    let buildpack = crate::cnb::image_buildpack(&a.config).unwrap_or_default();
                    return Err(Error::other(format!(
                        "dependencies {} and {} are packages of {buildpack}, and both hold an image for {}, with different content (one package per platform is needed)",
                        origin_i.display(),
                        origin_j.display(),
                        platform_name(&b.platform(), &b.descriptor.annotations)
                    )));
                }
            }
        }
    }
    Ok(())
}

/// The one image among a group's packages that serves `t`, with its dependency's index.
fn select_in_group<'a>(
    deps: &'a [Dependency],
    group: &[usize],
    t: &ExpandedTarget,
) -> Result<(usize, &'a ImageRef)> {
    let mut scored: Vec<(u32, (usize, &ImageRef), Digest)> = Vec::new();
    let mut names = Vec::new();
    let mut origins = Vec::new();
    for &i in group {
        let (images, origin) = package_parts(&deps[i]).expect("a package");
        origins.push(origin.display().to_string());
        for image in images {
            names.push(platform_name(
                &image.platform(),
                &image.descriptor.annotations,
            ));
            if let Some(score) = fit(image, t) {
                scored.push((score, (i, image), image.descriptor.digest));
            }
        }
    }
    match crate::cnb::best_fits(scored).as_slice() {
        [(i, image)] => Ok((*i, image)),
        [] => Err(Error::other(format!(
            "dependencies {} have no image for target {} (they have {})",
            origins.join(", "),
            t.display(),
            names.join(", ")
        ))),
        _ => Err(Error::other(format!(
            "dependencies {} have several images that fit target {} ({}); name the architecture with --target",
            origins.join(", "),
            t.display(),
            names.join(", ")
        ))),
    }
}

/// How well an image's platform fits a target; `None` when it cannot serve it.
fn fit(image: &ImageRef, t: &ExpandedTarget) -> Option<u32> {
    let distros = t
        .distro
        .as_ref()
        .and_then(|_| annotated_distros(&image.descriptor.annotations));
    platform_fit(&image.platform(), distros.as_deref(), &request(t))
}

/// The one image of a dependency package that serves `t`.
fn select_image<'a>(
    images: &'a [ImageRef],
    origin: &std::path::Path,
    t: &ExpandedTarget,
) -> Result<&'a ImageRef> {
    if images.is_empty() {
        return Err(Error::invalid(origin, "the package holds no image"));
    }
    let mut best: Vec<(u32, &ImageRef)> = images
        .iter()
        .filter_map(|i| fit(i, t).map(|s| (s, i)))
        .collect();
    let names = || {
        images
            .iter()
            .map(|i| platform_name(&i.platform(), &i.descriptor.annotations))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let top = best.iter().map(|(s, _)| *s).max();
    best.retain(|(s, _)| Some(*s) == top);
    // One manifest listed under several distros (older packages list it once per distro) is
    // one image, not a choice.
    if best
        .windows(2)
        .all(|w| w[0].1.descriptor.digest == w[1].1.descriptor.digest)
    {
        best.truncate(1);
    }
    match best.as_slice() {
        [] => Err(Error::invalid(
            origin,
            format!(
                "dependency has no image for target {} (it has {})",
                t.display(),
                names()
            ),
        )),
        [(_, one)] => Ok(one),
        _ => Err(Error::AmbiguousDependency {
            path: origin.to_path_buf(),
            target: t.display(),
            images: images
                .iter()
                .map(|i| platform_name(&i.platform(), &i.descriptor.annotations))
                .collect(),
        }),
    }
}

/// The extensions a package of image extensions (its extension layers label) contributes to
/// the image for `t`; a tree dependency is chosen as for buildpacks.
pub(crate) fn extension_modules(
    dep: &Dependency,
    index: usize,
    t: &ExpandedTarget,
) -> Result<Vec<ModulePlan>> {
    match dep {
        Dependency::Tree(_) => dependency_modules(dep, index, t),
        Dependency::Package { images, origin, .. } => {
            let image = select_image(images, origin, t)?;
            package_modules(origin, index, image, ModuleKind::Extension)
        }
    }
}

/// The modules of one image of a dependency package, from its layers label (of `kind`).
fn package_modules(
    origin: &std::path::Path,
    index: usize,
    image: &ImageRef,
    kind: ModuleKind,
) -> Result<Vec<ModulePlan>> {
    let labels = image.config.labels();
    let label_name = kind.layers_label();
    let value = labels
        .get(label_name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Error::invalid(origin, format!("label '{label_name}' not found")))?;
    let label = LayersLabel::parse(value).map_err(|e| Error::invalid(origin, e.to_string()))?;
    // Ids and versions become paths when the layers are copied or flattened.
    let windows = image.config.os == "windows";
    let mut dirs_of_layer: BTreeMap<&str, crate::layer::ModuleDirs> = BTreeMap::new();
    for (id, versions) in &label.0 {
        for (version, info) in versions {
            crate::descriptor::check_id_version("buildpack", id, version)
                .map_err(|e| Error::invalid(origin, format!("label '{LABEL_LAYERS}': {e}")))?;
            if image.config.os == "windows" {
                crate::descriptor::check_windows_id_version("buildpack", id, version)
                    .map_err(|e| Error::invalid(origin, format!("label '{LABEL_LAYERS}': {e}")))?;
            }
            dirs_of_layer
                .entry(info.layer_diff_id.as_str())
                .or_default()
                .insert(
                    crate::cnb::module_dir(kind, id, version, windows),
                    (id.clone(), version.clone()),
                );
        }
    }
    let lookup = LayerLookup::new(&image.config);
    let mut out = Vec::new();
    for (id, versions) in &label.0 {
        for (version, info) in versions {
            let diff_id: Digest = info.layer_diff_id.parse().map_err(|_| {
                Error::invalid(
                    origin,
                    format!(
                        "{id}@{version} has an invalid layerDiffID '{}'",
                        info.layer_diff_id
                    ),
                )
            })?;
            let blob = match lookup.layer(&image.manifest, &diff_id) {
                Ok((_, blob)) => blob.clone(),
                Err(LayerMiss::NotInConfig) => {
                    return Err(Error::invalid(
                        origin,
                        format!("{id}@{version}: layer {diff_id} is not a layer of the image"),
                    ))
                }
                Err(_) => {
                    return Err(Error::invalid(
                        origin,
                        "the manifest has fewer layers than the config's diff_ids",
                    ))
                }
            };
            if oci::layer_compression_of(&blob.media_type).is_none() {
                return Err(Error::invalid(
                    origin,
                    format!(
                        "layer {} has unsupported media type '{}'",
                        blob.digest, blob.media_type
                    ),
                ));
            }
            let mut descriptor = descriptor_from_label(id, version, info);
            descriptor.kind = kind;
            out.push(ModulePlan {
                descriptor,
                label: info.clone(),
                layer: LayerSource::Import {
                    dependency: index,
                    blob: Box::new(blob),
                    diff_id,
                    allowed: dirs_of_layer
                        .get(info.layer_diff_id.as_str())
                        .cloned()
                        .unwrap_or_default(),
                },
                origin: origin.to_path_buf(),
                image: Some(image.descriptor.digest),
            });
        }
    }
    Ok(out)
}

/// A descriptor rebuilt from a layers-label entry (what a package says about a buildpack).
fn descriptor_from_label(id: &str, version: &str, info: &ModuleLayerInfo) -> BuildpackDescriptor {
    let mut mi = ModuleInfo {
        id: id.to_string(),
        version: version.to_string(),
        ..Default::default()
    };
    mi.present.insert("id".into());
    mi.present.insert("version".into());
    if !info.homepage.is_empty() {
        mi.homepage = info.homepage.clone();
        mi.present.insert("homepage".into());
    }
    if !info.name.is_empty() {
        mi.name = info.name.clone();
        mi.present.insert("name".into());
    }
    BuildpackDescriptor {
        api: info.api.clone().unwrap_or_else(|| "0.1".into()),
        info: mi,
        stacks: info.stacks.clone(),
        targets: info.targets.clone(),
        order: info.order.clone(),
        ..Default::default()
    }
}

/// Whether two modules with one `id@version` are the same content: the same folder, or the
/// same layer of a package.
/// A path as the file system resolves it, so `old` and `./old` (paths are kept as the user
/// wrote them) name one folder.
fn same_path_of(p: &std::path::Path) -> std::path::PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

fn same_path(a: &std::path::Path, b: &std::path::Path) -> bool {
    a == b || same_path_of(a) == same_path_of(b)
}

fn same_content(a: &ModulePlan, b: &ModulePlan) -> bool {
    match (&a.layer, &b.layer) {
        (
            LayerSource::Build { root, overlay },
            LayerSource::Build {
                root: r2,
                overlay: o2,
            },
        ) => {
            same_path(root, r2)
                && overlay.as_deref().map(same_path_of) == o2.as_deref().map(same_path_of)
        }
        (LayerSource::Import { diff_id, .. }, LayerSource::Import { diff_id: d2, .. }) => {
            diff_id == d2
        }
        _ => false,
    }
}

/// Merge modules by `id@version`; with `main`, `modules[0]` is the buildpack being packaged. One module
/// reached through several dependencies is kept once (the last, as pack does); a dependency
/// with the main buildpack's `id@version`, two different modules with one `id@version`, or two
/// modules whose ids map to the same layer directory (`a/b` and `a_b`) are errors naming both
/// sources, since one would silently replace the other. Windows file names ignore case, so for
/// a Windows image ids differing only in case share a directory too.
pub(crate) fn dedup_modules(
    modules: Vec<ModulePlan>,
    windows: bool,
    main: bool,
) -> Result<Vec<ModulePlan>> {
    let mut by_key: BTreeMap<String, (usize, ModulePlan)> = BTreeMap::new();
    let mut dirs: BTreeMap<String, String> = BTreeMap::new();
    for (i, m) in modules.into_iter().enumerate() {
        let key = m.key();
        if let Some((first, prev)) = by_key.get(&key) {
            if main && *first == 0 {
                return Err(Error::other(format!(
                    "dependency {} holds {key}, the id@version of the buildpack being packaged ({})",
                    m.origin.display(),
                    prev.origin.display()
                )));
            }
            if !same_content(prev, &m) {
                return Err(Error::other(format!(
                    "buildpack {key} comes from both {} and {}, with different content",
                    prev.origin.display(),
                    m.origin.display()
                )));
            }
            let first = *first;
            by_key.insert(key, (first, m));
            continue;
        }
        let dir = crate::cnb::module_dir(
            m.descriptor.kind,
            &m.descriptor.info.id,
            &m.descriptor.info.version,
            false,
        );
        let dir = if windows { dir.to_lowercase() } else { dir };
        if let Some(other) = dirs.insert(dir, key.clone()) {
            return Err(Error::other(format!(
                "buildpacks {other} and {key} ({}) would share one layer directory",
                m.origin.display()
            )));
        }
        by_key.insert(key, (i, m));
    }
    Ok(by_key.into_values().map(|(_, m)| m).collect())
}
