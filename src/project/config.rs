//! Model configuration: the folder tree of `+config` keys, and merging most-specific-wins.

use serde_json::{Map, Value};

/// One node's configuration, as dbt keeps it: a flat map of config names to values.
pub type Config = Map<String, Value>;

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
        let mut out = self.configs.clone();
        let mut node = self;
        for part in path {
            match node.children.iter().find(|(k, _)| k == part) {
                Some((_, child)) => {
                    merge_into(&mut out, &child.configs);
                    node = child;
                }
                None => break,
            }
        }
        out
    }
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

/// A config value that may be one string or a list of strings.
pub fn as_string_list(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Null => None,
                other => Some(other.to_string()),
            })
            .collect(),
        _ => Vec::new(),
    }
}

pub fn get_str<'a>(config: &'a Config, key: &str) -> Option<&'a str> {
    config.get(key).and_then(Value::as_str)
}

pub fn get_bool(config: &Config, key: &str) -> Option<bool> {
    match config.get(key)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Some(true),
            "false" | "no" | "0" => Some(false),
            _ => None,
        },
        _ => None,
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
    fn meta_maps_merge() {
        let mut base = Config::new();
        base.insert("meta".into(), serde_json::json!({"a": 1, "b": 1}));
        let mut over = Config::new();
        over.insert("meta".into(), serde_json::json!({"b": 2}));
        merge_into(&mut base, &over);
        assert_eq!(base["meta"], serde_json::json!({"a": 1, "b": 2}));
    }
}
