//! Scenario files for tests whose scenario is a means, not the subject: typed parts written
//! out as TOML, every value serialized (and escaped) by the `toml` crate.
//!
//! ```
//! use gameday_test_support::{FaultBuilder, ProbeBuilder, ScenarioBuilder};
//!
//! let text = ScenarioBuilder::new("kill-web")
//!     .rto("2s")
//!     .observe("5s")
//!     .agents(["web-1"])
//!     .fault(FaultBuilder::kill("/run/web.pid"))
//!     .probe(
//!         ProbeBuilder::http("home", "http://127.0.0.1:8080/")
//!             .interval("10ms")
//!             .expect_body("ok"),
//!     )
//!     .to_toml();
//! assert!(text.starts_with("name = \"kill-web\"\nrto = \"2s\"\n"));
//! ```
//!
//! Keys are written in the order they were first set (setting one again replaces its value in
//! place): top-level keys, then `[targets]`, each `[[faults]]` and each `[[probes]]`. Nothing is
//! validated here; a test that needs a scenario to be wrong in a precise place (a line and a
//! column, a byte count) writes its text itself.

use std::fmt;
use std::path::{Path, PathBuf};

/// A value that can stand on the right of `key = ` in a scenario: strings, paths (which must
/// be UTF-8), integers, floats, booleans, arrays of those, or any [`toml::Value`].
pub trait IntoToml {
    /// The value as TOML.
    fn into_toml(self) -> toml::Value;
}

impl IntoToml for toml::Value {
    fn into_toml(self) -> toml::Value {
        self
    }
}

impl IntoToml for &str {
    fn into_toml(self) -> toml::Value {
        toml::Value::String(self.to_string())
    }
}

impl IntoToml for String {
    fn into_toml(self) -> toml::Value {
        toml::Value::String(self)
    }
}

impl IntoToml for &String {
    fn into_toml(self) -> toml::Value {
        toml::Value::String(self.clone())
    }
}

impl IntoToml for &Path {
    fn into_toml(self) -> toml::Value {
        let text = self.to_str().unwrap_or_else(|| {
            panic!("{} is not UTF-8: a scenario cannot name it", self.display())
        });
        toml::Value::String(text.to_string())
    }
}

impl IntoToml for &PathBuf {
    fn into_toml(self) -> toml::Value {
        self.as_path().into_toml()
    }
}

impl IntoToml for PathBuf {
    fn into_toml(self) -> toml::Value {
        self.as_path().into_toml()
    }
}

impl IntoToml for bool {
    fn into_toml(self) -> toml::Value {
        toml::Value::Boolean(self)
    }
}

impl IntoToml for f64 {
    fn into_toml(self) -> toml::Value {
        toml::Value::Float(self)
    }
}

macro_rules! integers {
    ($($t:ty),*) => {$(
        impl IntoToml for $t {
            fn into_toml(self) -> toml::Value {
                toml::Value::Integer(
                    i64::try_from(self).expect("an integer TOML can hold (i64)"),
                )
            }
        }
    )*};
}
integers!(i8, i16, i32, i64, u8, u16, u32, u64, usize);

impl<T: IntoToml> IntoToml for Vec<T> {
    fn into_toml(self) -> toml::Value {
        toml::Value::Array(self.into_iter().map(IntoToml::into_toml).collect())
    }
}

impl<T: IntoToml, const N: usize> IntoToml for [T; N] {
    fn into_toml(self) -> toml::Value {
        toml::Value::Array(self.into_iter().map(IntoToml::into_toml).collect())
    }
}

impl<T: IntoToml + Clone> IntoToml for &[T] {
    fn into_toml(self) -> toml::Value {
        toml::Value::Array(self.iter().cloned().map(IntoToml::into_toml).collect())
    }
}

/// Keys and values in the order they were first set.
#[derive(Clone, Debug, Default)]
struct Entries(Vec<(String, toml::Value)>);

impl Entries {
    fn set(&mut self, key: &str, value: toml::Value) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some((_, old)) => *old = value,
            None => self.0.push((key.to_string(), value)),
        }
    }

    fn remove(&mut self, key: &str) {
        self.0.retain(|(k, _)| k != key);
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `key = value` lines.
    fn write(&self, out: &mut String) {
        for (key, value) in &self.0 {
            out.push_str(&toml_key(key));
            out.push_str(" = ");
            out.push_str(&value.to_string());
            out.push('\n');
        }
    }
}

/// A key as TOML writes it: bare when it can be, else a basic string on one line (a key
/// cannot be a multi-line string, which is how the `toml` crate writes a value with a newline).
fn toml_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        return key.to_string();
    }
    let mut quoted = String::from("\"");
    for c in key.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\t' => quoted.push_str("\\t"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            c if c.is_control() => quoted.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// A whole scenario file. See the [module](self) documentation.
#[derive(Clone, Debug)]
pub struct ScenarioBuilder {
    top: Entries,
    targets: Entries,
    faults: Vec<FaultBuilder>,
    probes: Vec<ProbeBuilder>,
}

impl ScenarioBuilder {
    /// A scenario named `name`, with nothing else in it yet.
    pub fn new(name: &str) -> ScenarioBuilder {
        ScenarioBuilder {
            top: Entries::default(),
            targets: Entries::default(),
            faults: Vec::new(),
            probes: Vec::new(),
        }
        .set("name", name)
    }

    /// Any top-level key (`repeat`, `min_pass_rate`, `revert`, ...). `targets`, `faults` and
    /// `probes` have their own methods.
    pub fn set(mut self, key: &str, value: impl IntoToml) -> ScenarioBuilder {
        assert!(
            !matches!(key, "targets" | "faults" | "probes"),
            "`{key}` is written by its own ScenarioBuilder methods"
        );
        self.top.set(key, value.into_toml());
        self
    }

    /// Removes a top-level key.
    pub fn unset(mut self, key: &str) -> ScenarioBuilder {
        self.top.remove(key);
        self
    }

    /// `description`.
    pub fn description(self, text: &str) -> ScenarioBuilder {
        self.set("description", text)
    }

    /// `rto`, the recovery time objective (a duration such as `"2s"`).
    pub fn rto(self, duration: &str) -> ScenarioBuilder {
        self.set("rto", duration)
    }

    /// `repeat`: how many runs.
    pub fn repeat(self, runs: u32) -> ScenarioBuilder {
        self.set("repeat", runs)
    }

    /// `steady_state`: how long the probes must be healthy before the fault.
    pub fn steady_state(self, duration: &str) -> ScenarioBuilder {
        self.set("steady_state", duration)
    }

    /// `observe`: how long a run watches after the fault.
    pub fn observe(self, duration: &str) -> ScenarioBuilder {
        self.set("observe", duration)
    }

    /// `cooldown` between runs.
    pub fn cooldown(self, duration: &str) -> ScenarioBuilder {
        self.set("cooldown", duration)
    }

    /// `expect` (`"recovery"`, `"no_impact"`).
    pub fn expect(self, expectation: &str) -> ScenarioBuilder {
        self.set("expect", expectation)
    }

    /// `recovery` (`"self"`, `"after_revert"`).
    pub fn recovery(self, mode: &str) -> ScenarioBuilder {
        self.set("recovery", mode)
    }

    /// `revert` (`"on_recovery"`, ...).
    pub fn revert(self, policy: &str) -> ScenarioBuilder {
        self.set("revert", policy)
    }

    /// Any key of `[targets]`.
    pub fn target(mut self, key: &str, value: impl IntoToml) -> ScenarioBuilder {
        self.targets.set(key, value.into_toml());
        self
    }

    /// `[targets] agents`, by name.
    pub fn agents<S: AsRef<str>>(self, names: impl IntoIterator<Item = S>) -> ScenarioBuilder {
        let names: Vec<String> = names.into_iter().map(|n| n.as_ref().to_string()).collect();
        self.target("agents", names)
    }

    /// `[targets] labels`, as an inline table.
    pub fn labels(self, labels: &[(&str, &str)]) -> ScenarioBuilder {
        let mut table = toml::Table::new();
        for (key, value) in labels {
            table.insert(
                (*key).to_string(),
                toml::Value::String((*value).to_string()),
            );
        }
        self.target("labels", toml::Value::Table(table))
    }

    /// `[targets] max_targets`.
    pub fn max_targets(self, count: u32) -> ScenarioBuilder {
        self.target("max_targets", count)
    }

    /// One more `[[faults]]` table.
    pub fn fault(mut self, fault: FaultBuilder) -> ScenarioBuilder {
        self.faults.push(fault);
        self
    }

    /// One more `[[probes]]` table.
    pub fn probe(mut self, probe: ProbeBuilder) -> ScenarioBuilder {
        self.probes.push(probe);
        self
    }

    /// The scenario file's text.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        self.top.write(&mut out);
        if !self.targets.is_empty() {
            out.push_str("\n[targets]\n");
            self.targets.write(&mut out);
        }
        for fault in &self.faults {
            out.push_str("\n[[faults]]\n");
            fault.0.write(&mut out);
        }
        for probe in &self.probes {
            out.push_str("\n[[probes]]\n");
            probe.0.write(&mut out);
        }
        out
    }

    /// Writes the scenario to `path`; returns the path.
    pub fn write(&self, path: impl AsRef<Path>) -> PathBuf {
        let path = path.as_ref();
        std::fs::write(path, self.to_toml())
            .unwrap_or_else(|e| panic!("write the scenario to {}: {e}", path.display()));
        path.to_path_buf()
    }
}

impl fmt::Display for ScenarioBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_toml())
    }
}

/// One `[[faults]]` table: its `kind` and any other keys, as written.
#[derive(Clone, Debug)]
pub struct FaultBuilder(Entries);

impl FaultBuilder {
    /// A fault of `kind` (`"process_kill"`, `"process_pause"`, `"network_partition"`,
    /// `"disk_fill"`, `"dns_poison"`), with no other key yet.
    pub fn new(kind: &str) -> FaultBuilder {
        FaultBuilder(Entries::default()).set("kind", kind)
    }

    /// `process_kill` of the process whose pid is in `pid_file`.
    pub fn kill(pid_file: impl IntoToml) -> FaultBuilder {
        FaultBuilder::new("process_kill").set("pid_file", pid_file)
    }

    /// `process_pause` of the process whose pid is in `pid_file`, held for `duration`.
    pub fn pause(pid_file: impl IntoToml, duration: &str) -> FaultBuilder {
        FaultBuilder::new("process_pause")
            .set("pid_file", pid_file)
            .set("duration", duration)
    }

    /// Any key of the table (`signal`, `name`, `cmdline`, `path`, `fill_to`, `peers`, ...).
    pub fn set(mut self, key: &str, value: impl IntoToml) -> FaultBuilder {
        self.0.set(key, value.into_toml());
        self
    }
}

/// One `[[probes]]` table: its `name`, `kind` and any other keys, as written.
#[derive(Clone, Debug)]
pub struct ProbeBuilder(Entries);

impl ProbeBuilder {
    /// A probe named `name` of `kind`, with no other key yet.
    pub fn new(name: &str, kind: &str) -> ProbeBuilder {
        ProbeBuilder(Entries::default())
            .set("name", name)
            .set("kind", kind)
    }

    /// An `http` probe of `url`.
    pub fn http(name: &str, url: impl IntoToml) -> ProbeBuilder {
        ProbeBuilder::new(name, "http").set("url", url)
    }

    /// A `tcp` probe connecting to `address` (`"host:port"`).
    pub fn tcp(name: &str, address: impl IntoToml) -> ProbeBuilder {
        ProbeBuilder::new(name, "tcp").set("address", address)
    }

    /// A `dns` probe asking `server` for `query`.
    pub fn dns(name: &str, server: impl IntoToml, query: &str) -> ProbeBuilder {
        ProbeBuilder::new(name, "dns")
            .set("server", server)
            .set("query", query)
    }

    /// Renames the probe.
    pub fn name(self, name: &str) -> ProbeBuilder {
        self.set("name", name)
    }

    /// `interval` between checks.
    pub fn interval(self, duration: &str) -> ProbeBuilder {
        self.set("interval", duration)
    }

    /// `timeout` of one check.
    pub fn timeout(self, duration: &str) -> ProbeBuilder {
        self.set("timeout", duration)
    }

    /// `recovered_after`: how many good checks in a row mean recovered.
    pub fn recovered_after(self, checks: u32) -> ProbeBuilder {
        self.set("recovered_after", checks)
    }

    /// `expect_status` (http).
    pub fn expect_status(self, status: u16) -> ProbeBuilder {
        self.set("expect_status", status)
    }

    /// `expect_body` (http): a substring of a good answer.
    pub fn expect_body(self, text: &str) -> ProbeBuilder {
        self.set("expect_body", text)
    }

    /// Any key of the table (`spread`, `record`, `expect`, `max_in_flight`, ...).
    pub fn set(mut self, key: &str, value: impl IntoToml) -> ProbeBuilder {
        self.0.set(key, value.into_toml());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> toml::Table {
        text.parse::<toml::Table>()
            .unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn writes_every_part_in_place_and_the_toml_crate_reads_it_back() {
        let builder = ScenarioBuilder::new("kill-web")
            .description("Kill web; it must come back.")
            .rto("2s")
            .repeat(3)
            .steady_state("300ms")
            .observe("5s")
            .cooldown("100ms")
            .expect("no_impact")
            .recovery("after_revert")
            .revert("on_recovery")
            .set("min_pass_rate", 0.5)
            .agents(["web-1", "web-2"])
            .labels(&[("role", "web"), ("zone", "eu-1")])
            .max_targets(1)
            .fault(FaultBuilder::kill("/run/web.pid").set("signal", "KILL"))
            .fault(FaultBuilder::pause(Path::new("/run/db.pid"), "30s"))
            .fault(
                FaultBuilder::new("network_partition")
                    .set("peers", ["10.0.0.1/32"])
                    .set("ports", [8080u16])
                    .set("direction", "ingress"),
            )
            .fault(FaultBuilder::new("disk_fill").set("fill_to", 90))
            .probe(
                ProbeBuilder::http("home", "http://127.0.0.1:8080/")
                    .interval("10ms")
                    .timeout("200ms")
                    .recovered_after(3)
                    .expect_status(200)
                    .expect_body("ok"),
            )
            .probe(ProbeBuilder::tcp("port", "127.0.0.1:8080").set("spread", 2))
            .probe(
                ProbeBuilder::dns("api", "10.53.0.2", "api.test")
                    .set("record", "A")
                    .set("expect", vec!["10.1.1.9".to_string()]),
            );
        let text = builder.to_toml();
        let t = parse(&text);
        assert_eq!(t["name"].as_str(), Some("kill-web"));
        assert_eq!(
            t["description"].as_str(),
            Some("Kill web; it must come back.")
        );
        for (key, value) in [
            ("rto", "2s"),
            ("steady_state", "300ms"),
            ("observe", "5s"),
            ("cooldown", "100ms"),
            ("expect", "no_impact"),
            ("recovery", "after_revert"),
            ("revert", "on_recovery"),
        ] {
            assert_eq!(t[key].as_str(), Some(value), "{key}");
        }
        assert_eq!(t["repeat"].as_integer(), Some(3));
        assert_eq!(t["min_pass_rate"].as_float(), Some(0.5));

        let targets = &t["targets"];
        assert_eq!(targets["agents"], toml::Value::from(vec!["web-1", "web-2"]));
        assert_eq!(targets["labels"]["role"].as_str(), Some("web"));
        assert_eq!(targets["labels"]["zone"].as_str(), Some("eu-1"));
        assert_eq!(targets["max_targets"].as_integer(), Some(1));

        let faults = t["faults"].as_array().unwrap();
        assert_eq!(faults.len(), 4);
        assert_eq!(faults[0]["kind"].as_str(), Some("process_kill"));
        assert_eq!(faults[0]["pid_file"].as_str(), Some("/run/web.pid"));
        assert_eq!(faults[0]["signal"].as_str(), Some("KILL"));
        assert_eq!(faults[1]["kind"].as_str(), Some("process_pause"));
        assert_eq!(faults[1]["pid_file"].as_str(), Some("/run/db.pid"));
        assert_eq!(faults[1]["duration"].as_str(), Some("30s"));
        assert_eq!(faults[2]["peers"], toml::Value::from(vec!["10.0.0.1/32"]));
        assert_eq!(faults[2]["ports"], toml::Value::from(vec![8080]));
        assert_eq!(faults[3]["fill_to"].as_integer(), Some(90));

        let probes = t["probes"].as_array().unwrap();
        assert_eq!(probes.len(), 3);
        let http = &probes[0];
        assert_eq!(http["name"].as_str(), Some("home"));
        assert_eq!(http["kind"].as_str(), Some("http"));
        assert_eq!(http["url"].as_str(), Some("http://127.0.0.1:8080/"));
        assert_eq!(http["interval"].as_str(), Some("10ms"));
        assert_eq!(http["timeout"].as_str(), Some("200ms"));
        assert_eq!(http["recovered_after"].as_integer(), Some(3));
        assert_eq!(http["expect_status"].as_integer(), Some(200));
        assert_eq!(http["expect_body"].as_str(), Some("ok"));
        assert_eq!(probes[1]["kind"].as_str(), Some("tcp"));
        assert_eq!(probes[1]["address"].as_str(), Some("127.0.0.1:8080"));
        assert_eq!(probes[1]["spread"].as_integer(), Some(2));
        assert_eq!(probes[2]["kind"].as_str(), Some("dns"));
        assert_eq!(probes[2]["server"].as_str(), Some("10.53.0.2"));
        assert_eq!(probes[2]["query"].as_str(), Some("api.test"));
        assert_eq!(probes[2]["record"].as_str(), Some("A"));
        assert_eq!(probes[2]["expect"], toml::Value::from(vec!["10.1.1.9"]));
        assert_eq!(builder.to_string(), text);
    }

    #[test]
    fn keys_keep_their_first_place_and_a_key_set_again_is_replaced() {
        let text = ScenarioBuilder::new("a")
            .rto("1s")
            .repeat(2)
            .observe("2s")
            .repeat(1)
            .unset("observe")
            .to_toml();
        assert_eq!(text, "name = \"a\"\nrto = \"1s\"\nrepeat = 1\n");
        let probe = ProbeBuilder::http("h", "http://x/").name("renamed");
        let text = ScenarioBuilder::new("a").probe(probe).to_toml();
        assert_eq!(
            text,
            "name = \"a\"\n\n[[probes]]\nname = \"renamed\"\nkind = \"http\"\nurl = \"http://x/\"\n"
        );
    }

    #[test]
    fn hard_strings_are_escaped_and_read_back_unchanged() {
        let hard = [
            "reports <&> 'gate'",
            "say \"hi\"",
            r"C:\dir\file",
            "tab\there",
            "two\nlines",
            "'''",
            "\"\"\"",
            "é ü 🚀",
            "\u{7f}\u{1}",
            "^\\S*gameday demo-service --listen 127\\.0\\.0\\.1:18080$",
            "",
        ];
        for s in hard {
            let text = ScenarioBuilder::new(s)
                .set(s, s)
                .agents([s])
                .fault(FaultBuilder::new("process_kill").set("cmdline", s))
                .probe(ProbeBuilder::http(s, s))
                .to_toml();
            let t = parse(&text);
            assert_eq!(t["name"].as_str(), Some(s), "{text}");
            assert_eq!(t[s].as_str(), Some(s), "a key of its own; {text}");
            assert_eq!(t["targets"]["agents"][0].as_str(), Some(s), "{text}");
            assert_eq!(t["faults"][0]["cmdline"].as_str(), Some(s), "{text}");
            assert_eq!(t["probes"][0]["name"].as_str(), Some(s), "{text}");
            assert_eq!(t["probes"][0]["url"].as_str(), Some(s), "{text}");
        }
    }

    #[test]
    fn paths_are_written_as_strings_and_files_are_written() {
        let dir = std::env::temp_dir().join(format!("gameday-builder-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pid_file = dir.join("a \"quoted\" dir").join("target.pid");
        let builder = ScenarioBuilder::new("p")
            .agents(vec![String::from("local")])
            .fault(FaultBuilder::kill(&pid_file));
        let written = builder.write(dir.join("p.toml"));
        let text = std::fs::read_to_string(&written).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(text, builder.to_toml());
        let t = parse(&text);
        assert_eq!(
            t["faults"][0]["pid_file"].as_str(),
            Some(pid_file.to_str().unwrap())
        );
        assert_eq!(t["targets"]["agents"], toml::Value::from(vec!["local"]));
    }

    #[test]
    #[should_panic(expected = "`targets` is written by its own ScenarioBuilder methods")]
    fn tables_are_not_top_level_keys() {
        let _ = ScenarioBuilder::new("a").set("targets", "web-1");
    }
}
