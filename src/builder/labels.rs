//! A builder's labels as pack writes them, Go `encoding/json` byte for byte (builder.md §2.5):
//! `io.buildpacks.builder.metadata`, the layers labels, the order, order-extensions and system
//! labels (their JSON from the configuration's types) and the mixins label, over the build
//! image's labels and `--label` values.

use std::collections::BTreeMap;

use serde::Serialize;

use super::config::{self, BuilderConfig, RunImage};
use super::layers::ModuleLabels;
use super::lifecycle::LifecycleDescriptor;
use crate::descriptor::{LayersLabel, ModuleInfo};
use crate::digest::Digest;
use crate::json::go_marshal;
use crate::package::select::ModulePlan;

pub(crate) use crate::cnb::{
    LABEL_BUILDER_METADATA, LABEL_MIXINS, LABEL_ORDER, LABEL_ORDER_EXTENSIONS, LABEL_SYSTEM,
};
/// Who made the builder (`createdBy.name`).
pub(crate) const CREATOR_NAME: &str = "cnbpkg";

/// What the metadata label holds, in pack's field order.
pub(crate) struct BuilderMetadata<'a> {
    pub(crate) description: &'a str,
    /// The buildpacks placed on the builder, sorted by `id@version`.
    pub(crate) buildpacks: Vec<&'a ModuleInfo>,
    /// The extensions (`null` when none).
    pub(crate) extensions: Vec<&'a ModuleInfo>,
    /// `[stack]`'s run image when `stack.id` is set, else the empty one.
    pub(crate) stack_run_image: RunImage,
    /// The lifecycle object, already Go JSON.
    pub(crate) lifecycle_json: &'a str,
    /// `[[run.images]]`.
    pub(crate) run_images: &'a [RunImage],
}

/// `io.buildpacks.builder.metadata`: pack's `Metadata` struct, with `createdBy` naming cnbpkg
/// and its version.
pub(crate) fn metadata_label(m: &BuilderMetadata<'_>) -> String {
    #[derive(Serialize)]
    struct Stack<'a> {
        #[serde(rename = "runImage")]
        run_image: &'a RunImage,
    }
    #[derive(Serialize)]
    struct CreatedBy<'a> {
        name: &'a str,
        version: &'a str,
    }
    let nil_if_empty = |v: &Vec<&ModuleInfo>| (!v.is_empty()).then(|| go_marshal(v));
    let extensions = nil_if_empty(&m.extensions).unwrap_or_else(|| "null".into());
    let buildpacks = nil_if_empty(&m.buildpacks).unwrap_or_else(|| "null".into());
    let images = config::run_images_json(m.run_images);
    // The lifecycle object comes as JSON; the rest is marshalled in pack's field order around it.
    format!(
        "{{\"description\":{},\"buildpacks\":{buildpacks},\"extensions\":{extensions},\"stack\":{},\"lifecycle\":{},\"createdBy\":{},\"images\":{images}}}",
        go_marshal(m.description),
        go_marshal(&Stack {
            run_image: &m.stack_run_image
        }),
        m.lifecycle_json,
        go_marshal(&CreatedBy {
            name: CREATOR_NAME,
            version: env!("CARGO_PKG_VERSION"),
        }),
    )
}

/// What a builder image's labels are made of.
pub(crate) struct LabelInputs<'a> {
    /// The build image's labels (kept).
    pub(crate) base: &'a BTreeMap<String, String>,
    /// The build image's layers (its config's diffIDs).
    pub(crate) base_diff_ids: &'a [Digest],
    /// `--label` values (over the base's).
    pub(crate) extra: &'a BTreeMap<String, String>,
    pub(crate) cfg: &'a BuilderConfig,
    /// The buildpacks and extensions placed, sorted by `id@version`.
    pub(crate) buildpacks: &'a [ModulePlan],
    pub(crate) extensions: &'a [ModulePlan],
    pub(crate) lifecycle: &'a LifecycleDescriptor,
    /// Their layers labels.
    pub(crate) module_labels: ModuleLabels,
}

/// Every label of a builder image: the build image's, then `--label` values, then pack's (which
/// win). An error (to be named after the build image) when its mixins label is not a list.
pub(crate) fn builder_labels(
    i: &LabelInputs<'_>,
) -> std::result::Result<BTreeMap<String, String>, String> {
    let cfg = i.cfg;
    let mut labels = i.base.clone();
    labels.extend(i.extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    let stack_run_image = match &cfg.stack {
        Some(s) if !s.id.is_empty() => RunImage {
            image: s.run_image.clone(),
            mirrors: s.run_image_mirrors.clone(),
        },
        _ => RunImage::default(),
    };
    let lifecycle_json = crate::builder::lifecycle::metadata_json(i.lifecycle);
    // A build image that is a builder already keeps the modules it has, as pack extends one:
    // those its layers labels give a layer it holds.
    let (mut base_buildpacks, mut base_extensions) = base_metadata_modules(i.base);
    for (kept, name) in [
        (&mut base_buildpacks, crate::cnb::LABEL_LAYERS),
        (&mut base_extensions, crate::cnb::LABEL_EXTENSION_LAYERS),
    ] {
        let held = base_layers(i.base, i.base_diff_ids, name);
        kept.retain(|m| held.get(&m.id, &m.version).is_some());
    }
    let metadata = metadata_label(&BuilderMetadata {
        description: &cfg.description,
        buildpacks: kept_then_added(&base_buildpacks, i.buildpacks),
        extensions: kept_then_added(&base_extensions, i.extensions),
        stack_run_image,
        lifecycle_json: &lifecycle_json,
        run_images: &cfg.run_images,
    });
    labels.insert(LABEL_BUILDER_METADATA.into(), metadata);
    labels.insert(LABEL_ORDER.into(), config::order_label(&cfg.order));
    labels.insert(
        LABEL_ORDER_EXTENSIONS.into(),
        config::order_label(&cfg.order_extensions),
    );
    for (name, added) in [
        (crate::cnb::LABEL_LAYERS, &i.module_labels.buildpacks),
        (
            crate::cnb::LABEL_EXTENSION_LAYERS,
            &i.module_labels.extensions,
        ),
    ] {
        let mut merged = base_layers(i.base, i.base_diff_ids, name);
        for (id, versions) in &added.0 {
            for (version, info) in versions {
                merged.insert_info(id, version, info.clone());
            }
        }
        labels.insert(name.into(), merged.to_json());
    }
    if let Some(system) = &cfg.system {
        labels.insert(LABEL_SYSTEM.into(), config::system_label(system));
    }
    let mixins = mixins_label(i.base.get(LABEL_MIXINS).map(String::as_str))
        .ok_or_else(|| format!("label '{LABEL_MIXINS}' is not a list of strings"))?;
    labels.insert(LABEL_MIXINS.into(), mixins);
    Ok(labels)
}

/// The modules a build image that is a builder lists in its layers label `name` (none for
/// another image, or a label that does not parse: the builder's own label replaces it), less
/// those whose layer is none of its `diff_ids`: a label does not make a layer the image lacks.
pub(crate) fn base_layers(
    base: &BTreeMap<String, String>,
    diff_ids: &[Digest],
    name: &str,
) -> LayersLabel {
    let mut label = base
        .get(name)
        .and_then(|v| LayersLabel::parse(v).ok())
        .unwrap_or_default();
    let held = |diff_id: &str| diff_ids.iter().any(|d| d.to_string() == diff_id);
    for versions in label.0.values_mut() {
        versions.retain(|_, info| held(&info.layer_diff_id));
    }
    label.0.retain(|_, versions| !versions.is_empty());
    label
}

/// The buildpacks and extensions a base builder's metadata label lists.
fn base_metadata_modules(base: &BTreeMap<String, String>) -> (Vec<ModuleInfo>, Vec<ModuleInfo>) {
    #[derive(serde::Deserialize, Default)]
    struct Modules {
        #[serde(default)]
        buildpacks: Option<Vec<ModuleInfo>>,
        #[serde(default)]
        extensions: Option<Vec<ModuleInfo>>,
    }
    let found: Modules = base
        .get(LABEL_BUILDER_METADATA)
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or_default();
    (
        found.buildpacks.unwrap_or_default(),
        found.extensions.unwrap_or_default(),
    )
}

/// The base builder's modules that are not added again, then the added ones.
fn kept_then_added<'a>(kept: &'a [ModuleInfo], added: &'a [ModulePlan]) -> Vec<&'a ModuleInfo> {
    let is_added = |k: &ModuleInfo| {
        added
            .iter()
            .any(|m| m.descriptor.info.id == k.id && m.descriptor.info.version == k.version)
    };
    kept.iter()
        .filter(|k| !is_added(k))
        .chain(added.iter().map(|m| &m.descriptor.info))
        .collect()
}

/// `io.buildpacks.stack.mixins`: the build image's mixins marshalled again (`null` when it
/// has none); `None` when its label is not a list of strings.
pub(crate) fn mixins_label(build_image_mixins: Option<&str>) -> Option<String> {
    match build_image_mixins {
        None => Some("null".into()),
        Some(text) => {
            let mixins: Option<Vec<String>> = serde_json::from_str(text).ok()?;
            Some(go_marshal(&mixins))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The label's shape: pack's field order, nil slices as `null`, HTML characters escaped.
    #[test]
    fn metadata_label_bytes() {
        let mut info = ModuleInfo {
            id: "acme/a".into(),
            version: "1.0.0".into(),
            homepage: "https://x/?a&b".into(),
            ..Default::default()
        };
        info.name = "A".into();
        let run = [RunImage {
            image: "run".into(),
            mirrors: vec!["m1".to_string()],
        }];
        let m = BuilderMetadata {
            description: "d <1>",
            buildpacks: vec![&info],
            extensions: vec![],
            stack_run_image: RunImage::default(),
            lifecycle_json: "{\"version\":\"0.20.5\"}",
            run_images: &run,
        };
        let expected = format!(
            "{{\"description\":\"d \\u003c1\\u003e\",\"buildpacks\":[{{\"id\":\"acme/a\",\"name\":\"A\",\"version\":\"1.0.0\",\"homepage\":\"https://x/?a\\u0026b\"}}],\"extensions\":null,\"stack\":{{\"runImage\":{{\"image\":\"\",\"mirrors\":null}}}},\"lifecycle\":{{\"version\":\"0.20.5\"}},\"createdBy\":{{\"name\":\"cnbpkg\",\"version\":\"{}\"}},\"images\":[{{\"image\":\"run\",\"mirrors\":[\"m1\"]}}]}}",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(metadata_label(&m), expected);
    }

    /// Mixins: `null` without a label, the list marshalled again, `None` for a label that is
    /// not a list of strings.
    #[test]
    fn mixins_table() {
        let table: &[(Option<&str>, Option<&str>)] = &[
            (None, Some("null")),
            (Some("[\"a\", \"build:b\"]"), Some("[\"a\",\"build:b\"]")),
            (Some("null"), Some("null")),
            (Some("{}"), None),
        ];
        for (input, expected) in table {
            assert_eq!(mixins_label(*input).as_deref(), *expected, "{input:?}");
        }
    }
}
