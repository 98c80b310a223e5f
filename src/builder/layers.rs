//! The layers of a builder image in pack's order (builder.md §2.2): the build image's, byte
//! for byte; the directories; the lifecycle; the buildpacks (`--flatten` groups first) and
//! extensions through packaging's layer machinery; the single-file layers (`order.toml`,
//! `system.toml`, `stack.toml`, `run.toml`); the build-config env files; the empty platform env
//! layer. Each is built once for every target and output that needs the same bytes.

use std::collections::BTreeSet;
use std::io::Write;

use super::inputs::ImageSource;
use super::lifecycle::Lifecycle;
use crate::descriptor::LayersLabel;
use crate::error::{Error, Result};
use crate::image::{BuiltLayer, LayerExecutables, LayerKey};
use crate::layout::ImageRef;
use crate::package::layers::BuildContext;
use crate::package::select::ModulePlan;
use crate::package::ModuleId;
use crate::tar::{Header, TarWriter};

/// The layers labels of the modules placed: buildpacks and extensions.
pub(crate) struct ModuleLabels {
    pub(crate) buildpacks: LayersLabel,
    pub(crate) extensions: LayersLabel,
}

/// One image's layers so far, in order, each with what it holds (for the report).
pub(crate) struct Sequence {
    out: usize,
    layers: Vec<(String, BuiltLayer)>,
}

impl Sequence {
    /// An empty sequence for output `out`.
    pub(crate) fn new(out: usize) -> Self {
        Sequence {
            out,
            layers: Vec::new(),
        }
    }

    /// How many layers there are so far.
    pub(crate) fn len(&self) -> usize {
        self.layers.len()
    }

    /// The layers from the `from`th on.
    pub(crate) fn since(&self, from: usize) -> &[(String, BuiltLayer)] {
        &self.layers[from.min(self.layers.len())..]
    }

    /// The layers, base first.
    pub(crate) fn into_layers(self) -> Vec<(String, BuiltLayer)> {
        self.layers
    }

    /// The build image's layers, copied as they are (digests and sizes checked).
    pub(crate) fn base(
        &mut self,
        ctx: &mut BuildContext<'_>,
        build: &ImageSource,
        image: &ImageRef,
    ) -> Result<()> {
        let layers = &image.manifest.layers;
        let diff_ids = &image.config.rootfs.diff_ids;
        if layers.len() != diff_ids.len() {
            return Err(Error::invalid(
                &build.origin,
                "the build image's manifest and config list different numbers of layers",
            ));
        }
        for (blob, diff_id) in layers.iter().zip(diff_ids) {
            let built = ctx.images.copy_base_layer(
                &build.reader,
                &build.origin,
                blob,
                *diff_id,
                self.out,
            )?;
            self.layers.push(("build image".into(), built));
        }
        Ok(())
    }

    /// Build (once) a layer whose bytes `key` decides.
    fn add(
        &mut self,
        ctx: &mut BuildContext<'_>,
        key: LayerKey,
        what: &str,
        write: impl FnOnce(&mut dyn Write) -> Result<()>,
    ) -> Result<()> {
        let built = ctx.images.build_layer(key, self.out, what, |w| {
            write(w)?;
            Ok(LayerExecutables::default())
        })?;
        self.layers.push((what.to_string(), built));
        Ok(())
    }

    /// The directories layer, `/workspace` and `/layers` owned by `uid:gid`.
    pub(crate) fn dirs(&mut self, ctx: &mut BuildContext<'_>, uid: u32, gid: u32) -> Result<()> {
        let key = content_key("dirs", &[&uid.to_le_bytes(), &gid.to_le_bytes()]);
        self.add(ctx, key, "directories", |w| write_dirs_layer(w, uid, gid))
    }

    /// The lifecycle layer.
    pub(crate) fn lifecycle(&mut self, ctx: &mut BuildContext<'_>, l: &Lifecycle) -> Result<()> {
        let key = LayerKey::Content(format!("lifecycle:{}", l.cache_key()));
        let what = format!("lifecycle {}", l.descriptor.version);
        self.add(ctx, key, &what, |w| l.write_layer(w))
    }

    /// The buildpack layers (`flatten` groups first, a layer each, then the others by
    /// `id@version`), then the extension layers; returns their layers labels. On a build image
    /// that is a builder (`on_base`: its layers labels), a module it has already with the same
    /// layer is not added again, and one it has with another layer is hidden first by a
    /// whiteout of its folder (pack's way of extending a builder).
    pub(crate) fn modules(
        &mut self,
        ctx: &mut BuildContext<'_>,
        flatten: &[Vec<ModuleId>],
        buildpacks: &[ModulePlan],
        extensions: &[ModulePlan],
        on_base: &ModuleLabels,
    ) -> Result<ModuleLabels> {
        let mut labels = ModuleLabels {
            buildpacks: LayersLabel::new(),
            extensions: LayersLabel::new(),
        };
        let mut flattened: BTreeSet<String> = BTreeSet::new();
        for group in flatten {
            let members: Vec<&ModulePlan> = buildpacks
                .iter()
                .filter(|m| group.iter().any(|g| g.to_string() == m.key()))
                .collect();
            if members.is_empty() {
                continue;
            }
            let built = ctx.flattened_layer(&members, false, self.out)?;
            for m in &members {
                flattened.insert(m.key());
                record(&mut labels.buildpacks, m, &built);
            }
            let what: Vec<String> = members.iter().map(|m| m.key()).collect();
            self.push_once(what.join(", "), built);
        }
        for m in buildpacks.iter().filter(|m| !flattened.contains(&m.key())) {
            self.module(ctx, m, &on_base.buildpacks, &mut labels.buildpacks)?;
        }
        for m in extensions {
            self.module(ctx, m, &on_base.extensions, &mut labels.extensions)?;
        }
        Ok(labels)
    }

    /// One module's layer, unless the base has it with that layer (its diffID worked out
    /// without writing it: the base's blob may be compressed otherwise, and a blob written
    /// would be one no manifest lists); a whiteout first when the base has it with another.
    fn module(
        &mut self,
        ctx: &mut BuildContext<'_>,
        m: &ModulePlan,
        on_base: &LayersLabel,
        label: &mut LayersLabel,
    ) -> Result<()> {
        let info = &m.descriptor.info;
        if let Some(base) = on_base.get(&info.id, &info.version) {
            if base.layer_diff_id == ctx.module_diff_id(m, false)?.to_string() {
                return Ok(());
            }
            self.whiteout(ctx, m)?;
        }
        let built = ctx.module_layer(m, false, self.out)?;
        record(label, m, &built);
        self.push_once(m.key(), built);
        Ok(())
    }

    /// pack's whiteout of a module version the base builder has: one file,
    /// `/cnb/buildpacks/<escaped id>/.wh.<version>`.
    fn whiteout(&mut self, ctx: &mut BuildContext<'_>, m: &ModulePlan) -> Result<()> {
        let info = &m.descriptor.info;
        let dir = crate::cnb::module_id_dir(m.descriptor.kind, &info.id);
        let name = format!("/{dir}/.wh.{}", info.version);
        let key = content_key("whiteout", &[name.as_bytes()]);
        let what = format!("whiteout of {}", m.key());
        self.add(ctx, key, &what, |w| {
            write_files_layer(w, &[(name.clone(), &[][..])])
        })
    }

    /// Several modules of one package layer share it: it is listed once.
    fn push_once(&mut self, what: String, built: BuiltLayer) {
        if !self.layers.iter().any(|(_, l)| l.diff_id == built.diff_id) {
            self.layers.push((what, built));
        }
    }

    /// One single-file layer per `(what, name, content)`, in order.
    pub(crate) fn files(
        &mut self,
        ctx: &mut BuildContext<'_>,
        files: &[(&str, &str, Vec<u8>)],
    ) -> Result<()> {
        for (what, name, content) in files {
            let key = content_key("file", &[name.as_bytes(), content]);
            self.add(ctx, key, what, |w| {
                write_files_layer(w, &[(name.to_string(), &content[..])])
            })?;
        }
        Ok(())
    }

    /// The `/cnb/build-config/env/` layer, when there are env files (sorted by name).
    pub(crate) fn build_config_env(
        &mut self,
        ctx: &mut BuildContext<'_>,
        env_files: &[(String, Vec<u8>)],
    ) -> Result<()> {
        if env_files.is_empty() {
            return Ok(());
        }
        let named: Vec<(String, &[u8])> = env_files
            .iter()
            .map(|(name, value)| (format!("/cnb/build-config/env/{name}"), &value[..]))
            .collect();
        let parts: Vec<&[u8]> = named
            .iter()
            .flat_map(|(name, value)| [name.as_bytes(), *value])
            .collect();
        let key = content_key("build-config-env", &parts);
        self.add(ctx, key, "build-config env", |w| {
            write_files_layer(w, &named)
        })
    }

    /// The empty `/platform/env` layer pack always adds.
    pub(crate) fn platform_env(&mut self, ctx: &mut BuildContext<'_>) -> Result<()> {
        let key = content_key("platform-env", &[]);
        self.add(ctx, key, "platform env", |w| write_files_layer(w, &[]))
    }
}

/// A module's entry in a layers label, with the diffID of the layer that holds it.
fn record(label: &mut LayersLabel, m: &ModulePlan, built: &BuiltLayer) {
    let mut info = m.label.clone();
    info.layer_diff_id = built.diff_id.to_string();
    label.insert_info(&m.descriptor.info.id, &m.descriptor.info.version, info);
}

/// What a builder layer that holds no module is keyed by: its content, so two targets that
/// need the same one build it once.
fn content_key(kind: &str, parts: &[&[u8]]) -> LayerKey {
    let mut framed = Vec::new();
    for p in parts {
        framed.extend_from_slice(&(p.len() as u64).to_le_bytes());
        framed.extend_from_slice(p);
    }
    LayerKey::Content(format!("{kind}:{}", crate::digest::Digest::of(&framed)))
}

/// The diffID of the empty platform env layer: Go's `tar.Writer.Close()` on no entries, 1024
/// zero bytes.
#[cfg(test)]
pub(crate) const EMPTY_TAR_DIFF_ID: &str =
    "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

/// The directories every builder has, in pack's order (`defaultDirsLayer`): `/workspace` and
/// `/layers` owned by the build user, the others by root; all 0755 at the normalized instant.
pub(crate) fn write_dirs_layer(out: &mut dyn Write, uid: u32, gid: u32) -> Result<()> {
    let mut tar = TarWriter::new(out);
    for name in ["/workspace", "/layers"] {
        let mut header = Header::dir(name);
        header.uid = uid;
        header.gid = gid;
        tar.append(&header, &mut std::io::empty())
            .map_err(write_error)?;
    }
    for name in [
        "/cnb",
        "/cnb/buildpacks",
        "/cnb/extensions",
        "/platform",
        "/platform/env",
        "/cnb/build-config",
        "/cnb/build-config/env",
    ] {
        tar.append(&Header::dir(name), &mut std::io::empty())
            .map_err(write_error)?;
    }
    tar.finish().map_err(write_error)?;
    Ok(())
}

/// A layer of regular files (0644, root, normalized mtime), in the order given: one file for
/// `order.toml` and the like (pack's `CreateSingleFileTar`), the env files for build-config;
/// none gives the empty tar.
pub(crate) fn write_files_layer(out: &mut dyn Write, files: &[(String, &[u8])]) -> Result<()> {
    let mut tar = TarWriter::new(out);
    for (name, content) in files {
        let header = Header::file(name.clone(), 0o644, content.len() as u64);
        tar.append(&header, &mut &content[..])
            .map_err(write_error)?;
    }
    tar.finish().map_err(write_error)?;
    Ok(())
}

fn write_error(e: std::io::Error) -> Error {
    Error::other(format!("writing a builder layer: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    /// The empty layer is pack's: its diffID is the constant.
    #[test]
    fn empty_files_layer_is_the_empty_tar() {
        let mut out = Vec::new();
        write_files_layer(&mut out, &[]).unwrap();
        assert_eq!(out.len(), 1024);
        assert_eq!(Digest::of(&out).to_string(), EMPTY_TAR_DIFF_ID);
    }

    /// The directories in pack's order, `/workspace` and `/layers` owned by the build user.
    #[test]
    fn dirs_layer_order_and_owners() {
        let mut out = Vec::new();
        write_dirs_layer(&mut out, 1000, 1001).unwrap();
        let mut archive = tar::Archive::new(&out[..]);
        let entries: Vec<(String, u64, u64, u32, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                )
            })
            .collect();
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "/workspace",
                "/layers",
                "/cnb",
                "/cnb/buildpacks",
                "/cnb/extensions",
                "/platform",
                "/platform/env",
                "/cnb/build-config",
                "/cnb/build-config/env"
            ]
        );
        assert_eq!((entries[0].1, entries[0].2), (1000, 1001));
        assert_eq!((entries[1].1, entries[1].2), (1000, 1001));
        assert_eq!((entries[2].1, entries[2].2), (0, 0));
        assert!(entries
            .iter()
            .all(|e| e.3 == 0o755 && e.4 == crate::cnb::NORMALIZED_SECONDS));
    }
}
