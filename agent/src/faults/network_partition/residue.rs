//! The residue check: a fingerprint of every nftables table taken before the partition, and
//! the comparison after its revert that names every table that is not as it was.
//!
//! Fingerprints come from the stateless listing (`nft -j -s list ruleset`: no counters, which
//! change with every packet) with rule and object handles left out (a rule deleted and added
//! back the same is the same rule). They are stored per table, so a difference names its
//! table, and the journal stays small even on hosts with thousands of rules.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::rules::TABLE_PREFIX;

/// The state of the host's ruleset before the fault: table (`"inet filter"`) → fingerprint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Baseline {
    /// One fingerprint (16 hex digits) per table.
    pub tables: BTreeMap<String, String>,
}

/// FNV-1a, 64 bits: stable across builds and platforms (unlike std's hasher), which matters
/// because a baseline journaled by one agent may be checked by its upgraded successor.
/// Change detection, not security: nothing here is adversarial.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Fingerprints every table of a stateless ruleset listing, except the partition tables of
/// gameday faults: `own` is the fault's table (checked separately, by name), and the others'
/// come and go with their own faults, each of which checks itself.
pub fn baseline(ruleset: &Value, own: &str) -> Baseline {
    let mut hashes: BTreeMap<String, u64> = BTreeMap::new();
    for (table, object) in objects(ruleset) {
        if is_gameday(&table, own) {
            continue;
        }
        let h = hashes.entry(table).or_insert(fnv1a(b""));
        // Chaining in listing order: nft lists a table's objects in a stable order, and rule
        // order matters to what a chain does.
        let bytes = object.to_string();
        *h = fnv1a(&[h.to_le_bytes().as_slice(), bytes.as_bytes()].concat());
    }
    Baseline {
        tables: hashes
            .into_iter()
            .map(|(t, h)| (t, format!("{h:016x}")))
            .collect(),
    }
}

/// Every difference between `before` and the ruleset now, `own` table first; empty when the
/// host is as it was.
pub fn compare(before: &Baseline, ruleset_now: &Value, family: &str, own: &str) -> Vec<String> {
    let mut residue = Vec::new();
    let own_key = format!("{family} {own}");
    if objects(ruleset_now).any(|(t, _)| t == own_key) {
        residue.push(format!(
            "nftables table {own_key} (this fault's) is still present"
        ));
    }
    let now = baseline(ruleset_now, own);
    for (table, hash) in &before.tables {
        match now.tables.get(table) {
            None => residue.push(format!(
                "nftables table {table} existed before the fault and is gone now"
            )),
            Some(h) if h != hash => residue.push(format!(
                "nftables table {table} differs from before the fault (its chains, rules or sets changed)"
            )),
            Some(_) => {}
        }
    }
    for table in now.tables.keys() {
        if !before.tables.contains_key(table) {
            residue.push(format!(
                "nftables table {table} did not exist before the fault and does now"
            ));
        }
    }
    residue
}

fn is_gameday(table_key: &str, own: &str) -> bool {
    let name = table_key.split_once(' ').map_or(table_key, |(_, n)| n);
    name == own || name.starts_with(TABLE_PREFIX)
}

/// The objects of a listing with the table each belongs to (`"inet filter"`), handles
/// stripped. The `metainfo` header and anything not tied to a table are skipped.
fn objects(ruleset: &Value) -> impl Iterator<Item = (String, Value)> + '_ {
    ruleset
        .get("nftables")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let (kind, body) = entry.as_object()?.iter().next()?;
            let family = body.get("family")?.as_str()?;
            let table = if kind == "table" {
                body.get("name")?
            } else {
                body.get("table")?
            }
            .as_str()?;
            let mut body = body.clone();
            if let Some(map) = body.as_object_mut() {
                map.remove("handle");
            }
            let mut object = serde_json::Map::new();
            object.insert(kind.clone(), body);
            Some((format!("{family} {table}"), Value::Object(object)))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn listing(objects: Vec<Value>) -> Value {
        let mut all = vec![json!({"metainfo": {"version": "1.0.6", "json_schema_version": 1}})];
        all.extend(objects);
        json!({ "nftables": all })
    }

    fn filter(handle: u32, port: u32) -> Vec<Value> {
        vec![
            json!({"table": {"family": "inet", "name": "filter", "handle": handle}}),
            json!({"chain": {"family": "inet", "table": "filter", "name": "input", "handle": 1,
                "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}}),
            json!({"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": handle + 3,
                "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "th", "field": "dport"}}, "right": port}}, {"accept": null}]}}),
        ]
    }

    #[test]
    fn fnv_is_the_published_function() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn same_ruleset_has_no_residue_even_with_new_handles() {
        let before = baseline(&listing(filter(1, 22)), "gameday_x_1");
        assert_eq!(before.tables.len(), 1);
        assert!(compare(&before, &listing(filter(7, 22)), "inet", "gameday_x_1").is_empty());
    }

    #[test]
    fn names_every_difference() {
        let before = baseline(&listing(filter(1, 22)), "gameday_x_1");
        let mut now = filter(1, 2222);
        now.push(json!({"table": {"family": "ip", "name": "nat", "handle": 9}}));
        now.push(json!({"table": {"family": "inet", "name": "gameday_x_1", "handle": 10}}));
        let residue = compare(&before, &listing(now), "inet", "gameday_x_1");
        assert_eq!(
            residue,
            [
                "nftables table inet gameday_x_1 (this fault's) is still present",
                "nftables table inet filter differs from before the fault (its chains, rules or sets changed)",
                "nftables table ip nat did not exist before the fault and does now",
            ]
        );
        let gone = compare(&before, &listing(vec![]), "inet", "gameday_x_1");
        assert_eq!(
            gone,
            ["nftables table inet filter existed before the fault and is gone now"]
        );
    }

    #[test]
    fn other_gameday_tables_are_not_this_faults_residue() {
        let before = baseline(&listing(filter(1, 22)), "gameday_a_1");
        let mut now = filter(1, 22);
        now.push(json!({"table": {"family": "inet", "name": "gameday_b_2", "handle": 4}}));
        assert!(compare(&before, &listing(now), "inet", "gameday_a_1").is_empty());
    }
}
