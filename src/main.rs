//! The `cnbpkg` command line: a thin layer over the library.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use cnbpkg::cancel::Cancel;
use cnbpkg::error::{AuthFailure, TlsFailure};
use cnbpkg::layout::OutputFormat;
use cnbpkg::package::{package_buildpack, ModuleId, PackageOptions};
use cnbpkg::target::{self, Target};
use cnbpkg::ui::{Printer, Verbosity};
use cnbpkg::Compression;
use cnbpkg::Error;

#[derive(Parser)]
#[command(
    name = "cnbpkg",
    version,
    about = "Package Cloud Native Buildpacks into reproducible multi-platform .cnb files, and push them to OCI registries"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Buildpack commands.
    Buildpack {
        #[command(subcommand)]
        command: BuildpackCommand,
    },
    /// Show what a package holds: platforms, buildpacks, layers, labels, shared blobs.
    Inspect(InspectArgs),
    /// Check a package's integrity: every digest, size, media type, diffID and label.
    Verify(VerifyArgs),
    /// Copy a finished package into an OCI registry (image index for several platforms).
    Push(PushArgs),
    /// Copy registry images (all platforms, byte for byte, every digest verified) into the local store.
    Pull(PullArgs),
    /// List, remove and garbage-collect the images of the local store.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Join packages of one buildpack (one per platform, or several) into one multi-platform package.
    Merge(MergeArgs),
    /// Write one single-platform package per platform of a package.
    Split(SplitArgs),
    /// Builder commands.
    Builder {
        #[command(subcommand)]
        command: BuilderCommand,
    },
}

#[derive(Subcommand)]
enum BuilderCommand {
    /// Create a builder (one image per target, on its build image) as a file or layout directory.
    Create(BuilderCreateArgs),
}

#[derive(Args)]
struct BuilderCreateArgs {
    /// Output file (a tar of an OCI layout, any name) or, with --format layout, directory.
    output: PathBuf,
    /// Path to builder.toml.
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    targets: TargetArgs,
    #[command(flatten)]
    output_args: OutputArgs,
    /// Put these buildpacks (ID@VERSION, comma-separated) into one layer; repeatable, a layer per value.
    #[arg(long, value_name = "ID@VERSION[,ID@VERSION...]")]
    flatten: Vec<String>,
    #[command(flatten)]
    labels: LabelArgs,
    /// The store references are looked up in (default: $CNBPKG_STORE, else $XDG_CACHE_HOME/cnbpkg/store).
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
    /// Threads for compression, at most 256; more are treated as 256 (default: all cores).
    #[arg(short, long, value_name = "N")]
    jobs: Option<u64>,
    /// pack's flag, accepted only to explain that cnbpkg writes files (see `cnbpkg push`).
    #[arg(long, hide = true)]
    publish: bool,
    #[command(flatten)]
    common: Common,
}

/// `--target`, as `buildpack package` and `builder create` take it.
#[derive(Args)]
struct TargetArgs {
    /// Target platform: [os][/arch][/variant][:name@version[;name@version]...]; repeatable and comma-separated.
    #[arg(short, long = "target", value_name = "T")]
    targets: Vec<String>,
}

/// Where and how an output is written, as `buildpack package` and `builder create` take it.
#[derive(Args)]
struct OutputArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = FormatArg::File)]
    format: FormatArg,
    /// Write one single-platform package per target instead of one multi-platform package.
    #[arg(long)]
    split: bool,
    /// Layer compression.
    #[arg(long, value_enum, default_value_t = CompressionArg::Gzip)]
    compression: CompressionArg,
}

impl OutputArgs {
    /// The output format (`image` is refused with what to run instead).
    fn output_format(&self) -> Result<OutputFormat, Error> {
        match self.format {
            FormatArg::File => Ok(OutputFormat::File),
            FormatArg::Layout => Ok(OutputFormat::Layout),
            FormatArg::Image => Err(publish_hint("--format image")),
        }
    }

    /// The layer compression (zstd warned about for files, which pack cannot read).
    fn layer_compression(&self, ui: &Printer) -> Compression {
        if matches!(self.compression, CompressionArg::Zstd)
            && matches!(self.format, FormatArg::File)
        {
            ui.warn("zstd layers are not read by pack's .cnb reader; use them with OCI tools that support zstd");
        }
        match self.compression {
            CompressionArg::Gzip => Compression::DEFAULT,
            CompressionArg::Zstd => {
                Compression::parse("zstd").expect("zstd is a known compression")
            }
            CompressionArg::None => Compression::None,
        }
    }
}

/// `--label`, as `buildpack package` and `builder create` take it.
#[derive(Args)]
struct LabelArgs {
    /// Add a label to every image config (KEY=VALUE); repeatable.
    #[arg(short, long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    labels: Vec<(String, String)>,
}

/// `--jobs`: at least 1, at most the compression threads there are.
fn compression_jobs(jobs: Option<u64>) -> Result<Option<usize>, Error> {
    match jobs {
        None => Ok(None),
        Some(0) => Err(Error::usage("--jobs must be at least 1")),
        Some(j) => Ok(Some(j.min(cnbpkg::MAX_COMPRESSION_THREADS as u64) as usize)),
    }
}

#[derive(Args)]
struct MergeArgs {
    /// Output file (".cnb" is added when it has no extension) or, with --format layout, directory.
    output: PathBuf,
    /// The packages (.cnb files or OCI layout directories) of one buildpack; their images are listed in this order.
    #[arg(required = true, value_name = "PACKAGE")]
    packages: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = FormatArg::File)]
    format: FormatArg,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct SplitArgs {
    /// A .cnb file or an OCI layout directory (the outputs have the same form).
    package: PathBuf,
    /// Write only the platforms this picks (os[/arch[/variant]]); repeatable.
    #[arg(long = "platform", value_name = "T")]
    platforms: Vec<String>,
    /// Directory to write the packages into (default: the package's directory).
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
#[command(after_help = "\
Every request must finish within 60 s (a blob upload: 120 s plus 1 s per 64 KiB); transient \
failures are retried up to 5 times, each retry announced as it starts. Credentials go only \
to the registry's own scheme, host and port, and to the token server it names.

Besides --ca-cert and the system's roots, the *.crt files in \
/etc/containers/certs.d/HOST[:PORT]/, $HOME/.config/containers/certs.d/HOST[:PORT]/ and \
/etc/docker/certs.d/HOST[:PORT]/ are trusted for that registry, as docker and podman do. A \
server certificate given there exactly (a self-signed CA certificate) is accepted for its \
name and dates.

One --platform pushes that platform's manifest at the tag; several get a new index.")]
struct PushArgs {
    /// A .cnb file or an OCI layout directory.
    package: PathBuf,
    /// Destination: REGISTRY/REPO[:TAG] (tag "latest" when omitted) or REGISTRY/REPO@DIGEST.
    /// Several may be given: blobs and manifests go to each repository once.
    #[arg(required = true, value_name = "REFERENCE")]
    references: Vec<String>,
    /// Also set this tag in every repository pushed to; repeatable.
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Write the pushed digest (with a newline) to this file, once every reference is set.
    #[arg(long, value_name = "FILE")]
    digest_file: Option<PathBuf>,
    /// Push only these platforms (os[/arch[/variant]]); repeatable.
    #[arg(long = "platform", value_name = "T")]
    platforms: Vec<String>,
    /// Mount blobs from this repository of the same registry instead of uploading them.
    #[arg(long, value_name = "REPO")]
    from: Option<String>,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
#[command(after_help = "\
The store is an OCI image layout whose index.json names each image by its full reference \
(org.opencontainers.image.ref.name), as skopeo's oci:DIR:REF does: $CNBPKG_STORE, else \
$XDG_CACHE_HOME/cnbpkg/store, else ~/.cache/cnbpkg/store. Blobs it holds already are not \
downloaded again; a reference is named only once everything it needs is stored and verified.

Requests, retries, credentials and certificates work as for push (see push --help). One \
--platform stores that platform's manifest under the reference; several get a new index. A \
download that stops halfway continues where it stopped (a Range request) on the next attempt.

--output FILE also writes the images into one archive, from the store (which is filled as \
without it, so a second run downloads nothing): one REFERENCE gives a package (readable as a \
.cnb, by skopeo's oci-archive: and as a dependency), several give a layout whose index.json \
names each image by its reference (usable as a read-only --store).")]
struct PullArgs {
    /// REGISTRY/REPO[:TAG] (tag "latest" when omitted) or REGISTRY/REPO@DIGEST; Docker Hub
    /// names may be short (paketobuildpacks/go:1).
    #[arg(required = true, value_name = "REFERENCE")]
    references: Vec<String>,
    /// The store to fill (default: $CNBPKG_STORE, else $XDG_CACHE_HOME/cnbpkg/store).
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
    /// Also write the images into this archive (a package for one reference, a layout naming
    /// each for several).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Pull only these platforms (os[/arch[/variant]]); repeatable.
    #[arg(long = "platform", value_name = "T")]
    platforms: Vec<String>,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    common: Common,
}

#[derive(Subcommand)]
enum StoreCommand {
    /// List the images the store names: reference, digest, media type, platforms, size.
    List(StoreArgs),
    /// Remove references from the store (their blobs stay until gc).
    Remove(StoreRemoveArgs),
    /// Remove the blobs no reference reaches, and interrupted downloads (waits for running pulls).
    Gc(StoreArgs),
}

#[derive(Args)]
struct StoreArgs {
    /// The store (default: $CNBPKG_STORE, else $XDG_CACHE_HOME/cnbpkg/store).
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct StoreRemoveArgs {
    /// References as pull takes them (normalized: paketobuildpacks/go:1 is docker.io/paketobuildpacks/go:1).
    #[arg(required = true, value_name = "REFERENCE")]
    references: Vec<String>,
    #[command(flatten)]
    store: StoreArgs,
}

/// How `push` and `pull` reach a registry.
#[derive(Args)]
struct RegistryArgs {
    /// Use plain HTTP (for a local registry).
    #[arg(long)]
    insecure: bool,
    /// Trust the CA certificates in this PEM file (in addition to the system's).
    #[arg(long, value_name = "PEM")]
    ca_cert: Option<PathBuf>,
    /// User name for the first reference's registry (the password is read from standard input
    /// with --password-stdin).
    #[arg(short, long, requires = "password_stdin")]
    username: Option<String>,
    /// Read the password or token from standard input.
    #[arg(long, requires = "username")]
    password_stdin: bool,
    /// Parallel blob transfers, 1 to 32 (each is a thread with its own connection).
    #[arg(short, long, value_name = "N", default_value_t = cnbpkg::registry::DEFAULT_JOBS)]
    jobs: usize,
}

impl RegistryArgs {
    /// The password from standard input when `--password-stdin` asks for it, once `--jobs` is
    /// checked.
    fn password(&self) -> Result<Option<String>, Error> {
        let password = if self.password_stdin {
            Some(read_password_stdin()?)
        } else {
            None
        };
        check_jobs(self.jobs)?;
        Ok(password)
    }
}

#[derive(Args)]
struct InspectArgs {
    /// A .cnb file or an OCI layout directory.
    package: PathBuf,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct VerifyArgs {
    /// A .cnb file or an OCI layout directory.
    package: PathBuf,
    /// Fail unless the package holds exactly these platforms: os/arch[/variant][:name@version[;name@version]...]
    /// (without distros: any distros), or a bare os for no architecture; repeatable and comma-separated.
    #[arg(long = "expect-platform", value_name = "T")]
    expect_platforms: Vec<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(Subcommand)]
enum BuildpackCommand {
    /// Package a buildpack into a .cnb file (or an OCI layout directory).
    Package(PackageArgs),
}

#[derive(Args)]
struct Common {
    /// Print errors only.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Print more detail.
    #[arg(short, long, global = true)]
    verbose: bool,
    /// Print the result as JSON on stdout.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Args)]
struct PackageArgs {
    /// Output file (".cnb" is added when it has no extension) or, with --format layout, directory.
    output: PathBuf,
    /// Path to package.toml.
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Buildpack directory or .tgz/.tar archive, when there is no package.toml (default: current directory).
    #[arg(short, long, value_name = "DIR")]
    path: Option<PathBuf>,
    #[command(flatten)]
    targets: TargetArgs,
    #[command(flatten)]
    output_args: OutputArgs,
    /// Put all buildpacks of a composite into one layer.
    #[arg(long)]
    flatten: bool,
    /// Keep this buildpack (ID@VERSION) in its own layer when flattening; repeatable.
    #[arg(long, value_name = "ID@VERSION", requires = "flatten")]
    flatten_exclude: Vec<String>,
    #[command(flatten)]
    labels: LabelArgs,
    /// Threads for compression, at most 256; more are treated as 256 (default: all cores).
    #[arg(short, long, value_name = "N")]
    jobs: Option<u64>,
    /// Fail, instead of warning, when an executable is built for another architecture than its target.
    #[arg(long)]
    strict: bool,
    /// The image store `docker://` dependencies are read from: a store directory or a .cnb/tar
    /// of a layout (default: $CNBPKG_STORE, else $XDG_CACHE_HOME/cnbpkg/store, when it exists).
    #[arg(long, value_name = "PATH")]
    store: Option<PathBuf>,
    /// pack's flag, accepted only to explain that cnbpkg writes files (see `cnbpkg push`).
    #[arg(long, hide = true)]
    publish: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    /// A .cnb file (a tar of an OCI layout).
    File,
    /// An OCI layout directory.
    Layout,
    /// pack's image output, accepted only to explain that cnbpkg writes files.
    #[value(hide = true)]
    Image,
}

/// What pack users who ask for a published image are told: packaging writes files, pushing
/// publishes them.
fn publish_hint(flag: &str) -> Error {
    Error::usage(format!(
        "{flag}: cnbpkg writes the package to a file (or, with --format layout, a directory) and never publishes while packaging; package to a .cnb file, then publish it with `cnbpkg push FILE REGISTRY/REPO[:TAG]`"
    ))
}

#[derive(Clone, Copy, ValueEnum)]
enum CompressionArg {
    Gzip,
    Zstd,
    None,
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("invalid label '{s}': expected KEY=VALUE")),
    }
}

fn printer(c: &Common) -> Printer {
    Printer::new(if c.quiet {
        Verbosity::Quiet
    } else if c.verbose {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    })
}

fn main() -> ExitCode {
    // SIGINT, SIGTERM and SIGHUP. While something is being written, the working thread stops at
    // its next check and removes its temporary files as it returns (removing them here, while it
    // still writes into them, would leave whatever it writes next); with nothing being written,
    // or on a second signal, the process exits at once.
    // A file size limit (RLIMIT_FSIZE) then fails the write with EFBIG, which is reported and
    // cleaned up after like any write error, instead of killing the process with SIGXFSZ and
    // leaving its temporary files.
    // SAFETY: setting a signal's disposition to "ignore" has no preconditions.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let cli = Cli::parse();
    // Only `buildpack package` writes an output that an interrupt leaves unwritten; `inspect`
    // and `verify` write nothing, and an interrupted `push` may have sent blobs already.
    let interrupted: &'static str = match cli.command {
        Command::Buildpack { .. }
        | Command::Merge(_)
        | Command::Split(_)
        | Command::Builder { .. } => "interrupted; no output was written",
        _ => "interrupted",
    };
    let token = cnbpkg::cancel::Cancel::new();
    let handler_token = token.clone();
    let _ = ctrlc::set_handler(move || {
        if cnbpkg::on_signal(&handler_token) {
            eprintln!("error: {interrupted}");
            std::process::exit(130);
        }
    });
    let (result, ui) = match cli.command {
        Command::Buildpack {
            command: BuildpackCommand::Package(args),
        } => {
            let ui = printer(&args.common);
            (run_package(args, &ui, &token), ui)
        }
        Command::Inspect(args) => {
            let ui = printer(&args.common);
            (run_inspect(args), ui)
        }
        Command::Verify(args) => {
            let ui = printer(&args.common);
            (run_verify(args, &ui, &token), ui)
        }
        Command::Push(args) => {
            let ui = printer(&args.common);
            (run_push(args, &ui, &token), ui)
        }
        Command::Pull(args) => {
            let ui = printer(&args.common);
            (run_pull(args, &ui, &token), ui)
        }
        Command::Store { command } => {
            let common = match &command {
                StoreCommand::List(a) | StoreCommand::Gc(a) => &a.common,
                StoreCommand::Remove(a) => &a.store.common,
            };
            let ui = printer(common);
            (run_store(command, &ui), ui)
        }
        Command::Merge(args) => {
            let ui = printer(&args.common);
            (run_merge(args, &ui, &token), ui)
        }
        Command::Split(args) => {
            let ui = printer(&args.common);
            (run_split(args, &ui, &token), ui)
        }
        Command::Builder {
            command: BuilderCommand::Create(args),
        } => {
            let ui = printer(&args.common);
            (run_builder_create(args, &ui, &token), ui)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) if token.is_cancelled() => {
            ui.error(interrupted);
            ExitCode::from(130)
        }
        Err(e) => {
            let (first, details) = e.lines();
            ui.error(first);
            for d in details {
                ui.error_detail(d);
            }
            ExitCode::from(if e.is_usage() { 2 } else { 1 })
        }
    }
}

fn run_package(args: PackageArgs, ui: &Printer, cancel: &Cancel) -> Result<(), Error> {
    if args.publish {
        return Err(publish_hint("--publish"));
    }
    let mut opts = PackageOptions::new(args.output);
    opts.cancel = cancel.clone();
    opts.config = args.config;
    opts.path = args.path;
    opts.format = args.output_args.output_format()?;
    opts.split = args.output_args.split;
    opts.store = args.store;
    opts.strict = args.strict;
    opts.flatten = args.flatten;
    opts.compression = args.output_args.layer_compression(ui);
    opts.labels = args.labels.labels.into_iter().collect::<BTreeMap<_, _>>();
    if let Some(j) = compression_jobs(args.jobs)? {
        opts.jobs = j;
    }
    opts.flatten_exclude = args
        .flatten_exclude
        .iter()
        .map(|value| {
            ModuleId::parse(value).ok_or_else(|| Error::usage(format!(
                "invalid format {value}; please use '<buildpack-id>@<buildpack-version>' to exclude buildpack from flattening"
            )))
        })
        .collect::<Result<_, _>>()?;
    let mut target_warnings = Vec::new();
    let targets = parse_targets(&args.targets.targets, &mut target_warnings);
    if targets.is_err() {
        // pack prints the warnings it gave before the error.
        target_warnings.iter().for_each(|w| ui.warn(w));
    }
    // A bad target value is bad input like a bad buildpack.toml (exit 1), not a misuse of flags.
    opts.targets = targets.map_err(Error::into_failure)?;
    opts.target_warnings = target_warnings;
    let report = package_buildpack(&opts, ui).map_err(package_error)?;
    print_outputs(args.common.json, &report, &report.outputs);
    Ok(())
}

fn run_builder_create(args: BuilderCreateArgs, ui: &Printer, cancel: &Cancel) -> Result<(), Error> {
    if args.publish {
        return Err(publish_hint("--publish"));
    }
    // pack's exact text (compatibility).
    let config = args
        .config
        .ok_or_else(|| Error::usage("Please provide a builder config path, using --config."))?;
    let mut opts = cnbpkg::builder::BuilderOptions::new(args.output, config);
    opts.cancel = cancel.clone();
    opts.format = args.output_args.output_format()?;
    opts.split = args.output_args.split;
    opts.compression = args.output_args.layer_compression(ui);
    opts.labels = args.labels.labels.into_iter().collect::<BTreeMap<_, _>>();
    opts.store = args.store;
    if let Some(j) = compression_jobs(args.jobs)? {
        opts.jobs = j;
    }
    opts.flatten = args
        .flatten
        .iter()
        .map(|value| {
            value
                .split(',')
                .map(|one| {
                    ModuleId::parse(one.trim()).ok_or_else(|| {
                        // pack's exact text (compatibility).
                        Error::usage(format!(
                            "invalid format {one}; please use '<buildpack-id>@<buildpack-version>' to add buildpacks to be flattened"
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<_, _>>()?;
    let mut target_warnings = Vec::new();
    let targets = parse_targets(&args.targets.targets, &mut target_warnings);
    if targets.is_err() {
        target_warnings.iter().for_each(|w| ui.warn(w));
    }
    opts.targets = targets.map_err(Error::into_failure)?;
    opts.target_warnings = target_warnings;
    let report = cnbpkg::builder::create_builder(&opts, ui).map_err(builder_error)?;
    print_outputs(args.common.json, &report, &report.outputs);
    Ok(())
}

/// A `--flatten` value naming no buildpack of the builder is a misuse of the flag.
fn builder_error(e: Error) -> Error {
    match e {
        Error::NoSuchBuildpack {
            requested,
            available,
        } => Error::usage(format!(
            "--flatten {}: no such buildpack on the builder; its buildpacks are {}",
            requested.join(", "),
            available.join(", ")
        )),
        e => e,
    }
}

fn run_merge(args: MergeArgs, ui: &Printer, cancel: &Cancel) -> Result<(), Error> {
    let mut opts = cnbpkg::merge::MergeOptions::new(args.output, args.packages);
    opts.format = match args.format {
        FormatArg::File => OutputFormat::File,
        FormatArg::Layout => OutputFormat::Layout,
        FormatArg::Image => return Err(publish_hint("--format image")),
    };
    opts.cancel = cancel.clone();
    let report = cnbpkg::merge::merge(&opts, ui)?;
    let mut out = std::io::stdout().lock();
    if args.common.json {
        print_json(&mut out, &report);
    } else {
        let _ = writeln!(out, "{}", report.output.path.display());
    }
    Ok(())
}

fn run_split(args: SplitArgs, ui: &Printer, cancel: &Cancel) -> Result<(), Error> {
    let mut opts = cnbpkg::split::SplitOptions::new(args.package);
    opts.platforms = parse_platform_flags(&args.platforms)?;
    opts.output_dir = args.output_dir;
    opts.cancel = cancel.clone();
    let report = cnbpkg::split::split(&opts, ui)?;
    print_outputs(args.common.json, &report, &report.outputs);
    Ok(())
}

/// `--platform` values (`os[/arch[/variant]]`), for `push` and `split`.
fn parse_platform_flags(values: &[String]) -> Result<Vec<cnbpkg::cnb::PlatformFilter>, Error> {
    values
        .iter()
        .map(|p| {
            cnbpkg::cnb::PlatformFilter::parse(p).map_err(|_| {
                Error::usage(format!(
                    "invalid --platform '{p}': expected os[/arch[/variant]]"
                ))
            })
        })
        .collect()
}

/// `--target` values in pack's grammar: each value is a comma-separated list (pflag's
/// `StringSlice`), each item `os[/arch[/variant]][:name@version[;name@version]...]`. pack's
/// warnings are pushed into `warnings`, also those given before an error.
fn parse_targets(values: &[String], warnings: &mut Vec<String>) -> Result<Vec<Target>, Error> {
    let mut targets = Vec::new();
    for value in values {
        let list = target::split_list(value).map_err(|e| {
            // pack's exact text (compatibility): pflag's message for a bad flag value.
            Error::usage(format!(
                "invalid argument {value:?} for \"-t, --target\" flag: {e}"
            ))
        })?;
        for one in list {
            targets.push(target::parse_target(&one, warnings)?);
        }
    }
    Ok(targets)
}

fn run_inspect(args: InspectArgs) -> Result<(), Error> {
    let report = cnbpkg::inspect::inspect(&args.package)?;
    let mut out = std::io::stdout().lock();
    if args.common.json {
        print_json(&mut out, &report);
    } else {
        let _ = write!(out, "{}", cnbpkg::inspect::render(&report));
    }
    Ok(())
}

fn run_verify(args: VerifyArgs, ui: &Printer, cancel: &Cancel) -> Result<(), Error> {
    let mut warnings = Vec::new();
    let mut expect_platforms = Vec::new();
    for one in args.expect_platforms.iter().flat_map(|v| v.split(',')) {
        let t = cnbpkg::verify::parse_expected_platform(one, &mut warnings)
            .map_err(|e| Error::usage(format!("invalid --expect-platform '{one}': {e}")))?;
        expect_platforms.push(t);
    }
    warnings.iter().for_each(|w| ui.warn(w));
    let mut opts = cnbpkg::verify::VerifyOptions::default();
    opts.expect_platforms = expect_platforms;
    opts.cancel = cancel.clone();
    let report = cnbpkg::verify::verify_with(&args.package, &opts)?;
    let mut out = std::io::stdout().lock();
    if args.common.json {
        print_json(&mut out, &report);
    } else {
        for d in &report.defects {
            let line = format!("{}: {d}", args.package.display());
            let _ = writeln!(out, "{}", cnbpkg::ui::printable(&line));
        }
        let unlisted = report.defect_count.saturating_sub(report.defects.len());
        if unlisted > 0 {
            let _ = writeln!(
                out,
                "{}: … and {unlisted} more defect{}",
                cnbpkg::ui::printable(&args.package.display().to_string()),
                if unlisted == 1 { "" } else { "s" }
            );
        }
    }
    if report.is_ok() {
        ui.status(
            "Verified",
            format!(
                "{} ({} image{}, {} blobs, {} read)",
                args.package.display(),
                report.images,
                if report.images == 1 { "" } else { "s" },
                report.blobs,
                cnbpkg::ui::human_size(report.bytes)
            ),
        );
        Ok(())
    } else {
        Err(Error::other(format!(
            "{}: {} defect{} found",
            args.package.display(),
            report.defect_count,
            if report.defect_count == 1 { "" } else { "s" }
        )))
    }
}

/// The password given on standard input: one line, bounded (standard input may be an endless
/// stream given by mistake).
fn read_password_stdin() -> Result<String, Error> {
    const MAX_PASSWORD: u64 = 64 << 10;
    let mut line = Vec::new();
    std::io::BufRead::read_until(
        &mut std::io::Read::take(std::io::stdin().lock(), MAX_PASSWORD + 1),
        b'\n',
        &mut line,
    )
    .map_err(|e| Error::other(format!("reading the password from standard input: {e}")))?;
    if line.len() as u64 > MAX_PASSWORD {
        return Err(Error::other(format!(
            "the password on standard input is longer than {} KiB",
            MAX_PASSWORD >> 10
        )));
    }
    let line = String::from_utf8(line)
        .map_err(|_| Error::other("the password on standard input is not valid UTF-8"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn check_jobs(jobs: usize) -> Result<(), Error> {
    if !(1..=cnbpkg::registry::MAX_JOBS).contains(&jobs) {
        return Err(Error::usage(format!(
            "--jobs must be a number from 1 to {}",
            cnbpkg::registry::MAX_JOBS
        )));
    }
    Ok(())
}

fn run_pull(args: PullArgs, ui: &Printer, cancel: &Cancel) -> Result<(), Error> {
    let password = args.registry.password()?;
    for r in &args.references {
        cnbpkg::reference::Reference::parse(r)?;
    }
    let mut opts = cnbpkg::registry::PullOptions::new(args.references);
    opts.platforms = parse_platform_flags(&args.platforms)?;
    opts.store = args.store;
    opts.insecure = args.registry.insecure;
    opts.ca_cert = args.registry.ca_cert;
    opts.username = args.registry.username;
    opts.password = password;
    opts.jobs = args.registry.jobs;
    opts.output = args.output;
    opts.cancel = cancel.clone();
    let report = cnbpkg::registry::pull(&opts, ui).map_err(pull_error)?;
    ui.status(
        "Stored",
        format!(
            "{} {} in {} ({} blobs downloaded, {} already present, {} received)",
            report.images.len(),
            if report.images.len() == 1 {
                "image"
            } else {
                "images"
            },
            report.store.display(),
            report.downloaded,
            report.present,
            cnbpkg::ui::human_size(report.bytes_received)
        ),
    );
    let mut out = std::io::stdout().lock();
    if args.common.json {
        let value = serde_json::to_value(&report).expect("the report serializes");
        print_json(&mut out, &value);
    } else {
        for image in &report.images {
            let _ = writeln!(out, "{}@{}", image.reference, image.digest);
        }
    }
    Ok(())
}

fn run_store(command: StoreCommand, ui: &Printer) -> Result<(), Error> {
    let open = |args: &StoreArgs| -> Result<cnbpkg::store::Store, Error> {
        let root = match &args.store {
            Some(p) => p.clone(),
            None => cnbpkg::store::default_store()?,
        };
        // Looking at a store that does not exist creates none.
        if !root.exists() && std::fs::symlink_metadata(&root).is_err() {
            return Err(Error::invalid(
                &root,
                "no store there (cnbpkg pull makes and fills one)",
            ));
        }
        cnbpkg::store::Store::open_or_create(&root)
    };
    let mut out = std::io::stdout().lock();
    match command {
        StoreCommand::List(args) => {
            let images = open(&args)?.list()?;
            if args.common.json {
                print_json(&mut out, &images);
                return Ok(());
            }
            for i in &images {
                let platforms: Vec<String> = i
                    .platforms
                    .iter()
                    .map(|p| {
                        [p.os.as_str(), p.architecture.as_str(), p.variant.as_str()]
                            .iter()
                            .filter(|s| !s.is_empty())
                            .copied()
                            .collect::<Vec<_>>()
                            .join("/")
                    })
                    .collect();
                // A store's ref names, media types and platforms are anyone's text: each field
                // is printed with its controls escaped (a tab in one would forge a column).
                let show = |s: &str| cnbpkg::ui::printable(s).into_owned();
                let _ = writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}{}",
                    show(&i.reference),
                    i.digest,
                    show(&i.media_type),
                    if platforms.is_empty() {
                        "-".to_string()
                    } else {
                        show(&platforms.join(","))
                    },
                    cnbpkg::ui::human_size(i.size),
                    i.problem
                        .as_ref()
                        .map(|p| format!("\t(unreadable: {})", show(p)))
                        .unwrap_or_default()
                );
            }
        }
        StoreCommand::Remove(args) => {
            let names = args
                .references
                .iter()
                .map(|r| cnbpkg::reference::Reference::parse(r).map(|r| r.to_string()))
                .collect::<Result<Vec<_>, _>>()?;
            let store = open(&args.store)?;
            let mut removed = Vec::new();
            for d in store.remove_refs(&names)? {
                let name = d
                    .annotations
                    .get(cnbpkg::store::REF_NAME)
                    .cloned()
                    .unwrap_or_default();
                ui.status("Removed", format!("{name} ({})", d.digest));
                removed.push(serde_json::json!({ "reference": name, "digest": d.digest }));
            }
            if args.store.common.json {
                print_json(&mut out, &removed);
            }
        }
        StoreCommand::Gc(args) => {
            let store = open(&args)?;
            let report = store.gc()?;
            ui.status(
                "Collected",
                format!(
                    "{} blobs removed ({}), {} kept, {} interrupted downloads removed",
                    report.removed.len(),
                    cnbpkg::ui::human_size(report.bytes_removed),
                    report.kept,
                    report.downloads_removed
                ),
            );
            if args.common.json {
                print_json(&mut out, &report);
            }
        }
    }
    Ok(())
}

/// A pull's typed failures in the CLI's words (the rest as for push).
fn pull_error(e: Error) -> Error {
    match e {
        Error::DigestMismatch {
            path,
            expected,
            actual,
        } => Error::other(format!(
            "{}: the registry served content hashing to {actual} for blob {expected}; nothing was stored under the reference",
            path.display()
        )),
        Error::SizeMismatch {
            path,
            digest,
            expected,
            actual,
        } => Error::other(format!(
            "{}: the registry served {actual} bytes for blob {digest}, its descriptor says {expected}; nothing was stored under the reference",
            path.display()
        )),
        e => push_error(e),
    }
}

fn run_push(args: PushArgs, ui: &Printer, cancel: &Cancel) -> Result<(), Error> {
    let password = args.registry.password()?;
    // Checked (a temporary file made and removed again) before anything is sent; written only
    // at the end. Nothing stays registered for removal meanwhile: a pending output makes an
    // interrupt wait for the work to stop, and the push has no such checks.
    let digest_file = match &args.digest_file {
        Some(p) if p.is_dir() => {
            return Err(Error::usage(format!(
                "--digest-file {}: is a directory",
                p.display()
            )))
        }
        Some(p) => {
            let mut inputs = vec![("the package", args.package.as_path())];
            if let Some(ca) = &args.registry.ca_cert {
                inputs.push(("the CA certificate", ca.as_path()));
            }
            check_digest_file(p, &inputs)?;
            drop(cnbpkg::AtomicFile::create(p)?);
            Some(p.clone())
        }
        None => None,
    };
    let platforms = check_push_flags(&args)?;
    let mut references = args.references.into_iter();
    let mut opts =
        cnbpkg::registry::PushOptions::new(args.package, references.next().unwrap_or_default());
    opts.more_references = references.collect();
    opts.tags = args.tags;
    opts.platforms = platforms;
    opts.from = args.from;
    opts.insecure = args.registry.insecure;
    opts.ca_cert = args.registry.ca_cert;
    opts.username = args.registry.username;
    opts.password = password;
    opts.jobs = args.registry.jobs;
    opts.cancel = cancel.clone();
    let report = cnbpkg::registry::push(&opts, ui).map_err(push_error)?;
    ui.status(
        "Pushed",
        format!(
            "{} ({} uploaded, {} mounted, {} already present, {} sent)",
            match report.references.as_slice() {
                [one] => format!("{one}@{}", report.digest),
                all => format!("{} to {}", report.digest, all.join(", ")),
            },
            report.uploaded,
            report.mounted,
            report.skipped,
            cnbpkg::ui::human_size(report.bytes_sent)
        ),
    );
    if let Some(path) = digest_file {
        let mut f = cnbpkg::AtomicFile::create(&path)?;
        f.file()
            .write_all(format!("{}\n", report.digest).as_bytes())
            .map_err(|e| Error::io(f.dest().to_path_buf(), e))?;
        f.commit()?;
    }
    let mut out = std::io::stdout().lock();
    if args.common.json {
        // Through a JSON value, whose object keys are sorted: the report's fields print in
        // the order they always have.
        let value = serde_json::to_value(&report).expect("the report serializes");
        print_json(&mut out, &value);
    } else {
        let _ = writeln!(out, "{}", report.digest);
    }
    Ok(())
}

/// The flag values the library checks too, checked first so the message names the flag, in
/// the order the push reads them: references, `--tag`, `--from`, `--platform`; returns the
/// platform filters.
fn check_push_flags(args: &PushArgs) -> Result<Vec<cnbpkg::cnb::PlatformFilter>, Error> {
    use cnbpkg::reference::{valid_tag, Reference};
    let mut first = None;
    for r in &args.references {
        let parsed = Reference::parse(r)?;
        first.get_or_insert(parsed);
    }
    for t in &args.tags {
        if !valid_tag(t) {
            return Err(Error::usage(format!(
                "invalid --tag '{t}': not a valid tag"
            )));
        }
    }
    if let (Some(from), Some(first)) = (&args.from, &first) {
        cnbpkg::registry::parse_from(from, first).map_err(|e| match e {
            Error::Usage(m) => Error::usage(format!("--from {m}")),
            e => e,
        })?;
    }
    parse_platform_flags(&args.platforms)
}

/// Packaging's typed failures in the CLI's words, naming the flags.
fn package_error(e: Error) -> Error {
    match e {
        Error::NoSuchBuildpack {
            requested,
            available,
        } => {
            let quoted = |v: &[String]| {
                v.iter()
                    .map(|s| format!("'{s}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            Error::usage(format!(
                "--flatten-exclude {}: no such buildpack in this package; its buildpacks are {}",
                quoted(&requested),
                quoted(&available)
            ))
        }
        Error::ForeignExecutables { message, .. } => {
            Error::other(format!("{message} (--strict)"))
        }
        Error::AmbiguousDependency {
            path,
            target,
            images,
        } => Error::invalid(
            path,
            format!(
                "dependency has several images that fit target {target} ({}); name the architecture with --target",
                images.join(", ")
            ),
        ),
        Error::TargetWithoutArch { target } => Error::other(format!(
            "target '{target}' has no architecture, and a package with several images needs one for each (readers choose an image by its platform); give it an arch, or package with --split"
        )),
        e => e,
    }
}

/// A push's typed failures in the CLI's words.
fn push_error(e: Error) -> Error {
    match e {
        Error::DigestMismatch {
            path,
            expected,
            actual,
        } => Error::invalid(
            path,
            format!(
                "blob {expected} does not match its digest (its content hashes to {actual}): the package is damaged; nothing was tagged"
            ),
        ),
        Error::SizeMismatch {
            digest,
            expected,
            actual,
            ..
        } => Error::other(format!(
            "blob {digest} is {actual} bytes in the package, its descriptor says {expected}"
        )),
        Error::NoPlatformMatch {
            path,
            requested,
            available,
        } => Error::usage(format!(
            "no image in {} matches --platform {}; it has {}",
            path.display(),
            requested.join(", "),
            available.join(", ")
        )),
        Error::Auth {
            registry,
            kind: AuthFailure::Missing,
            message,
        } => Error::Auth {
            registry,
            kind: AuthFailure::Missing,
            message: format!(
                "{message}: use --username with --password-stdin, or log in with docker or podman"
            ),
        },
        Error::Tls {
            registry,
            host,
            kind: TlsFailure::CaAsServer,
        } => Error::other(format!(
            "{registry}: the TLS certificate of {host} is a CA certificate that is not trusted as the server's own; pass --ca-cert with exactly that certificate, or put it in certs.d/{registry}/ (see push --help)"
        )),
        Error::Tls {
            registry,
            host,
            kind: TlsFailure::UnknownIssuer,
        } => Error::other(format!(
            "{registry}: the TLS certificate of {host} is not trusted (unknown issuer); pass --ca-cert with the registry's CA certificate (PEM), or --insecure for a plain-HTTP registry"
        )),
        e => e,
    }
}

/// `--digest-file` may replace a regular file, never a symlink or anything else, and never an
/// input of the push (the package, a file inside a layout directory, the CA certificate): that
/// is checked before anything is sent, since the file is written only after the push.
fn check_digest_file(path: &Path, inputs: &[(&str, &Path)]) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt;
    let refuse = |problem: String| {
        Err(Error::invalid(
            path,
            format!("--digest-file {problem}; nothing was sent: choose another file"),
        ))
    };
    let existing = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => return refuse("is a symbolic link".into()),
        Ok(m) if !m.is_file() => return refuse("exists and is not a regular file".into()),
        Ok(m) => Some(m),
        Err(_) => None,
    };
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = std::fs::canonicalize(parent).ok();
    for (role, input) in inputs {
        let Ok(meta) = std::fs::metadata(input) else {
            continue;
        };
        let same = existing
            .as_ref()
            .is_some_and(|m| (m.dev(), m.ino()) == (meta.dev(), meta.ino()));
        let inside = meta.is_dir()
            && std::fs::canonicalize(input)
                .ok()
                .zip(dir.as_ref())
                .is_some_and(|(input, dir)| dir.starts_with(input));
        if same || inside {
            let what = if same { "is" } else { "lies inside" };
            return refuse(format!("{what} {role} ({})", input.display()));
        }
    }
    Ok(())
}

/// A report as pretty JSON on stdout (`--json`).
/// What a command that writes files prints: its report as JSON, or the paths it wrote.
fn print_outputs(
    json: bool,
    report: &impl serde::Serialize,
    outputs: &[cnbpkg::package::OutputReport],
) {
    let mut out = std::io::stdout().lock();
    if json {
        print_json(&mut out, report);
    } else {
        for o in outputs {
            let _ = writeln!(out, "{}", o.path.display());
        }
    }
}

fn print_json(out: &mut impl Write, report: &impl serde::Serialize) {
    let _ = writeln!(
        out,
        "{}",
        serde_json::to_string_pretty(report).expect("report serializes")
    );
}
