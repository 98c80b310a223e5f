//! The layers of one target's image: module folders and dependency layers, one each or
//! flattened, built once through the image writer, and their executables checked.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::select::{LayerSource, ModulePlan};
use super::sources::{Dependency, Tree};
use super::{ImagePlan, PackageOptions, TOO_LARGE_HINT};
use crate::cnb::LABEL_METADATA;
use crate::descriptor::{self, ModuleKind};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::events::{Events, EventsExt};
use crate::image::{
    read_layer_blob, BuiltLayer, ImageSpec, ImageWriter, LayerBlob, LayerExecutables, LayerKey,
    WrittenImage,
};
use crate::layer::{self, LayerFormat, LayerSpec};
use crate::oci::{Descriptor, RuntimeConfig};
use crate::source::Exclusions;
use crate::target::ExpandedTarget;

/// A buildpack's own executables, `bin/<name>`, which the lifecycle runs directly.
fn is_entry_point(path: &str) -> bool {
    path.strip_prefix("bin/")
        .is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

/// State shared while writing every image of every output.
pub(crate) struct BuildContext<'a> {
    pub(crate) opts: &'a PackageOptions,
    pub(crate) events: &'a dyn Events,
    pub(crate) dependencies: &'a [Dependency],
    /// Every output's images, and the layers they share.
    pub(crate) images: ImageWriter<'a>,
    /// (layer, os, arch) whose executables were checked already: a layer shared by several
    /// distros of one platform is reported once.
    pub(crate) checked_executables: HashSet<(Digest, String, &'static str)>,
    /// The outputs, left out of every walked tree they lie in.
    pub(crate) exclusions: Exclusions,
}

impl BuildContext<'_> {
    /// Write `plan`'s image into output `out_idx`: its layers (each built or copied once for
    /// every output), the layers and metadata labels, then config and manifest through the
    /// image writer.
    pub(super) fn write_image(
        &mut self,
        main: &Tree,
        plan: &ImagePlan,
        out_idx: usize,
    ) -> Result<WrittenImage> {
        let t = &plan.target;
        let windows = t.os == "windows";
        let mut layers: Vec<(String, BuiltLayer)> = Vec::new();
        if windows {
            let base = self.images.build_layer(
                LayerKey::WindowsBase,
                out_idx,
                "windows base layer",
                |w| {
                    layer::write_windows_base_layer(w).map_err(|e| {
                        Error::other(format!("writing the Windows base layer: {e}"))
                    })?;
                    Ok(LayerExecutables::default())
                },
            )?;
            layers.push(("windows base layer".to_string(), base));
        }
        let mut label = descriptor::LayersLabel::new();
        let flattened: Vec<&ModulePlan> = if self.opts.flatten {
            plan.modules
                .iter()
                .filter(|m| !self.opts.flatten_exclude.iter().any(|x| x.names(m)))
                .collect()
        } else {
            Vec::new()
        };
        let flat_layer = match flattened.is_empty() {
            true => None,
            false => Some(self.flattened_layer(&flattened, windows, out_idx)?),
        };
        for module in &plan.modules {
            let built = match &flat_layer {
                Some(flat) if flattened.iter().any(|m| m.key() == module.key()) => flat.clone(),
                _ => self.module_layer(module, windows, out_idx)?,
            };
            let mut info = module.label.clone();
            info.layer_diff_id = built.diff_id.to_string();
            label.insert_info(
                &module.descriptor.info.id,
                &module.descriptor.info.version,
                info,
            );
            // Flattened dependencies share one layer between several modules: list it once.
            if !layers.iter().any(|(_, l)| l.diff_id == built.diff_id) {
                layers.push((module.key(), built));
            }
        }

        self.check_executables(t, &layers)?;

        let mut labels = self.opts.labels.clone();
        labels.insert(
            LABEL_METADATA.into(),
            descriptor::buildpackage_metadata_label(&main.descriptor.info, plan.stacks.as_deref()),
        );
        labels.insert(main.descriptor.kind.layers_label().into(), label.to_json());
        self.images.write_image(
            out_idx,
            ImageSpec {
                target: t,
                layers,
                config: RuntimeConfig { labels },
                origin: &main.descriptor_path,
                too_large_hint: TOO_LARGE_HINT,
            },
        )
    }

    /// Warn (fail when the options are strict) when a layer of `t`'s image holds executables built for
    /// another architecture. Entry points (`bin/*`) must always match; other executables only
    /// count when none in the layer matches, since a tree may carry binaries for several
    /// architectures and pick one at run time.
    pub(crate) fn check_executables(
        &mut self,
        t: &ExpandedTarget,
        layers: &[(String, BuiltLayer)],
    ) -> Result<()> {
        let Some(arch) = crate::machine::checked_arch(&t.arch) else {
            return Ok(());
        };
        let format = crate::machine::format_for_os(&t.os);
        for (_, built) in layers {
            let found = &built.executables;
            if found.recorded.is_empty()
                || !self
                    .checked_executables
                    .insert((built.diff_id, t.os.clone(), arch))
            {
                continue;
            }
            let runnable: Vec<&layer::Executable> = found
                .recorded
                .iter()
                .filter(|e| e.machine.format == format)
                .collect();
            let any_match = runnable.iter().any(|e| e.machine.arch == Some(arch));
            let foreign: Vec<&layer::Executable> = runnable
                .into_iter()
                .filter(|e| e.machine.arch != Some(arch) && (!any_match || is_entry_point(&e.path)))
                .collect();
            if foreign.is_empty() {
                continue;
            }
            const SHOWN: usize = 5;
            let mut named: Vec<String> = foreign
                .iter()
                .take(SHOWN)
                .map(|e| {
                    format!(
                        "'{}' of {} is built for {}",
                        e.path.escape_debug(),
                        e.module.escape_debug(),
                        e.machine.describe()
                    )
                })
                .collect();
            let more = foreign.len().saturating_sub(SHOWN);
            if more > 0 {
                named.push(format!("and {more} more"));
            }
            if found.seen > found.recorded.len() {
                named.push(format!(
                    "only the first {} of its {} executables were checked",
                    found.recorded.len(),
                    found.seen
                ));
            }
            let message = format!(
                "target '{}' runs {arch} {} executables, but {}",
                t.display(),
                format.name(),
                named.join("; ")
            );
            if self.opts.strict {
                return Err(Error::ForeignExecutables {
                    target: t.display(),
                    message,
                });
            }
            self.events.warning(&message);
        }
        Ok(())
    }

    /// The layer of one module: built from its folder, or taken from its dependency package.
    pub(crate) fn module_layer(
        &mut self,
        module: &ModulePlan,
        windows: bool,
        out_idx: usize,
    ) -> Result<BuiltLayer> {
        let what = module.key();
        match &module.layer {
            LayerSource::Build { root, overlay } => {
                let overlays = overlays_of(overlay);
                let spec = layer_spec(module, root, &overlays, windows);
                let exclusions = self.exclusions.clone();
                self.images
                    .build_layer(layer_key(module, windows), out_idx, &what, |w| {
                        let mut builder =
                            layer::LayerBuilder::new(w, spec.format).excluding(exclusions);
                        builder.add_module(&spec)?;
                        let executables = LayerExecutables::of(&builder);
                        builder.finish()?;
                        Ok(executables)
                    })
            }
            LayerSource::Import {
                dependency,
                blob,
                diff_id,
                allowed,
            } => self.import(*dependency, blob, *diff_id, allowed, out_idx, &what),
        }
    }

    /// The diffID `module`'s layer has, without writing it anywhere: a builder on a builder
    /// leaves out a module whose layer the base holds already (an unused blob otherwise).
    pub(crate) fn module_diff_id(&self, module: &ModulePlan, windows: bool) -> Result<Digest> {
        match &module.layer {
            LayerSource::Build { root, overlay } => {
                let overlays = overlays_of(overlay);
                let spec = layer_spec(module, root, &overlays, windows);
                let tar = crate::digest::HashingWriter::new(std::io::sink());
                let mut builder =
                    layer::LayerBuilder::new(tar, spec.format).excluding(self.exclusions.clone());
                builder.add_module(&spec)?;
                let (_, diff_id, _) = builder.finish()?.finish();
                Ok(diff_id)
            }
            LayerSource::Import { diff_id, .. } => Ok(*diff_id),
        }
    }

    /// One layer holding several modules (`--flatten`): folders walked and dependency layers'
    /// entries copied unchanged, in `id@version` order.
    pub(crate) fn flattened_layer(
        &mut self,
        modules: &[&ModulePlan],
        windows: bool,
        out_idx: usize,
    ) -> Result<BuiltLayer> {
        let key = LayerKey::Flattened(modules.iter().map(|m| layer_key(m, windows)).collect());
        let what = format!(
            "flattened ({})",
            modules
                .iter()
                .map(|m| m.key())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let dependencies = self.dependencies;
        let format = if windows {
            LayerFormat::Windows
        } else {
            LayerFormat::Linux
        };
        let exclusions = self.exclusions.clone();
        self.images.build_layer(key, out_idx, &what, |w| {
            let mut builder = layer::LayerBuilder::new(w, format).excluding(exclusions);
            for module in modules {
                match &module.layer {
                    LayerSource::Build { root, overlay } => {
                        let overlays = overlays_of(overlay);
                        builder.add_module(&layer_spec(module, root, &overlays, windows))?;
                    }
                    LayerSource::Import {
                        dependency,
                        blob,
                        diff_id,
                        allowed,
                    } => {
                        let Dependency::Package { reader, origin, .. } = &dependencies[*dependency]
                        else {
                            unreachable!("imported layers come from package dependencies")
                        };
                        let stream = reader.open_blob(&blob.digest)?;
                        read_layer_blob(stream, blob, *diff_id, origin, |tar| {
                            builder.add_layer_entries(tar, origin, allowed)
                        })?;
                    }
                }
            }
            let executables = LayerExecutables::of(&builder);
            builder.finish()?;
            Ok(executables)
        })
    }

    /// Take a layer from a dependency package: copied as it is when it is already compressed
    /// the way this package's layers are, recompressed (same diffID) otherwise; its entries
    /// must all lie in the directories of the modules it holds.
    fn import(
        &mut self,
        dependency: usize,
        blob: &Descriptor,
        diff_id: Digest,
        allowed: &layer::ModuleDirs,
        out_idx: usize,
        what: &str,
    ) -> Result<BuiltLayer> {
        let Dependency::Package { reader, origin, .. } = &self.dependencies[dependency] else {
            unreachable!("imported layers come from package dependencies")
        };
        let source = LayerBlob {
            reader,
            origin,
            blob,
            diff_id,
        };
        self.images.copy_layer(&source, out_idx, what, |tar| {
            layer::check_module_layer(tar, allowed)
                .map_err(|m| Error::invalid(origin, format!("layer {}: {m}", blob.digest)))
        })
    }
}

/// What decides a module layer's bytes.
fn layer_key(module: &ModulePlan, windows: bool) -> LayerKey {
    match &module.layer {
        LayerSource::Build { root, overlay } => LayerKey::Tree {
            root: root.clone(),
            windows,
            overlay: overlay.clone(),
        },
        LayerSource::Import { diff_id, .. } => LayerKey::Import { diff_id: *diff_id },
    }
}

/// The descriptor file placed into a platform folder's layer, by its name.
fn overlays_of(overlay: &Option<PathBuf>) -> Vec<(String, PathBuf)> {
    overlay
        .iter()
        .map(|p| {
            let name = p.file_name().expect("descriptor file name");
            (name.to_string_lossy().into_owned(), p.clone())
        })
        .collect()
}

fn layer_spec<'a>(
    module: &'a ModulePlan,
    root: &'a Path,
    overlays: &'a [(String, PathBuf)],
    windows: bool,
) -> LayerSpec<'a> {
    let info = &module.descriptor.info;
    LayerSpec {
        dist_dir: match module.descriptor.kind {
            ModuleKind::Buildpack => "buildpacks",
            ModuleKind::Extension => "extensions",
        },
        id: &info.id,
        version: &info.version,
        format: if windows {
            LayerFormat::Windows
        } else {
            LayerFormat::Linux
        },
        root,
        overlays,
    }
}
