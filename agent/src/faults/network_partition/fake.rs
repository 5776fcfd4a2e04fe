//! A recording stand-in for `nft`: it keeps tables in memory with the same transaction rules
//! (a failing batch changes nothing, `create` refuses an existing table, deleting a missing
//! table is ENOENT) and reports configurable counters.

use std::collections::BTreeMap;
use std::sync::Mutex;

use nftables::schema::{Chain, NfCmd, NfListObject, NfObject, Nftables, Rule, Table};
use nftables::stmt::{AnonymousCounter, Counter, Statement};
use nftables::types::NfFamily;
use serde_json::{json, Value};

use crate::os::nft::{family_name, Firewall, NftError};

/// How the fake misbehaves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Works.
    #[default]
    Ok,
    /// No `nft` binary.
    NoNft,
    /// No CAP_NET_ADMIN.
    NoPermission,
    /// Listings work, every change fails.
    ApplyFails,
    /// Deletes report success and change nothing.
    DeleteKeeps,
}

#[derive(Default)]
struct FakeTable {
    chains: Vec<Chain<'static>>,
    rules: Vec<Rule<'static>>,
}

#[derive(Default)]
struct State {
    tables: BTreeMap<(String, String), FakeTable>,
    batches: Vec<Nftables<'static>>,
    host: Vec<Value>,
    drop_counter: (usize, usize),
    exempt_counter: usize,
    mode: Mode,
}

/// The fake firewall.
#[derive(Default)]
pub struct FakeFirewall {
    state: Mutex<State>,
}

fn owned(batch: &Nftables<'_>) -> Nftables<'static> {
    serde_json::from_value(serde_json::to_value(batch).unwrap()).unwrap()
}

fn key(family: NfFamily, name: &str) -> (String, String) {
    (family_name(family).to_string(), name.to_string())
}

impl FakeFirewall {
    /// Makes every later call behave as `mode` says.
    pub fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }

    /// What every drop rule (packets, bytes) and every accept rule (packets) will report.
    pub fn set_counters(&self, drop: (usize, usize), exempt: usize) {
        let mut s = self.state.lock().unwrap();
        s.drop_counter = drop;
        s.exempt_counter = exempt;
    }

    /// Adds listing objects for tables the host itself has (they are never changed by apply).
    pub fn add_host_objects(&self, objects: Vec<Value>) {
        self.state.lock().unwrap().host.extend(objects);
    }

    /// Every batch applied, in order.
    pub fn batches(&self) -> Vec<Nftables<'static>> {
        self.state.lock().unwrap().batches.clone()
    }

    /// The names of the tables the fake holds (not counting host objects).
    pub fn table_names(&self) -> Vec<String> {
        let s = self.state.lock().unwrap();
        s.tables.keys().map(|(_, n)| n.clone()).collect()
    }

    /// Rules of a table, rendered like `nft list` would, one line per rule, `chain: rule`.
    pub fn rules(&self, table: &str) -> Vec<String> {
        let s = self.state.lock().unwrap();
        s.tables
            .get(&("inet".to_string(), table.to_string()))
            .map(|t| {
                t.rules
                    .iter()
                    .map(|r| format!("{}: {}", r.chain, render(&r.expr)))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn check(&self) -> Result<(), NftError> {
        match self.state.lock().unwrap().mode {
            Mode::NoNft => Err(NftError::NotFound {
                program: "nft".into(),
            }),
            Mode::NoPermission => Err(NftError::Permission {
                message: "Operation not permitted".into(),
            }),
            _ => Ok(()),
        }
    }
}

fn failed(message: &str) -> NftError {
    NftError::Failed {
        what: "applying a ruleset".into(),
        message: format!("Error: {message}"),
    }
}

impl Firewall for FakeFirewall {
    fn apply(&self, batch: &Nftables<'_>) -> Result<(), NftError> {
        self.check()?;
        let batch = owned(batch);
        let mut s = self.state.lock().unwrap();
        s.batches.push(batch.clone());
        match s.mode {
            Mode::ApplyFails => return Err(failed("Could not process rule: Invalid argument")),
            Mode::DeleteKeeps => return Ok(()),
            _ => {}
        }
        // Stage on a copy of the table names: one failing command leaves nothing changed.
        let mut created: Vec<(String, String)> = Vec::new();
        let mut deleted: Vec<(String, String)> = Vec::new();
        let mut chains: Vec<Chain<'static>> = Vec::new();
        let mut rules: Vec<Rule<'static>> = Vec::new();
        for o in batch.objects.iter() {
            match o {
                NfObject::CmdObject(NfCmd::Create(NfListObject::Table(Table {
                    family,
                    name,
                    ..
                }))) => {
                    let k = key(*family, name);
                    if s.tables.contains_key(&k) || created.contains(&k) {
                        return Err(failed("Could not process rule: File exists"));
                    }
                    created.push(k);
                }
                NfObject::CmdObject(NfCmd::Add(NfListObject::Chain(c))) => chains.push(c.clone()),
                NfObject::CmdObject(NfCmd::Add(NfListObject::Rule(r))) => rules.push(r.clone()),
                NfObject::CmdObject(NfCmd::Delete(NfListObject::Table(Table {
                    family,
                    name,
                    ..
                }))) => {
                    let k = key(*family, name);
                    if !s.tables.contains_key(&k) {
                        return Err(failed("Could not process rule: No such file or directory"));
                    }
                    deleted.push(k);
                }
                other => panic!("the fake does not model {other:?}"),
            }
        }
        for k in created {
            s.tables.insert(k, FakeTable::default());
        }
        for c in chains {
            let k = key(c.family, &c.table);
            s.tables
                .get_mut(&k)
                .expect("chain in a table")
                .chains
                .push(c);
        }
        for r in rules {
            let k = key(r.family, &r.table);
            s.tables.get_mut(&k).expect("rule in a table").rules.push(r);
        }
        for k in deleted {
            s.tables.remove(&k);
        }
        Ok(())
    }

    fn table(&self, family: NfFamily, name: &str) -> Result<Option<Nftables<'static>>, NftError> {
        self.check()?;
        let s = self.state.lock().unwrap();
        let Some(t) = s.tables.get(&key(family, name)) else {
            return Ok(None);
        };
        let mut objects = vec![NfObject::ListObject(NfListObject::Table(Table {
            family,
            name: name.to_string().into(),
            handle: Some(1),
        }))];
        objects.extend(
            t.chains
                .iter()
                .map(|c| NfObject::ListObject(NfListObject::Chain(c.clone()))),
        );
        for r in &t.rules {
            let mut r = r.clone();
            let is_drop = r.expr.iter().any(|e| matches!(e, Statement::Drop(_)));
            let (packets, bytes) = if is_drop {
                s.drop_counter
            } else {
                (s.exempt_counter, 0)
            };
            r.expr = r
                .expr
                .iter()
                .map(|e| match e {
                    Statement::Counter(_) => {
                        Statement::Counter(Counter::Anonymous(Some(AnonymousCounter {
                            packets: Some(packets),
                            bytes: Some(bytes),
                        })))
                    }
                    other => other.clone(),
                })
                .collect::<Vec<_>>()
                .into();
            objects.push(NfObject::ListObject(NfListObject::Rule(r)));
        }
        Ok(Some(Nftables {
            objects: objects.into(),
        }))
    }

    fn delete_table(&self, family: NfFamily, name: &str) -> Result<bool, NftError> {
        let batch = Nftables {
            objects: vec![NfObject::CmdObject(NfCmd::Delete(NfListObject::Table(
                Table {
                    family,
                    name: name.to_string().into(),
                    handle: None,
                },
            )))]
            .into(),
        };
        match self.apply(&batch) {
            Ok(()) => Ok(true),
            Err(NftError::Failed { message, .. }) if message.contains("No such file") => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn tables(&self) -> Result<Vec<(String, String)>, NftError> {
        self.check()?;
        Ok(self.state.lock().unwrap().tables.keys().cloned().collect())
    }

    fn ruleset(&self) -> Result<Value, NftError> {
        self.check()?;
        let s = self.state.lock().unwrap();
        let mut objects = vec![json!({"metainfo": {"json_schema_version": 1}})];
        objects.extend(s.host.iter().cloned());
        for ((family, name), t) in &s.tables {
            objects.push(json!({"table": {"family": family, "name": name, "handle": 1}}));
            for c in &t.chains {
                objects.push(serde_json::to_value(NfListObject::Chain(c.clone())).unwrap());
            }
            for r in &t.rules {
                objects.push(serde_json::to_value(NfListObject::Rule(r.clone())).unwrap());
            }
        }
        Ok(json!({ "nftables": objects }))
    }
}

/// A rule's statements in nft's own words (`ip saddr { 10.0.0.0/24 } counter drop`), so
/// tests read like the ruleset an operator would see.
pub fn render(expr: &[Statement<'_>]) -> String {
    expr.iter()
        .map(|s| {
            let v = serde_json::to_value(s).unwrap();
            let (kind, body) = v.as_object().unwrap().iter().next().unwrap();
            match kind.as_str() {
                "match" => format!("{} {}", value(&body["left"]), value(&body["right"])),
                other => other.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn value(v: &Value) -> String {
    if let Some(s) = v.as_str() {
        return s.to_string();
    }
    if let Some(n) = v.as_u64() {
        return n.to_string();
    }
    let (kind, body) = v.as_object().unwrap().iter().next().unwrap();
    match kind.as_str() {
        "payload" => format!("{} {}", value(&body["protocol"]), value(&body["field"])),
        "meta" => format!("meta {}", value(&body["key"])),
        "prefix" => format!("{}/{}", value(&body["addr"]), body["len"]),
        "set" => format!(
            "{{ {} }}",
            body.as_array()
                .unwrap()
                .iter()
                .map(value)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => panic!("render does not know {other}"),
    }
}
