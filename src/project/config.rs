//! Model configuration: the folder tree of `+config` keys, and merging most-specific-wins.

use serde_json::Value;

pub use crate::model::config::{Config, as_string_list, get_bool, get_str, json_kind};

/// Configs whose values are maps by nature, so a mapping under them is not a sub-folder.
const MAP_CONFIGS: &[&str] = &[
    "meta",
    "options",
    "docs",
    "persist_docs",
    "column_types",
    "grants",
    "contract",
    "settings",
];

/// Configs that accumulate from the outer folder inwards instead of being replaced.
const ADDITIVE_LISTS: &[&str] = &["tags"];
const MERGED_MAPS: &[&str] = &["meta", "options"];

#[derive(Debug, Default, Clone)]
pub struct ConfigTree {
    pub configs: Config,
    pub children: Vec<(String, ConfigTree)>,
}

impl ConfigTree {
    /// Builds the tree from a `models:` block. `project_name` is the dbt-style top key; its
    /// subtree is the project's, and keys beside it apply at the root too.
    pub fn from_yaml(models: Option<&serde_yaml::Value>, project_name: &str) -> ConfigTree {
        let Some(serde_yaml::Value::Mapping(map)) = models else {
            return ConfigTree::default();
        };
        let mut root = Self::from_mapping(map);
        if let Some(pos) = root.children.iter().position(|(k, _)| k == project_name) {
            let (_, project) = root.children.remove(pos);
            merge_into(&mut root.configs, &project.configs);
            root.children.extend(project.children);
        }
        root
    }

    /// Builds the tree of a whole `models:` block as dbt matches a node's fqn against it:
    /// the first level names packages (the project's own among them).
    pub fn from_yaml_by_package(models: Option<&serde_yaml::Value>) -> ConfigTree {
        match models {
            Some(serde_yaml::Value::Mapping(map)) => Self::from_mapping(map),
            _ => ConfigTree::default(),
        }
    }

    fn from_mapping(map: &serde_yaml::Mapping) -> ConfigTree {
        let mut tree = ConfigTree::default();
        for (key, value) in map {
            let Some(key) = key.as_str() else { continue };
            if let Some(name) = key.strip_prefix('+') {
                tree.configs
                    .insert(name.to_string(), crate::project::yaml::to_json(value));
            } else if value.is_mapping() && !MAP_CONFIGS.contains(&key) {
                tree.children.push((
                    key.to_string(),
                    Self::from_mapping(value.as_mapping().expect("checked")),
                ));
            } else {
                tree.configs
                    .insert(key.to_string(), crate::project::yaml::to_json(value));
            }
        }
        tree
    }

    /// The merged config for a node at `path` (folders, then the node name).
    pub fn resolve(&self, path: &[String]) -> Config {
        self.walk(path, merge_into)
    }

    /// The keys set along `path`, each level's replacing the one before whole (dbt's
    /// `unrendered_config`, a shallow update per level).
    pub fn resolve_shallow(&self, path: &[String]) -> Config {
        self.walk(path, |out, level| {
            out.extend(level.iter().map(|(k, v)| (k.clone(), v.clone())));
        })
    }

    fn walk(&self, path: &[String], apply: impl Fn(&mut Config, &Config)) -> Config {
        let mut out = Config::new();
        apply(&mut out, &self.configs);
        let mut node = self;
        for part in path {
            match node.children.iter().find(|(k, _)| k == part) {
                Some((_, child)) => {
                    apply(&mut out, &child.configs);
                    node = child;
                }
                None => break,
            }
        }
        out
    }
}

/// The `models:`, `seeds:` and `data_tests:` blocks of one project file, by package (see
/// [`ConfigTree::from_yaml_by_package`]), for the nodes of installed packages.
#[derive(Debug, Default, Clone)]
pub struct PackageTrees {
    pub models: ConfigTree,
    pub seeds: ConfigTree,
    pub tests: ConfigTree,
    pub snapshots: ConfigTree,
}

/// Layers `over` on top of `base`: later wins, except tags accumulate and meta/options merge.
pub fn merge_into(base: &mut Config, over: &Config) {
    for (key, value) in over {
        let k = key.as_str();
        if ADDITIVE_LISTS.contains(&k) {
            let mut tags = as_string_list(base.get(k));
            for t in as_string_list(Some(value)) {
                if !tags.contains(&t) {
                    tags.push(t);
                }
            }
            base.insert(key.clone(), Value::from(tags));
        } else if MERGED_MAPS.contains(&k)
            && let (Some(Value::Object(existing)), Value::Object(new)) = (base.get_mut(k), value)
        {
            for (mk, mv) in new {
                existing.insert(mk.clone(), mv.clone());
            }
        } else {
            base.insert(key.clone(), value.clone());
        }
    }
}

/// The shape a known config's value must have.
#[derive(Clone, Copy)]
enum Shape {
    Text,
    Flag,
    TextOrList,
    Map,
    Count,
    Size,
}

impl Shape {
    fn fits(self, v: &Value) -> bool {
        match (self, v) {
            (_, Value::Null) => true,
            (Shape::Text, Value::String(_)) => true,
            (Shape::Flag, Value::Bool(_)) => true,
            (Shape::Flag, Value::String(s)) => matches!(
                s.trim().to_ascii_lowercase().as_str(),
                "true" | "false" | "yes" | "no" | "1" | "0"
            ),
            (Shape::TextOrList, Value::String(_)) => true,
            (Shape::TextOrList, Value::Array(items)) => items.iter().all(Value::is_string),
            (Shape::Map, Value::Object(_)) => true,
            (Shape::Count, Value::Number(n)) => n.is_u64(),
            (Shape::Size, Value::String(_)) => true,
            (Shape::Size, Value::Number(n)) => n.is_u64(),
            _ => false,
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Shape::Text => "a string",
            Shape::Flag => "true or false",
            Shape::TextOrList => "a string or a list of strings",
            Shape::Map => "a mapping",
            Shape::Count => "a whole number",
            Shape::Size => "a size such as '128MB' or a number of bytes",
        }
    }
}

/// The configs lakeflow reads, with the shape of their values. Others pass through untouched
/// (they are the user's, or dbt's for tools further down).
const SHAPES: &[(&str, Shape)] = &[
    ("materialized", Shape::Text),
    ("location", Shape::Text),
    ("alias", Shape::Text),
    ("schema", Shape::Text),
    ("database", Shape::Text),
    ("format", Shape::Text),
    ("incremental_strategy", Shape::Text),
    ("on_schema_change", Shape::Text),
    ("delimiter", Shape::Text),
    ("severity", Shape::Text),
    ("store_failures_as", Shape::Text),
    ("fail_calc", Shape::Text),
    ("warn_if", Shape::Text),
    ("error_if", Shape::Text),
    ("where", Shape::Text),
    ("enabled", Shape::Flag),
    ("full_refresh", Shape::Flag),
    ("store_failures", Shape::Flag),
    ("tags", Shape::TextOrList),
    ("partition_by", Shape::TextOrList),
    ("unique_key", Shape::TextOrList),
    ("options", Shape::Map),
    ("meta", Shape::Map),
    ("column_types", Shape::Map),
    ("table_properties", Shape::Map),
    ("tblproperties", Shape::Map),
    ("limit", Shape::Count),
    ("target_file_size", Shape::Size),
];

/// The first known config whose value has the wrong shape: (key, what it must be, what it is).
pub fn wrong_shape(config: &Config) -> Option<(&str, &'static str, &'static str)> {
    SHAPES.iter().find_map(|(key, shape)| {
        let v = config.get(*key)?;
        (!shape.fits(v)).then(|| (*key, shape.expected(), json_kind(v)))
    })
}

/// Checks the configs of `config` read from a YAML file, as a located error.
pub fn check_shapes(config: &Config, keys: &super::yaml::Keys) -> crate::error::Result<()> {
    match wrong_shape(config) {
        Some((key, expected, found)) => Err(super::yaml::wrong_type(
            keys.file, keys.text, key, expected, found,
        )),
        None => Ok(()),
    }
}

impl ConfigTree {
    /// Every folder's configs have the shapes lakeflow reads.
    pub fn check_types(&self, keys: &super::yaml::Keys) -> crate::error::Result<()> {
        check_shapes(&self.configs, keys)?;
        self.children
            .iter()
            .try_for_each(|(_, child)| child.check_types(keys))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(yaml: &str) -> ConfigTree {
        let v: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
        ConfigTree::from_yaml(Some(&v), "shop")
    }

    #[test]
    fn most_specific_folder_wins_and_tags_accumulate() {
        let t = tree(
            "shop:\n  +materialized: view\n  +tags: [all]\n  silver:\n    +materialized: external\n    +tags: silver\n    events:\n      +materialized: table\n",
        );
        let c = t.resolve(&["silver".into(), "orders".into()]);
        assert_eq!(get_str(&c, "materialized"), Some("external"));
        assert_eq!(as_string_list(c.get("tags")), vec!["all", "silver"]);
        let e = t.resolve(&["silver".into(), "events".into()]);
        assert_eq!(get_str(&e, "materialized"), Some("table"));
        let g = t.resolve(&["gold".into(), "x".into()]);
        assert_eq!(get_str(&g, "materialized"), Some("view"));
    }

    #[test]
    fn plain_keys_and_map_configs_are_configs_not_folders() {
        let t = tree("bronze:\n  materialized: external\n  options:\n    compression: zstd\n");
        let c = t.resolve(&["bronze".into(), "raw".into()]);
        assert_eq!(get_str(&c, "materialized"), Some("external"));
        assert_eq!(c["options"]["compression"], "zstd");
    }

    #[test]
    fn wrong_shapes_are_found() {
        let c = tree("+materialized: {x: 1}\n").resolve(&[]);
        assert_eq!(
            wrong_shape(&c),
            Some(("materialized", "a string", "a mapping"))
        );
        let c = tree("+tags: [a, {b: 1}]\n+enabled: maybe\n").resolve(&[]);
        assert_eq!(wrong_shape(&c).map(|w| w.0), Some("enabled"));
        let ok = tree("+tags: a\n+enabled: 'false'\n+limit: 3\n+location: null\n").resolve(&[]);
        assert_eq!(wrong_shape(&ok), None);
    }

    #[test]
    fn meta_maps_merge() {
        let mut base = Config::new();
        base.insert("meta".into(), serde_json::json!({"a": 1, "b": 1}));
        let mut over = Config::new();
        over.insert("meta".into(), serde_json::json!({"b": 2}));
        merge_into(&mut base, &over);
        assert_eq!(base["meta"], serde_json::json!({"a": 1, "b": 2}));
    }
}
