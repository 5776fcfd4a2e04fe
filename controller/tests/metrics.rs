//! The metrics endpoint end to end: a served controller with `metrics_listen`, a real agent
//! pausing a real service, and `/metrics` scraped over HTTP and parsed as the Prometheus text
//! format — type lines, label sets and values, during the run and after it.
// Integration tests start the real binaries, services and helper processes.
#![allow(clippy::disallowed_methods)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

/// One sample line: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed exposition: `# TYPE` of each family and every sample.
#[derive(Debug, Default)]
struct Exposition {
    types: HashMap<String, String>,
    samples: Vec<Sample>,
}

impl Exposition {
    /// Parses the Prometheus text format (0.0.4), refusing anything malformed.
    fn parse(text: &str) -> Exposition {
        let mut out = Exposition::default();
        for line in text.lines() {
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                    "type {kind:?} in {line:?}"
                );
                out.types.insert(name.into(), kind.into());
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            assert!(!line.starts_with('#'), "unexpected comment {line:?}");
            out.samples.push(parse_sample(line));
        }
        out
    }

    /// Samples of metric `name` whose labels include every `(key, value)` of `labels`.
    fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The value of the one sample of `name` with exactly `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let found: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.name == name && s.labels == want)
            .collect();
        assert!(found.len() <= 1, "{name}{want:?} appears twice");
        found.first().map(|s| s.value)
    }
}

/// `name{k="v",...} value` or `name value`, with `\\`, `\"` and `\n` escapes in label values.
fn parse_sample(line: &str) -> Sample {
    let name_end = line
        .find(['{', ' '])
        .unwrap_or_else(|| panic!("no value in {line:?}"));
    let name = &line[..name_end];
    assert!(
        name.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
        "metric name {name:?}"
    );
    let (labels, rest) = match line[name_end..].strip_prefix('{') {
        Some(after) => parse_labels(after),
        None => (BTreeMap::new(), &line[name_end..]),
    };
    let value = match rest.trim() {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v
            .parse()
            .unwrap_or_else(|_| panic!("value {v:?} in {line:?}")),
    };
    Sample {
        name: name.into(),
        labels,
        value,
    }
}

/// Labels after the `{`, and what follows the closing `}`.
fn parse_labels(s: &str) -> (BTreeMap<String, String>, &str) {
    let mut labels = BTreeMap::new();
    let mut chars = s.char_indices();
    loop {
        let mut key = String::new();
        loop {
            match chars.next().expect("unterminated labels") {
                (i, '}') if key.is_empty() => return (labels, &s[i + 1..]),
                (_, '=') => break,
                (_, c) => key.push(c),
            }
        }
        assert_eq!(
            chars.next().map(|(_, c)| c),
            Some('"'),
            "label {key} in {s:?}"
        );
        let mut value = String::new();
        loop {
            match chars.next().expect("unterminated label value").1 {
                '\\' => match chars.next().expect("escape").1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        assert!(
            labels.insert(key, value).is_none(),
            "a label twice in {s:?}"
        );
        if chars.clone().next().is_some_and(|(_, c)| c == ',') {
            chars.next();
        }
    }
}

/// GET `path` on `addr` with a real HTTP/1.1 client: (status, content type, body).
fn get(addr: SocketAddr, path: &str, accept: Option<&str>) -> (u16, String, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        let mut req = hyper::Request::get(path).header("host", addr.to_string());
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        let req = req.body(Empty::<Bytes>::new()).unwrap();
        let send = async move {
            let resp = sender.send_request(req).await.unwrap();
            let status = resp.status().as_u16();
            let ct = resp
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (status, ct, String::from_utf8(body.to_vec()).unwrap())
        };
        let (out, _) = tokio::join!(send, conn);
        out
    })
}

fn scrape(addr: SocketAddr) -> Exposition {
    let (status, content_type, body) = get(addr, "/metrics", None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    Exposition::parse(&body)
}

fn pause_scenario(dir: &Path, port: u16) -> std::path::PathBuf {
    ScenarioBuilder::new("metrics-pause")
        .rto("5s")
        .recovery("after_revert")
        .steady_state("300ms")
        .observe("10s")
        .agents(["web-1"])
        .fault(FaultBuilder::pause(dir.join("service.pid"), "1s"))
        .probe(
            demo_http_probe(port)
                .interval("20ms")
                .timeout("100ms")
                .recovered_after(2),
        )
        .write(dir.join("metrics-pause.toml"))
}

#[test]
fn metrics_count_agents_faults_runs_and_recovery_in_the_prometheus_text_format() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::init(&dir.path().join("pki"), &["web-1"], &["sre"]);
    let metrics_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (controller, _logs) = Controller::start_with_extra(
        dir.path(),
        &certs,
        "2s",
        &format!("metrics_listen = \"{metrics_addr}\""),
    );
    wait_listening(metrics_addr.port());

    let before = scrape(metrics_addr);
    assert_eq!(
        before
            .types
            .get("gameday_agents_connected")
            .map(String::as_str),
        Some("gauge")
    );
    assert_eq!(before.value("gameday_agents_connected", &[]), Some(0.0));
    assert_eq!(before.value("gameday_active_faults", &[]), Some(0.0));

    let (cert, key) = certs.pair("agent", "web-1");
    let _agent = controller.agent(dir.path(), "web-1", &certs.ca(), &cert, &key, "");
    wait_for("the agent in the metrics", Duration::from_secs(15), || {
        scrape(metrics_addr).value("gameday_agents_connected", &[]) == Some(1.0)
    });

    let port = free_port();
    let _service = bare_service(dir.path(), port);
    let scenario = pause_scenario(dir.path(), port);
    let run = controller
        .run_command(&certs, &scenario)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start gameday run");
    let mut run = ChildGuard {
        child: run,
        name: "run",
    };

    // While the service is paused: one run in progress, one live fault.
    wait_for("the fault to show as live", Duration::from_secs(15), || {
        let m = scrape(metrics_addr);
        m.value("gameday_active_faults", &[]) == Some(1.0)
            && m.value("gameday_run_in_progress", &[("scenario", "metrics-pause")]) == Some(1.0)
    });

    let mut stdout = String::new();
    wait_for("the run to finish", Duration::from_secs(30), || {
        !run.alive()
    });
    std::io::Read::read_to_string(run.child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!(report["runs"][0]["verdict"], "PASS", "{report:#}");
    let recovered_s = report["runs"][0]["grade"]["time_to_recover"]["us"]
        .as_u64()
        .expect("a recovery time") as f64
        / 1e6;

    let m = scrape(metrics_addr);
    let types = |n: &str| m.types.get(n).map(String::as_str);
    assert_eq!(types("gameday_runs_total"), Some("counter"));
    assert_eq!(types("gameday_recovery_seconds"), Some("histogram"));
    assert_eq!(types("gameday_last_verdict"), Some("gauge"));
    assert_eq!(types("gameday_run_in_progress"), Some("gauge"));
    assert_eq!(types("gameday_active_faults"), Some("gauge"));

    assert_eq!(m.value("gameday_agents_connected", &[]), Some(1.0));
    assert_eq!(m.value("gameday_active_faults", &[]), Some(0.0));
    let scenario_label = ("scenario", "metrics-pause");
    assert_eq!(
        m.value("gameday_runs_total", &[scenario_label, ("verdict", "PASS")]),
        Some(1.0)
    );
    assert_eq!(
        m.find("gameday_runs_total", &[]).len(),
        1,
        "only the PASS series exists"
    );
    assert_eq!(
        m.value("gameday_run_in_progress", &[scenario_label]),
        Some(0.0)
    );
    for verdict in [
        "PASS",
        "FAIL",
        "NO_IMPACT",
        "INCONCLUSIVE",
        "ABORTED",
        "ERROR",
    ] {
        assert_eq!(
            m.value(
                "gameday_last_verdict",
                &[scenario_label, ("verdict", verdict)]
            ),
            Some(if verdict == "PASS" { 1.0 } else { 0.0 }),
            "last verdict {verdict}"
        );
    }

    assert_eq!(
        m.value("gameday_recovery_seconds_count", &[scenario_label]),
        Some(1.0)
    );
    let sum = m
        .value("gameday_recovery_seconds_sum", &[scenario_label])
        .unwrap();
    assert!(
        (sum - recovered_s).abs() < 1e-3,
        "histogram sum {sum} vs the report's recovery {recovered_s}"
    );
    let buckets: Vec<(f64, f64)> = m
        .find("gameday_recovery_seconds_bucket", &[scenario_label])
        .iter()
        .map(|s| (s.labels["le"].parse::<f64>().unwrap(), s.value))
        .collect();
    assert!(buckets.len() >= 10, "{buckets:?}");
    assert!(buckets
        .windows(2)
        .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
    assert_eq!(buckets.first().unwrap().0, 0.05);
    assert_eq!(*buckets.last().unwrap(), (f64::INFINITY, 1.0));
    for (le, count) in &buckets {
        assert_eq!(
            *count,
            if *le >= recovered_s { 1.0 } else { 0.0 },
            "bucket le={le} for a recovery of {recovered_s}s"
        );
    }

    // OpenMetrics for scrapers that ask for it; 404 elsewhere.
    let (status, ct, body) = get(
        metrics_addr,
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
    );
    assert_eq!(status, 200);
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
    assert_eq!(get(metrics_addr, "/", None).0, 404);
}

#[test]
fn the_test_parser_reads_labels_escapes_and_special_values() {
    let e = Exposition::parse(
        "# HELP x_total Help.\n# TYPE x_total counter\nx_total{a=\"q\\\"uo,te\",b=\"back\\\\slash\\n\"} 2\ny +Inf\n",
    );
    assert_eq!(e.types["x_total"], "counter");
    assert_eq!(
        e.value("x_total", &[("a", "q\"uo,te"), ("b", "back\\slash\n")]),
        Some(2.0)
    );
    assert_eq!(e.value("y", &[]), Some(f64::INFINITY));
}

#[test]
fn serve_says_where_it_listens_serves_metrics_and_keeps_history_at_the_default_level() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::init(&dir.path().join("pki"), &[], &["sre"]);
    let metrics_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("controller.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nmetrics_listen = \"{metrics_addr}\"\ndata_dir = \"{}\"\n\n[tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
            data.display(),
            certs.ca().display(),
            certs.dir.join("controller.pem").display(),
            certs.dir.join("controller.key").display()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(gameday_bin())
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("GAMEDAY_LOG")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let _guard = ChildGuard {
        child,
        name: "gameday serve",
    };
    let wanted = [
        "gameday controller listening on 127.0.0.1:".to_string(),
        format!("metrics on http://{metrics_addr}/metrics"),
        format!("run history in {}", data.join("history.sqlite3").display()),
    ];
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !wanted
        .iter()
        .all(|w| seen.iter().any(|l: &String| l.starts_with(w)))
    {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("expected {wanted:#?} on stderr, got {seen:#?}"),
        }
    }
}
