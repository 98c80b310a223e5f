//! Building builders (`builder create`), the flow: builder.toml → inputs per target (build
//! image, lifecycle, buildpacks) → one image per target on its build image, in pack's layer
//! sequence with pack's labels → outputs put in place together.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;

use serde::Serialize;

pub mod config;
mod inputs;
mod labels;
mod layers;
pub mod lifecycle;

use crate::cancel::Cancel;
use crate::compress::{self, Compression};
use crate::descriptor::ModuleKind;
use crate::error::{Error, Result};
use crate::events::{Events, EventsExt};
use crate::image::{BaseConfig, ImageSpec, ImageWriter, WrittenImage};
use crate::layout::OutputFormat;
use crate::oci::RuntimeConfig;
use crate::package::layers::BuildContext;
use crate::package::outputs::{check_output_against_inputs, Input};
use crate::package::select::{self, ModulePlan};
use crate::package::sources::{Dependency, Located};
use crate::package::{ModuleId, OutputReport, PackageOptions};
use crate::source::Exclusions;
use crate::target::{ExpandedTarget, Target};
use inputs::{ImageSource, ImageStore, LifecycleApis};

/// What builder to create and how. Made with [`BuilderOptions::new`] (or `Default`), then set
/// field by field.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BuilderOptions {
    /// The output: a file (a tar of an OCI layout, any name) or, with
    /// [`OutputFormat::Layout`], a directory.
    pub output: PathBuf,
    /// `builder.toml`.
    pub config: PathBuf,
    /// Targets that replace those of builder.toml (none: builder.toml's).
    pub targets: Vec<Target>,
    /// Warnings about how [`BuilderOptions::targets`] were given, reported among the others.
    pub target_warnings: Vec<String>,
    /// File or layout directory.
    pub format: OutputFormat,
    /// One single-platform output per target instead of one multi-platform output.
    pub split: bool,
    /// Compression of the layers the builder adds (the build image's are copied as they are).
    pub compression: Compression,
    /// Buildpacks put together into one layer, a layer per group (`--flatten`).
    pub flatten: Vec<Vec<ModuleId>>,
    /// Extra labels for every image config (the builder's labels win on a clash).
    pub labels: BTreeMap<String, String>,
    /// The store references are looked up in (default: the default store, when it exists).
    pub store: Option<PathBuf>,
    /// Threads for compression.
    pub jobs: usize,
    /// Stops the work at its next step once cancelled; nothing is left behind.
    pub cancel: Cancel,
}

impl Default for BuilderOptions {
    fn default() -> Self {
        BuilderOptions::new("builder.cnb", "builder.toml")
    }
}

impl BuilderOptions {
    /// Options for creating the builder `config` describes into `output`, with the defaults.
    pub fn new(output: impl Into<PathBuf>, config: impl Into<PathBuf>) -> Self {
        BuilderOptions {
            output: output.into(),
            config: config.into(),
            targets: Vec::new(),
            target_warnings: Vec::new(),
            format: OutputFormat::File,
            split: false,
            compression: Compression::DEFAULT,
            flatten: Vec::new(),
            labels: BTreeMap::new(),
            store: None,
            jobs: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .min(compress::MAX_THREADS),
            cancel: Cancel::new(),
        }
    }
}

/// What [`create_builder`] wrote.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct BuilderReport {
    /// builder.toml's description.
    pub description: String,
    /// The outputs, each with its images (one per target).
    pub outputs: Vec<OutputReport>,
    /// The lifecycle version of each target's image, by target.
    pub lifecycles: BTreeMap<String, String>,
    /// The warnings given, each once.
    pub warnings: Vec<String>,
}

/// Create the builder `opts` describes; progress and warnings go to `events` (the warnings
/// are in the report too).
pub fn create_builder(opts: &BuilderOptions, events: &dyn Events) -> Result<BuilderReport> {
    let collected = crate::package::WarningsOnce::new(events);
    let mut report = opts.cancel.operation(|| create_with(opts, &collected))?;
    report.warnings = collected.into_warnings();
    Ok(report)
}

/// One target's inputs, chosen before anything is written.
struct TargetPlan {
    target: Target,
    /// The build image serving it (an index into the build image's images).
    image: usize,
    base: inputs::BuildImage,
    lifecycle: lifecycle::Lifecycle,
    /// Buildpacks sorted by `id@version`.
    buildpacks: Vec<ModulePlan>,
    /// Extensions sorted by `id@version`.
    extensions: Vec<ModulePlan>,
    order_toml: Vec<u8>,
    system_toml: Option<Vec<u8>>,
}

/// Everything a builder is made of, read and checked before anything is written.
struct Planned {
    cfg: config::BuilderConfig,
    build: ImageSource,
    /// Buildpacks, then extensions (from `first_extension` on).
    dependencies: Vec<Dependency>,
    plans: Vec<TargetPlan>,
    /// What no output may replace.
    inputs: Vec<Input>,
    /// The stores read from, held (with their shared lock: `store gc` waits) until the outputs
    /// are written.
    _stores: (Option<ImageStore>, Vec<Located>),
}

fn create_with(opts: &BuilderOptions, events: &dyn Events) -> Result<BuilderReport> {
    let planned = plan(opts, events)?;
    let names: Vec<String> = planned
        .plans
        .iter()
        .map(|p| format!("'{}'", p.target.display()))
        .collect();
    events.status(
        "Creating",
        &format!("builder {} for {}", opts.config.display(), names.join(", ")),
    );
    let outputs = write(opts, &planned, events)?;
    Ok(BuilderReport {
        description: planned.cfg.description.clone(),
        outputs,
        lifecycles: planned
            .plans
            .iter()
            .map(|p| (p.target.display(), p.lifecycle.descriptor.version.clone()))
            .collect(),
        warnings: Vec::new(),
    })
}

/// Read builder.toml and every input, and choose and check each target's.
fn plan(opts: &BuilderOptions, events: &dyn Events) -> Result<Planned> {
    let cfg = config::read(&opts.config)?;
    cfg.warnings.iter().for_each(|w| events.warning(w));
    opts.target_warnings.iter().for_each(|w| events.warning(w));
    let store = ImageStore::open(opts.store.as_deref())?;
    let build = inputs::open_image(
        &cfg.build_image,
        &cfg.base_dir,
        store.as_ref(),
        opts.store.as_deref(),
        "build image",
    )?;
    if let (Some(digest), Some(store)) = (&build.digest, &store) {
        events.status(
            "Using",
            &format!(
                "build image {} {digest} from the store {}",
                build.origin.display(),
                store.path().display()
            ),
        );
    }
    let targets = builder_targets(opts, &cfg, &build)?;
    let mut inputs_list = vec![
        Input {
            path: opts.config.clone(),
            role: "builder.toml",
            tree_dir: false,
        },
        Input {
            path: build.origin.clone(),
            role: "the build image",
            tree_dir: false,
        },
    ];
    let store_dir = opts.store.as_deref();
    let mut located = Vec::new();
    let mut load = |sources| {
        load_modules(
            sources,
            &cfg,
            store_dir,
            events,
            &mut inputs_list,
            &mut located,
        )
    };
    let mut dependencies = load(&cfg.buildpacks)?;
    let first_extension = dependencies.len();
    dependencies.extend(load(&cfg.extensions)?);
    check_run_images(&cfg, &targets, store.as_ref(), events)?;
    let plans = targets
        .iter()
        .map(|t| {
            plan_target(
                &cfg,
                t,
                &build,
                &dependencies,
                first_extension,
                store_dir,
                events,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    check_one_target_per_image(&build, &plans)?;
    check_flatten_known(opts, &plans)?;
    for p in &plans {
        inputs_list.push(Input {
            path: p.lifecycle.input_path().to_path_buf(),
            role: "the lifecycle",
            tree_dir: false,
        });
    }
    if let Some(store) = &store {
        inputs_list.push(Input {
            path: store.path().to_path_buf(),
            role: "the store",
            tree_dir: false,
        });
    }
    Ok(Planned {
        cfg,
        build,
        dependencies,
        plans,
        inputs: inputs_list,
        _stores: (store, located),
    })
}

/// Write every target's image into the outputs (one, or one per target with `--split`, named as
/// package `--split` names them) and put them in place together.
fn write(
    opts: &BuilderOptions,
    planned: &Planned,
    events: &dyn Events,
) -> Result<Vec<OutputReport>> {
    let expanded: Vec<ExpandedTarget> = planned
        .plans
        .iter()
        .map(|p| image_target(&p.base))
        .collect();
    let refs: Vec<&ExpandedTarget> = expanded.iter().collect();
    let outputs = crate::package::outputs::outputs_of(&opts.output, opts.split, &refs);
    let mut exclusions = Exclusions::default();
    exclusions.add_scratch_dirs();
    for (path, _) in &outputs {
        check_output_against_inputs(path, opts.format, &planned.inputs)?;
        exclusions.add_output(path);
    }
    let paths: Vec<PathBuf> = outputs.iter().map(|(p, _)| p.clone()).collect();
    let images = ImageWriter::create(&paths, opts.format, opts.compression, opts.jobs, events)?;
    // Module layers are built by packaging's machinery, which needs packaging's options.
    let mut package_opts = PackageOptions::new(&opts.output);
    package_opts.compression = opts.compression;
    let mut ctx = BuildContext {
        opts: &package_opts,
        events,
        dependencies: &planned.dependencies,
        images,
        checked_executables: HashSet::new(),
        exclusions,
    };
    let mut written: Vec<Vec<WrittenImage>> = Vec::new();
    for (out_idx, (_, members)) in outputs.iter().enumerate() {
        let mut images = Vec::new();
        for &i in members {
            images.push(write_builder_image(
                &mut ctx,
                opts,
                planned,
                &planned.plans[i],
                &expanded[i],
                out_idx,
            )?);
        }
        written.push(images);
    }
    crate::package::outputs::finish_outputs(ctx.images, written, events)
}

/// Load the buildpacks (or extensions) `sources` names, each once for every target, located
/// as packaging locates dependencies (paths, or images of the store: `store`, else the default
/// store; where each was found is kept in `located_out`, which holds the store), and check the
/// `id` and `version` builder.toml gives them; each is an input no output may replace.
fn load_modules(
    sources: &[config::ModuleSource],
    cfg: &config::BuilderConfig,
    store: Option<&std::path::Path>,
    events: &dyn Events,
    inputs_list: &mut Vec<Input>,
    located_out: &mut Vec<Located>,
) -> Result<Vec<Dependency>> {
    if sources.is_empty() {
        return Ok(Vec::new());
    }
    let uris = crate::descriptor::PackageConfig {
        buildpack_uri: ".".into(),
        dependencies: sources
            .iter()
            .map(|s| crate::descriptor::Dependency { uri: module_uri(s) })
            .collect(),
        ..Default::default()
    };
    let (_, located) =
        crate::package::sources::locate(&uris, &cfg.base_dir, Some(&cfg.path), store)?;
    let dependencies = sources
        .iter()
        .zip(&located)
        .map(|(s, location)| {
            crate::cancel::check()?;
            let dep = location.load(events)?;
            inputs::check_declared(s, &dep)?;
            let tree_dir = matches!(&dep, Dependency::Tree(t) if t.is_directory());
            let path = match location {
                Located::Path(p) => p.clone(),
                Located::Stored { store, .. } => store.path().to_path_buf(),
            };
            inputs_list.push(Input {
                path,
                role: "a buildpack",
                tree_dir,
            });
            Ok(dep)
        })
        .collect::<Result<Vec<_>>>()?;
    located_out.extend(located);
    Ok(dependencies)
}

/// A module's URI: `uri`, or the deprecated `image` key as a `docker://` reference.
fn module_uri(s: &config::ModuleSource) -> String {
    if s.from_image_key && !s.uri.starts_with("docker://") {
        format!("docker://{}", s.uri)
    } else {
        s.uri.clone()
    }
}

/// The targets: `--target` values, else builder.toml's, else the build image's one platform.
/// Windows builders are refused (upstream removed Windows support).
fn builder_targets(
    opts: &BuilderOptions,
    cfg: &config::BuilderConfig,
    build: &ImageSource,
) -> Result<Vec<Target>> {
    let mut targets = if opts.targets.is_empty() {
        cfg.targets.clone()
    } else {
        opts.targets.clone()
    };
    if targets.is_empty() {
        match build.images.as_slice() {
            [one] => {
                let p = one.platform();
                targets.push(Target {
                    os: p.os,
                    arch: p.architecture,
                    variant: p.variant,
                    ..Default::default()
                });
            }
            _ => {
                return Err(Error::usage(format!(
                    "build image {} has several platforms ({}); choose with --target or [[targets]] in builder.toml",
                    build.origin.display(),
                    build
                        .images
                        .iter()
                        .map(|i| crate::cnb::platform_name(&i.platform(), &i.descriptor.annotations))
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
        }
    }
    for t in &targets {
        if t.os == "windows" {
            return Err(Error::other(format!(
                "target {}: Windows builders are not supported (the lifecycle no longer supports Windows)",
                t.display()
            )));
        }
    }
    let mut seen = BTreeSet::new();
    for t in &targets {
        if !seen.insert(t.display()) {
            return Err(Error::usage(format!(
                "target {} is given twice",
                t.display()
            )));
        }
    }
    Ok(targets)
}

/// The run images (and their mirrors) are recorded by name; those the store holds must have an
/// image for every target. Those it does not hold (or with no store) are named once.
fn check_run_images(
    cfg: &config::BuilderConfig,
    targets: &[Target],
    store: Option<&ImageStore>,
    events: &dyn Events,
) -> Result<()> {
    let mut unchecked = Vec::new();
    let names = cfg
        .run_images
        .iter()
        .flat_map(|r| std::iter::once(&r.image).chain(&r.mirrors));
    for name in names {
        let found = match store {
            Some(s) => s.lookup(name)?,
            None => None,
        };
        let Some(source) = found else {
            unchecked.push(name.clone());
            continue;
        };
        if let Some(config_stack) = cfg.stack.as_ref().filter(|s| !s.id.is_empty()) {
            for image in &source.images {
                let id = inputs::ImageStack::of(image).id;
                if id != config_stack.id {
                    // pack's exact text (compatibility).
                    return Err(Error::other(format!(
                        "stack '{}' from builder config is incompatible with stack '{id}' from run image '{name}'",
                        config_stack.id
                    )));
                }
            }
        }
        for t in targets {
            if !inputs::serves(&source, t) {
                let have: Vec<String> = source
                    .images
                    .iter()
                    .map(|i| crate::cnb::platform_name(&i.platform(), &i.descriptor.annotations))
                    .collect();
                return Err(Error::other(format!(
                    "run image {name} has no image for target {} (it has {})",
                    t.display(),
                    have.join(", ")
                )));
            }
        }
    }
    if !unchecked.is_empty() {
        events.note(&format!(
            "run image{} {} not in the store: {} platforms are not checked",
            if unchecked.len() == 1 { "" } else { "s" },
            unchecked.join(", "),
            if unchecked.len() == 1 { "its" } else { "their" }
        ));
    }
    Ok(())
}

/// The target an image is written for: the build image's platform (its index entry's platform
/// is its config's, as imgutil writes it), no distro annotation.
fn image_target(base: &inputs::BuildImage) -> ExpandedTarget {
    ExpandedTarget {
        os: base.platform.os.clone(),
        arch: base.platform.architecture.clone(),
        variant: base.platform.variant.clone(),
        distro: None,
        path: None,
    }
}

/// Choose target `t`'s inputs and check them (pack's checks).
fn plan_target(
    cfg: &config::BuilderConfig,
    t: &Target,
    build: &ImageSource,
    dependencies: &[Dependency],
    first_extension: usize,
    store_dir: Option<&std::path::Path>,
    events: &dyn Events,
) -> Result<TargetPlan> {
    crate::cancel::check()?;
    let index = inputs::select_image(build, t, "build image")?;
    let image = &build.images[index];
    inputs::check_distro(build, image, t)?;
    let base = inputs::build_image(build, image)?;
    let lifecycle =
        lifecycle::lifecycle_for(&cfg.lifecycle, &cfg.base_dir, &base.platform, store_dir)?;
    let selector = ExpandedTarget {
        os: base.platform.os.clone(),
        arch: base.platform.architecture.clone(),
        variant: base.platform.variant.clone(),
        distro: None,
        path: None,
    };
    if base.platform.os == "windows" {
        return Err(Error::other(format!(
            "build image {} for target {} is a Windows image: Windows builders are not supported (the lifecycle no longer supports Windows)",
            build.origin.display(),
            t.display()
        )));
    }
    let distro = inputs::image_distro(image);
    let mut buildpacks = Vec::new();
    let mut extensions = Vec::new();
    for (i, dep) in dependencies.iter().enumerate() {
        // A tree's targets are checked with pack's message before its folder is chosen.
        if let Dependency::Tree(tree) = dep {
            inputs::ensure_target_support(&tree.descriptor, &base.platform, distro.as_ref())
                .map_err(|e| Error::other(format!("target {}: {e}", t.display())))?;
        }
        let modules = if i >= first_extension {
            select::extension_modules(dep, i, &selector)?
        } else {
            select::dependency_modules(dep, i, &selector)?
        };
        if i >= first_extension {
            extensions.extend(modules);
        } else {
            buildpacks.extend(modules);
        }
    }
    let buildpacks = select::dedup_modules(buildpacks, false, false)?;
    let extensions = select::dedup_modules(extensions, false, false)?;
    if let Some(m) = extensions
        .iter()
        .find(|m| m.descriptor.kind != ModuleKind::Extension)
    {
        return Err(Error::invalid(
            &m.origin,
            format!("{} is listed in [[extensions]] but is a buildpack", m.key()),
        ));
    }
    if let Some(m) = buildpacks
        .iter()
        .find(|m| m.descriptor.kind != ModuleKind::Buildpack)
    {
        return Err(Error::invalid(
            &m.origin,
            format!(
                "{} is listed in [[buildpacks]] but is an extension",
                m.key()
            ),
        ));
    }
    warn_extensions_before_platform_0_13(cfg, &lifecycle.descriptor, events);
    let on_builder: BTreeSet<String> = buildpacks.iter().map(ModulePlan::key).collect();
    let d = &lifecycle.descriptor;
    let apis = LifecycleApis {
        version: &d.version,
        supported: &d.buildpack.supported,
        deprecated: &d.buildpack.deprecated,
    };
    let stack = inputs::ImageStack::of(image);
    if let Some(config_stack) = cfg.stack.as_ref().filter(|s| !s.id.is_empty()) {
        if config_stack.id != stack.id {
            // pack's exact text (compatibility).
            return Err(Error::other(format!(
                "stack '{}' from builder config is incompatible with stack '{}' from build image",
                config_stack.id, stack.id
            )));
        }
    }
    let facts = inputs::ImageFacts {
        platform: &base.platform,
        distro: distro.as_ref(),
        stack: &stack,
    };
    for m in buildpacks.iter().chain(&extensions) {
        inputs::check_module(m, &on_builder, &apis, &facts, events)
            .map_err(|e| Error::other(format!("target {}: {e}", t.display())))?;
    }
    let available = |mods: &[ModulePlan]| -> Vec<(String, String)> {
        mods.iter()
            .map(|m| {
                (
                    m.descriptor.info.id.clone(),
                    m.descriptor.info.version.clone(),
                )
            })
            .collect()
    };
    let order = config::resolve_order(&cfg.order, &available(&buildpacks), ModuleKind::Buildpack)?;
    let order_extensions = config::resolve_order(
        &cfg.order_extensions,
        &available(&extensions),
        ModuleKind::Extension,
    )?;
    let order_toml = config::order_toml(&order, &order_extensions);
    let system_toml = match &cfg.system {
        Some(system) => Some(config::system_toml(&config::resolve_system(
            system,
            &available(&buildpacks),
        )?)),
        None => None,
    };
    Ok(TargetPlan {
        target: t.clone(),
        image: index,
        base,
        lifecycle,
        buildpacks,
        extensions,
        order_toml,
        system_toml,
    })
}

/// Image extensions need Platform API 0.13 (`validateLifecycleVersion`): with a lifecycle whose
/// newest Platform API is older, pack's words say they are experimental.
fn warn_extensions_before_platform_0_13(
    cfg: &config::BuilderConfig,
    lifecycle: &lifecycle::LifecycleDescriptor,
    events: &dyn Events,
) {
    if cfg.extensions.is_empty() && cfg.order_extensions.is_empty() {
        return;
    }
    let parse = |v: &str| -> Option<(u64, u64)> {
        let (major, minor) = v.split_once('.')?;
        Some((major.parse().ok()?, minor.parse().ok()?))
    };
    let newest = lifecycle
        .platform
        .supported
        .iter()
        .chain(&lifecycle.platform.deprecated)
        .filter_map(|v| parse(v).map(|p| (p, v)))
        .max();
    if let Some((at, version)) = newest {
        if at < (0, 13) {
            events.warning(&format!(
                "builder config contains image extensions, but the lifecycle Platform API version ({version}) is older than 0.13; support for image extensions with Platform API < 0.13 is currently experimental"
            ));
        }
    }
}

/// Two targets served by the same build image (`linux/amd64` and `linux/amd64:ubuntu@22.04`,
/// say) would be two index entries of one platform (or two `--split` outputs of one name).
fn check_one_target_per_image(build: &ImageSource, plans: &[TargetPlan]) -> Result<()> {
    let mut served: BTreeMap<usize, &Target> = BTreeMap::new();
    for p in plans {
        if let Some(first) = served.insert(p.image, &p.target) {
            return Err(Error::usage(format!(
                "targets {} and {} are both served by the same image of build image {}; give one of them",
                first.display(),
                p.target.display(),
                build.origin.display()
            )));
        }
    }
    Ok(())
}

/// Every `--flatten` value must name a buildpack on the builder, each at most once.
fn check_flatten_known(opts: &BuilderOptions, plans: &[TargetPlan]) -> Result<()> {
    let known: BTreeSet<String> = plans
        .iter()
        .flat_map(|p| p.buildpacks.iter().map(ModulePlan::key))
        .collect();
    let mut seen = BTreeSet::new();
    for id in opts.flatten.iter().flatten() {
        let key = id.to_string();
        if !known.contains(&key) {
            return Err(Error::NoSuchBuildpack {
                requested: vec![key],
                available: known.into_iter().collect(),
            });
        }
        if !seen.insert(key.clone()) {
            return Err(Error::usage(format!("--flatten names {key} twice")));
        }
    }
    Ok(())
}

/// Write the builder image of one target into output `out_idx`: the build image's layers
/// byte for byte, then pack's sequence (builder.md §2.2), then the config with pack's labels.
fn write_builder_image(
    ctx: &mut BuildContext<'_>,
    opts: &BuilderOptions,
    planned: &Planned,
    plan: &TargetPlan,
    target: &ExpandedTarget,
    out_idx: usize,
) -> Result<WrittenImage> {
    let (cfg, build) = (&planned.cfg, &planned.build);
    let mut seq = layers::Sequence::new(out_idx);
    let image = &build.images[plan.image];
    seq.base(ctx, build, image)?;
    seq.dirs(ctx, plan.base.uid, plan.base.gid)?;
    seq.lifecycle(ctx, &plan.lifecycle)?;
    let modules_from = seq.len();
    let base_diff_ids = &image.config.rootfs.diff_ids;
    let on_base = layers::ModuleLabels {
        buildpacks: labels::base_layers(
            image.config.labels(),
            base_diff_ids,
            crate::cnb::LABEL_LAYERS,
        ),
        extensions: labels::base_layers(
            image.config.labels(),
            base_diff_ids,
            crate::cnb::LABEL_EXTENSION_LAYERS,
        ),
    };
    let module_labels = seq.modules(
        ctx,
        &opts.flatten,
        &plan.buildpacks,
        &plan.extensions,
        &on_base,
    )?;
    // Executables of buildpacks built for another architecture are warned about, as packaging
    // does (the build image's own files are its business).
    ctx.check_executables(target, seq.since(modules_from))?;
    let mut files = vec![("order.toml", "/cnb/order.toml", plan.order_toml.clone())];
    if let Some(system) = &plan.system_toml {
        files.push(("system.toml", "/cnb/system.toml", system.clone()));
    }
    files.push((
        "stack.toml",
        "/cnb/stack.toml",
        config::stack_toml(&stack_run_image(cfg)),
    ));
    files.push((
        "run.toml",
        "/cnb/run.toml",
        config::run_toml(&cfg.run_images),
    ));
    seq.files(ctx, &files)?;
    seq.build_config_env(ctx, &cfg.build_env_files()?)?;
    seq.platform_env(ctx)?;

    let labels = labels::builder_labels(&labels::LabelInputs {
        base: image.config.labels(),
        base_diff_ids,
        extra: &opts.labels,
        cfg,
        buildpacks: &plan.buildpacks,
        extensions: &plan.extensions,
        lifecycle: &plan.lifecycle.descriptor,
        module_labels,
    })
    .map_err(|m| Error::invalid(&build.origin, m))?;
    let mut runtime = plan.base.runtime.clone();
    runtime.insert(
        "WorkingDir".into(),
        serde_json::Value::String("/layers".into()),
    );
    let base = BaseConfig {
        runtime,
        os_version: image.config.os_version.clone(),
        os_features: image.config.os_features.clone(),
        other: plan.base.other.clone(),
    };
    ctx.images.write_image_on(
        out_idx,
        ImageSpec {
            target,
            layers: seq.into_layers(),
            config: RuntimeConfig { labels },
            origin: &opts.config,
            too_large_hint: "shorten the values of builder.toml or the labels",
        },
        Some(&base),
    )
}

/// `/cnb/stack.toml`'s run image: `[stack]`'s when it has an id, else the first run image.
fn stack_run_image(cfg: &config::BuilderConfig) -> config::RunImage {
    match &cfg.stack {
        Some(s) if !s.id.is_empty() => config::RunImage {
            image: s.run_image.clone(),
            mirrors: s.run_image_mirrors.clone(),
        },
        _ => cfg.run_images.first().cloned().unwrap_or_default(),
    }
}
