//! Building packages, the flow: configuration → sources → targets → one plan per target → the
//! image writer (`image`) → outputs put in place together.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

// `builder` builds its buildpack layers and selects its modules as packaging does.
pub(crate) mod layers;
// `merge` and `split` name and check their outputs as packaging does.
pub(crate) mod outputs;
mod remote;
mod report;
pub(crate) mod select;
pub(crate) mod sources;
mod targets;

pub use sources::resolve_uri;
pub(crate) use targets::MAX_PACKAGED_TARGETS;

use crate::cancel::Cancel;
use crate::compress::{self, Compression};
use crate::descriptor::{self, PackageConfig};
use crate::error::{Error, Result};
use crate::events::{Events, EventsExt};
use crate::image::{check_json_size, ImageWriter, WrittenImage};
use crate::layout::OutputFormat;
use crate::source::Exclusions;
use crate::target::{ExpandedTarget, Target};
use layers::BuildContext;
use outputs::{check_output_against_inputs, output_path, Input};
pub(crate) use remote::StoreArg;
pub(crate) use report::WarningsOnce;
use select::ModulePlan;
use sources::{Dependency, Located, Tree};
use targets::resolve_targets;

pub use crate::image::{ImageReport, LayerReport, CREATED};
pub use report::{DependencyImage, DependencyKind, DependencyReport, OutputReport, PackageReport};

pub use crate::cnb::{
    annotated_distros, ANNOTATION_DISTROS, ANNOTATION_DISTRO_NAME, ANNOTATION_DISTRO_VERSION,
    LABEL_LAYERS, LABEL_METADATA,
};

/// What to package and how. Made with [`PackageOptions::new`], then set field by field.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PackageOptions {
    /// The output: a `.cnb` file (`.cnb` is added when there is no extension) or a directory.
    pub output: PathBuf,
    /// `package.toml`, if any.
    pub config: Option<PathBuf>,
    /// The buildpack directory or archive when there is no `package.toml` (default: `.`).
    pub path: Option<PathBuf>,
    /// Targets that replace those of the configuration (none: the configuration's).
    pub targets: Vec<Target>,
    /// Warnings about how [`PackageOptions::targets`] were given (pack's, from parsing them),
    /// reported in their place among packaging's warnings and listed in the report.
    pub target_warnings: Vec<String>,
    /// `.cnb` file or layout directory.
    pub format: OutputFormat,
    /// One single-platform output per target instead of one multi-platform output.
    pub split: bool,
    /// Layer compression.
    pub compression: Compression,
    /// Extra labels for every image config (the buildpack labels win on a clash).
    pub labels: BTreeMap<String, String>,
    /// Threads for compression.
    pub jobs: usize,
    /// Put every buildpack into one layer (pack's `--flatten`).
    pub flatten: bool,
    /// Buildpacks that keep their own layer when flattening.
    pub flatten_exclude: Vec<ModuleId>,
    /// Fail, instead of warning, when an executable in a layer is built for another
    /// architecture than the target's.
    pub strict: bool,
    /// The image store `docker://` (and bare image, `image =`) dependencies are read from: a
    /// store directory or a `.cnb`/tar of a layout; `None` is the default store
    /// ([`crate::store::default_store`]) when it exists.
    pub store: Option<PathBuf>,
    /// Stops the packaging at its next step once cancelled; nothing is left behind.
    pub cancel: Cancel,
}

impl PackageOptions {
    /// Options for packaging the buildpack at `path` into `output` with the defaults.
    pub fn new(output: impl Into<PathBuf>) -> Self {
        PackageOptions {
            output: output.into(),
            config: None,
            path: None,
            targets: Vec::new(),
            target_warnings: Vec::new(),
            format: OutputFormat::File,
            split: false,
            compression: Compression::DEFAULT,
            labels: BTreeMap::new(),
            flatten: false,
            flatten_exclude: Vec::new(),
            cancel: Cancel::new(),
            store: None,
            strict: false,
            jobs: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .min(compress::MAX_THREADS),
        }
    }
}

/// A buildpack or extension named by id and version (`id@version`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ModuleId {
    /// The id (`acme/node`).
    pub id: String,
    /// The version (`1.2.3`).
    pub version: String,
}

impl ModuleId {
    /// `id@version`, both non-empty (split at the first `@`); `None` otherwise.
    pub fn parse(s: &str) -> Option<ModuleId> {
        let (id, version) = s.split_once('@')?;
        (!id.is_empty() && !version.is_empty()).then(|| ModuleId {
            id: id.to_string(),
            version: version.to_string(),
        })
    }
}

impl ModuleId {
    /// Whether this names `module`.
    fn names(&self, module: &ModulePlan) -> bool {
        let info = &module.descriptor.info;
        self.id == info.id && self.version == info.version
    }
}

impl std::fmt::Display for ModuleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.id, self.version)
    }
}

/// Package a buildpack as `opts` says; progress and warnings go to `events` (the warnings, each
/// once, are in the report too).
pub fn package_buildpack(opts: &PackageOptions, events: &dyn Events) -> Result<PackageReport> {
    let collected = WarningsOnce::new(events);
    let mut report = opts.cancel.operation(|| package_with(opts, &collected))?;
    report.warnings = collected.into_warnings();
    Ok(report)
}

/// The most `[[dependencies]]` one package takes (Paketo's largest composite has 26): each is
/// opened, and its images held in memory, while the package is written.
const MAX_DEPENDENCIES: usize = 256;

fn check_dependency_count(opts: &PackageOptions, base_dir: &Path, count: usize) -> Result<()> {
    if count <= MAX_DEPENDENCIES {
        return Ok(());
    }
    let config = opts
        .config
        .clone()
        .unwrap_or_else(|| base_dir.join("package.toml"));
    Err(Error::invalid(
        config,
        format!("lists {count} dependencies; at most {MAX_DEPENDENCIES} are packaged"),
    ))
}

/// The manifest and config bytes the dependency packages hold together: each package's reader
/// bounds its own, and this bounds their sum, so that listing one package many times cannot
/// multiply what is held.
#[derive(Default)]
struct DependencyBudget {
    bytes: u64,
}

impl DependencyBudget {
    fn add(&mut self, dependency: &Dependency, location: &Path) -> Result<()> {
        let Dependency::Package { images, .. } = dependency else {
            return Ok(());
        };
        self.add_images(images, location)
    }

    /// Count `images` (of the dependency at `location`) in.
    fn add_images(&mut self, images: &[crate::layout::ImageRef], location: &Path) -> Result<()> {
        for image in images {
            let manifest = image.descriptor.size;
            self.bytes = self
                .bytes
                .saturating_add(manifest)
                .saturating_add(image.config_bytes.len() as u64);
        }
        if self.bytes > crate::layout::MAX_IMAGES_BYTES {
            return Err(Error::invalid(
                location,
                format!(
                    "the dependency packages hold more than {} MiB of manifests and configs together",
                    crate::layout::MAX_IMAGES_BYTES >> 20
                ),
            ));
        }
        Ok(())
    }
}

/// [`package_buildpack`] reporting to `events`, which keeps the warnings.
fn package_with(opts: &PackageOptions, events: &dyn Events) -> Result<PackageReport> {
    if opts.config.is_some() && opts.path.is_some() {
        // pack's exact text (compatibility), flag names included.
        return Err(Error::usage(
            "--config and --path cannot be used together. Please specify the relative path to the Buildpack directory in the package config file.",
        ));
    }
    check_flatten_options(opts, events)?;
    let (config, base_dir) = load_config(opts, events)?;
    // Before any is located: a store is read, and every missing one listed, only for a
    // package that can be made.
    check_dependency_count(opts, &base_dir, config.dependencies.len())?;
    let (main_path, located) = sources::locate(
        &config,
        &base_dir,
        opts.config.as_deref(),
        opts.store.as_deref(),
    )?;
    let main = sources::load_tree(&main_path, events)?;
    let mut inputs: Vec<Input> = Vec::new();
    if let Some(c) = &opts.config {
        inputs.push(Input {
            path: c.clone(),
            role: "package.toml",
            tree_dir: false,
        });
    }
    inputs.push(Input {
        path: main_path.clone(),
        role: "the buildpack",
        tree_dir: main.is_directory(),
    });
    let mut held = DependencyBudget::default();
    let dependencies = located
        .iter()
        .map(|location| {
            let dependency = match location {
                Located::Path(path) => {
                    let dependency = sources::load_dependency(path, events)?;
                    let tree_dir = matches!(&dependency, Dependency::Tree(t) if t.is_directory());
                    inputs.push(Input {
                        path: path.clone(),
                        role: "the dependency",
                        tree_dir,
                    });
                    dependency
                }
                Located::Stored { uri, image, store } => {
                    events.status(
                        "Using",
                        &format!(
                            "{} {} from the store {}",
                            image.reference,
                            image.descriptor.digest,
                            store.path().display()
                        ),
                    );
                    if !inputs.iter().any(|i| i.path == store.path()) {
                        inputs.push(Input {
                            path: store.path().to_path_buf(),
                            role: "the store",
                            tree_dir: false,
                        });
                    }
                    Dependency::Package {
                        reader: store.shared_reader(),
                        images: image.images.clone(),
                        origin: PathBuf::from(uri),
                    }
                }
            };
            held.add(&dependency, location.origin())?;
            Ok(dependency)
        })
        .collect::<Result<Vec<_>>>()?;
    let targets = resolve_targets(opts, &config, &main, events)?;
    let output = output_path(opts, events);
    let id_version = main.descriptor.info.full_name();
    announce(events, &id_version, &targets, opts.split);

    let plans = targets
        .iter()
        .map(|t| plan_image(&main, &dependencies, t))
        .collect::<Result<Vec<_>>>()?;
    check_flatten_exclude_known(opts, &plans)?;
    for plan in &plans {
        check_labels_fit(opts, &main, plan)?;
    }

    let planned: Vec<&ExpandedTarget> = plans.iter().map(|p| &p.target).collect();
    let outputs = outputs::outputs_of(&output, opts.split, &planned);

    let mut exclusions = Exclusions::default();
    exclusions.add_scratch_dirs();
    for (path, _) in &outputs {
        check_output_against_inputs(path, opts.format, &inputs)?;
        exclusions.add_output(path);
    }
    // Every destination is checked before anything is built.
    let paths: Vec<PathBuf> = outputs.iter().map(|(path, _)| path.clone()).collect();
    let images = ImageWriter::create(&paths, opts.format, opts.compression, opts.jobs, events)?;
    let mut ctx = BuildContext {
        opts,
        events,
        dependencies: &dependencies,
        images,
        checked_executables: HashSet::new(),
        exclusions,
    };
    let mut written: Vec<Vec<WrittenImage>> = Vec::new();
    for (out_idx, (_, members)) in outputs.iter().enumerate() {
        let mut images = Vec::new();
        for &i in members {
            images.push(ctx.write_image(&main, &plans[i], out_idx)?);
        }
        written.push(images);
    }

    let out_reports = outputs::finish_outputs(ctx.images, written, events)?;
    Ok(PackageReport {
        buildpack: id_version,
        outputs: out_reports,
        dependencies: dependency_reports(&config, &located, &dependencies, &plans),
        warnings: Vec::new(),
    })
}

/// Each dependency as the report lists it: where it came from, and the image each target took.
fn dependency_reports(
    config: &PackageConfig,
    located: &[Located],
    dependencies: &[Dependency],
    plans: &[ImagePlan],
) -> Vec<DependencyReport> {
    located
        .iter()
        .zip(dependencies)
        .enumerate()
        .map(|(i, (location, dependency))| {
            let images = plans
                .iter()
                .filter_map(|p| {
                    p.dependency_images.get(&i).map(|d| DependencyImage {
                        target: p.target.display(),
                        manifest: *d,
                    })
                })
                .collect();
            let mut report = DependencyReport {
                uri: config.dependencies[i].uri.clone(),
                kind: match dependency {
                    Dependency::Tree(_) => DependencyKind::Buildpack,
                    Dependency::Package { .. } => DependencyKind::Package,
                },
                reference: None,
                entry: None,
                store: None,
                digest: None,
                images,
            };
            if let Located::Stored { image, store, .. } = location {
                report.kind = DependencyKind::Image;
                report.reference = Some(image.reference.clone());
                report.entry = Some(image.entry_name.clone());
                report.store = Some(store.path().to_path_buf());
                report.digest = Some(image.descriptor.digest);
            }
            report
        })
        .collect()
}

/// The first status line: what is packaged for which targets.
fn announce(events: &dyn Events, id_version: &str, targets: &[ExpandedTarget], split: bool) {
    let names: Vec<String> = targets
        .iter()
        .map(|t| format!("'{}'", t.display()))
        .collect();
    let message = if targets.len() > 1 && split {
        format!(
            "{id_version}: one single-platform buildpack package per target will be created for target platforms: {}",
            names.join(", ")
        )
    } else if targets.len() > 1 {
        // RFC 0128's announcement, which says "multi-arch" for what can differ by OS or distro too.
        format!(
            "{id_version}: a multi-platform buildpack package will be created for target platforms: {}",
            names.join(", ")
        )
    } else {
        format!("{id_version} for {}", names.join(", "))
    };
    events.status("Packaging", &message);
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Buildpacks are excluded from flattening only when flattening.
fn check_flatten_options(opts: &PackageOptions, events: &dyn Events) -> Result<()> {
    if !opts.flatten && !opts.flatten_exclude.is_empty() {
        return Err(Error::usage(
            "buildpacks are kept out of flattening, but the package is not flattened",
        ));
    }
    if opts.flatten {
        events.warning("Flattening a buildpack package could break the distribution specification. Please use it with caution.");
    }
    Ok(())
}

/// Every `--flatten-exclude` value must name a buildpack of the package: a typo would
/// otherwise flatten the buildpack the user meant to keep apart.
fn check_flatten_exclude_known(opts: &PackageOptions, plans: &[ImagePlan]) -> Result<()> {
    let known: std::collections::BTreeSet<String> = plans
        .iter()
        .flat_map(|p| p.modules.iter().map(ModulePlan::key))
        .collect();
    let unknown: Vec<String> = opts
        .flatten_exclude
        .iter()
        .map(ModuleId::to_string)
        .filter(|v| !known.contains(v))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(Error::NoSuchBuildpack {
        requested: unknown,
        available: known.into_iter().collect(),
    })
}

/// Read `package.toml` (or make the default one) and return it with the directory its relative
/// URIs are resolved against.
fn load_config(opts: &PackageOptions, events: &dyn Events) -> Result<(PackageConfig, PathBuf)> {
    match &opts.config {
        Some(path) => {
            let (config, warnings) = descriptor::read_package_toml(path)?;
            // The `platform.os` advice depends on whether the buildpack is a composite; it is
            // given once that is known (see `resolve_targets`).
            warnings
                .iter()
                .filter(|w| w.as_str() != descriptor::PLATFORM_OS_DEPRECATED)
                .for_each(|w| events.warning(w));
            // Relative to the current directory, the base is empty rather than `.`, so that paths
            // in messages read as the user wrote them (`../x`, not `./../x`).
            let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
            Ok((config, base))
        }
        None => Ok((
            PackageConfig::default_for_path(opts.path.as_deref()),
            PathBuf::new(),
        )),
    }
}

/// What one target's image is made of.
struct ImagePlan {
    target: ExpandedTarget,
    /// Modules sorted by `id@version`.
    modules: Vec<ModulePlan>,
    /// Stacks for the metadata label (`None` for extensions).
    stacks: Option<Vec<descriptor::Stack>>,
    /// The image (manifest digest) each package dependency (by index) gives this target.
    dependency_images: BTreeMap<usize, crate::digest::Digest>,
}

fn plan_image(main: &Tree, dependencies: &[Dependency], t: &ExpandedTarget) -> Result<ImagePlan> {
    let mut modules = vec![select::tree_module(main, t, true)?];
    let from_dependencies = select::all_dependency_modules(dependencies, t)?;
    // Before duplicates are dropped: what each dependency was chosen to give this target.
    let dependency_images = from_dependencies
        .iter()
        .filter_map(|m| match (&m.layer, m.image) {
            (select::LayerSource::Import { dependency, .. }, Some(image)) => {
                Some((*dependency, image))
            }
            _ => None,
        })
        .collect();
    modules.extend(from_dependencies);
    let modules = select::dedup_modules(modules, t.os == "windows", true)?;
    let others: Vec<_> = modules
        .iter()
        .filter(|m| m.key() != main.descriptor.info.full_name())
        .map(|m| m.descriptor.clone())
        .collect();
    let stacks = descriptor::validate_package(&main.descriptor, &others)
        .map_err(|e| Error::invalid(&main.descriptor_path, e.to_string()))?;
    Ok(ImagePlan {
        target: t.clone(),
        modules,
        stacks,
        dependency_images,
    })
}

/// What makes an image's JSON too large for a package reader comes from buildpack.toml (or
/// `--label`): the error names that file, and says this.
const TOO_LARGE_HINT: &str = "shorten the values of buildpack.toml or the labels";

/// Before any layer is built: the labels of an image alone must fit into a config the package
/// reader accepts (diffIDs are not known yet, but always have the same length).
fn check_labels_fit(opts: &PackageOptions, main: &Tree, plan: &ImagePlan) -> Result<()> {
    const DIFF_ID_PLACEHOLDER: &str =
        "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let mut label = descriptor::LayersLabel::new();
    for module in &plan.modules {
        let mut info = module.label.clone();
        info.layer_diff_id = DIFF_ID_PLACEHOLDER.into();
        label.insert_info(
            &module.descriptor.info.id,
            &module.descriptor.info.version,
            info,
        );
    }
    let metadata =
        descriptor::buildpackage_metadata_label(&main.descriptor.info, plan.stacks.as_deref());
    let extra: usize = opts.labels.iter().map(|(k, v)| k.len() + v.len()).sum();
    let size = label.to_json().len() + metadata.len() + extra;
    check_json_size(
        &main.descriptor_path,
        &plan.target,
        "image config",
        size as u64,
        TOO_LARGE_HINT,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `id@version` → the module it names; both parts are needed.
    #[test]
    fn module_id_table() {
        let table: &[(&str, Option<(&str, &str)>)] = &[
            ("acme/a@1.0.0", Some(("acme/a", "1.0.0"))),
            ("a@b@c", Some(("a", "b@c"))),
            ("acme/a", None),
            ("@1.0.0", None),
            ("acme/a@", None),
            ("", None),
        ];
        for (input, expected) in table {
            let got = ModuleId::parse(input);
            let want = expected.map(|(id, version)| ModuleId {
                id: id.into(),
                version: version.into(),
            });
            assert_eq!(got, want, "{input}");
            if let Some(m) = got {
                assert_eq!(m.to_string(), *input);
            }
        }
    }
}
