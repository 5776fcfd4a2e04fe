//! Reports from a real run: `gameday run --local --junit FILE --html FILE` against the demo
//! service. The JUnit file is parsed back with a real XML parser and validated against the
//! junit-4 schema with xmllint; the HTML report is rendered by headless Chromium and the
//! screenshot must show the plot's green (ok) and red (failed) samples.
//!
//! xmllint and chromium come from Debian (`libxml2-utils`, `chromium`; `./test.sh` installs
//! them). Without them that part prints SKIPPED, and fails under CI (`GAMEDAY_CI` set).
// Integration tests start the real binaries, services and helper processes.
#![allow(clippy::disallowed_methods)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use gameday::grade::Verdict;
use gameday::render::{render, Format, ReportInput, TrendPoint};
use gameday::report::ScenarioReport;

/// A parsed XML element: just enough tree to check a JUnit file.
#[derive(Debug, Default)]
struct Element {
    name: String,
    attrs: BTreeMap<String, String>,
    children: Vec<Element>,
    text: String,
}

impl Element {
    fn attr(&self, name: &str) -> &str {
        self.attrs
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("<{}> has no attribute {name}", self.name))
    }

    fn all(&self, name: &str) -> Vec<&Element> {
        self.children.iter().filter(|c| c.name == name).collect()
    }

    fn one(&self, name: &str) -> &Element {
        let found = self.all(name);
        assert_eq!(found.len(), 1, "<{}> has one <{name}>", self.name);
        found[0]
    }
}

/// Parses XML with quick-xml into a tree, resolving entity references in text and attributes.
fn parse_xml(text: &str) -> Element {
    use quick_xml::events::{BytesStart, Event};
    use quick_xml::Reader;

    fn element(e: &BytesStart<'_>) -> Element {
        let mut el = Element {
            name: String::from_utf8(e.name().as_ref().to_vec()).unwrap(),
            ..Element::default()
        };
        for a in e.attributes() {
            let a = a.expect("well-formed attribute");
            el.attrs.insert(
                String::from_utf8(a.key.as_ref().to_vec()).unwrap(),
                a.unescape_value()
                    .expect("valid attribute value")
                    .into_owned(),
            );
        }
        el
    }

    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Element> = vec![Element::default()];
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(e) => stack.push(element(&e)),
            Event::Empty(e) => {
                let el = element(&e);
                stack.last_mut().unwrap().children.push(el);
            }
            Event::End(_) => {
                let el = stack.pop().unwrap();
                stack.last_mut().expect("balanced tags").children.push(el);
            }
            Event::Text(t) => stack
                .last_mut()
                .unwrap()
                .text
                .push_str(&t.decode().expect("UTF-8 text")),
            Event::GeneralRef(r) => {
                let c = match r.resolve_char_ref().expect("valid character reference") {
                    Some(c) => c,
                    None => match r.decode().expect("UTF-8 name").as_ref() {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "quot" => '"',
                        "apos" => '\'',
                        other => panic!("unknown entity &{other};"),
                    },
                };
                stack.last_mut().unwrap().text.push(c);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(stack.len(), 1, "every element closed");
    let mut doc = stack.pop().unwrap();
    assert_eq!(doc.children.len(), 1, "one root element");
    doc.children.pop().unwrap()
}

/// Whether a required tool is there: SKIPPED when it is not, except under CI where it fails.
fn tool(name: &str, package: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        let ci = std::env::var("GAMEDAY_CI").is_ok_and(|v| !v.is_empty());
        assert!(
            !ci,
            "{name} is required under CI: install Debian's {package} (./test.sh does)"
        );
        eprintln!("SKIPPED: {name} not found (Debian package {package}); that check did not run");
    }
    found
}

fn validate_with_xmllint(junit: &Path) {
    if !tool("xmllint", "libxml2-utils") {
        return;
    }
    let xsd = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/junit.xsd");
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&xsd)
        .arg(junit)
        .output()
        .expect("run xmllint");
    assert!(
        out.status.success(),
        "the JUnit file does not validate against {}:\n{}\n{}",
        xsd.display(),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(junit).unwrap_or_default()
    );
}

/// Screenshots `html` with headless Chromium; `None` when Chromium is missing outside CI.
fn screenshot(html: &Path, png: &Path) -> Option<PathBuf> {
    if !tool("chromium", "chromium") {
        return None;
    }
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1200,1600")
        .arg(format!("file://{}", html.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish its screenshot within 90s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    use std::io::Read as _;
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    assert!(
        status.success() && png.exists(),
        "chromium failed ({status}):\n{stderr}"
    );
    Some(png.to_path_buf())
}

/// Counts the plot's sample marks in a PNG: pixel columns holding a vertical run of 14 to 18
/// pixels of the ok (#2da44e) or failed (#e5332a) colour. Marks are 16 px tall; legend swatches
/// of the same colours are 12 px, and the PASS/FAIL badges use other shades (#1a7f37, #cf222e)
/// that the tight tolerance tells apart, so only a drawn plot counts. (Checked: the report with
/// its plots removed counts zero.)
fn plot_marks(png: &Path) -> (usize, usize, u32, u32) {
    let file = std::io::BufReader::new(std::fs::File::open(png).unwrap());
    let mut decoder = png::Decoder::new(file);
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a sane size")];
    let info = reader.next_frame(&mut buf).expect("a frame");
    let channels = info.color_type.samples();
    assert!(
        channels >= 3,
        "a colour screenshot, not {:?}",
        info.color_type
    );
    let (w, h) = (info.width as usize, info.height as usize);
    let near = |x: usize, y: usize, rgb: [i32; 3]| {
        let px = &buf[y * info.line_size + x * channels..];
        (0..3).all(|i| (i32::from(px[i]) - rgb[i]).abs() < 12)
    };
    let columns_with_marks = |rgb: [i32; 3]| {
        (0..w)
            .filter(|&x| {
                let mut run = 0;
                for y in 0..=h {
                    if y < h && near(x, y, rgb) {
                        run += 1;
                        continue;
                    }
                    if (14..=18).contains(&run) {
                        return true;
                    }
                    run = 0;
                }
                false
            })
            .count()
    };
    (
        columns_with_marks([0x2d, 0xa4, 0x4e]),
        columns_with_marks([0xe5, 0x33, 0x2a]),
        info.width,
        info.height,
    )
}

fn check_screenshot(html: &Path, png: &Path) {
    let Some(png) = screenshot(html, png) else {
        return;
    };
    let size = std::fs::metadata(&png).unwrap().len();
    assert!(
        size > 20_000,
        "a {size}-byte screenshot is too small to show a report"
    );
    let (green, red, w, h) = plot_marks(&png);
    eprintln!(
        "screenshot {}: {w}x{h}, {size} bytes; pixel columns with sample marks: {green} green, {red} red",
        png.display()
    );
    assert!(
        green >= 10,
        "the plot's ok samples are visible ({green} columns)"
    );
    assert!(
        red >= 10,
        "the plot's failed samples are visible ({red} columns)"
    );
}

#[test]
fn run_writes_junit_and_html_that_consumers_read() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // Restarted 400 ms after each kill: recovery takes ~0.4 s, over the 250 ms RTO, twice.
    let _service = supervised_service(dir.path(), port, "400ms");
    let file = ScenarioBuilder::new("reports <&> 'gate'")
        .rto("250ms")
        .repeat(2)
        .steady_state("600ms")
        .observe("3s")
        .cooldown("200ms")
        .agents(["local"])
        .fault(FaultBuilder::kill(dir.path().join("service.pid")))
        .probe(demo_http_probe(port).name("http <home>"))
        .write(dir.path().join("gate.toml"));
    let junit = dir.path().join("out.xml");
    let html = dir.path().join("report.html");
    let out = gameday(
        &[
            "run",
            "--local",
            "--output",
            "json",
            file.to_str().unwrap(),
            "--junit",
            junit.to_str().unwrap(),
            "--html",
            html.to_str().unwrap(),
        ],
        &[],
    );
    let (code, json, stderr) = report_of(out);
    let ctx = format!("stderr:\n{stderr}\nreport: {json:#}");
    assert_eq!(code, 1, "both runs breach the RTO: exit code 1; {ctx}");
    assert_eq!(json["runs"].as_array().map(Vec::len), Some(2), "{ctx}");
    for run in json["runs"].as_array().unwrap() {
        assert_eq!(run["verdict"], "FAIL", "{ctx}");
    }
    // The two repeats of one invocation: run N's id is the invocation's plus -N.
    let first = json["runs"][0]["run_id"].as_str().unwrap_or_default();
    let invocation = first.strip_suffix("-1").expect("run 1 is INVOCATION-1");
    assert_eq!(
        json["runs"][1]["run_id"],
        format!("{invocation}-2"),
        "{ctx}"
    );
    // Files for sharing get the user's umask, not a temporary file's 0600.
    let plain = new_file_mode(dir.path());
    assert_eq!(mode_of(&junit), plain, "the --junit file's mode");
    assert_eq!(mode_of(&html), plain, "the --html file's mode");

    // JUnit, parsed back.
    let xml = std::fs::read_to_string(&junit).expect("the --junit file was written");
    let root = parse_xml(&xml);
    assert_eq!(root.name, "testsuites");
    let suite = root.one("testsuite");
    assert_eq!(suite.attr("name"), "gameday.reports <&> 'gate'");
    assert_eq!(suite.attr("tests"), "2");
    assert_eq!(suite.attr("failures"), "2");
    assert_eq!(suite.attr("errors"), "0");
    assert_eq!(suite.attr("skipped"), "0");
    let props: BTreeMap<&str, &str> = suite
        .one("properties")
        .all("property")
        .iter()
        .map(|p| (p.attr("name"), p.attr("value")))
        .collect();
    assert_eq!(props.get("exit_code"), Some(&"1"));
    assert_eq!(props.get("verdict"), Some(&"FAIL"));
    assert_eq!(props.get("rto"), Some(&"250.0ms"));
    let cases = suite.all("testcase");
    assert_eq!(cases.len(), 2);
    for (i, case) in cases.iter().enumerate() {
        let run = &json["runs"][i];
        assert_eq!(case.attr("classname"), "gameday.reports <&> 'gate'");
        // Stable across invocations: the repeat and the probe, never the run id (a property).
        assert_eq!(
            case.attr("name"),
            format!("run {}: probe http <home>", i + 1)
        );
        assert_eq!(
            props.get(format!("run.{}.id", i + 1).as_str()).copied(),
            run["run_id"].as_str()
        );
        let recovery_us = run["grade"]["time_to_recover"]["us"]
            .as_u64()
            .unwrap_or_else(|| panic!("run {i} recovered; {ctx}"));
        let time: f64 = case.attr("time").parse().expect("time in seconds");
        assert!(
            (time - recovery_us as f64 / 1e6).abs() < 0.001,
            "the case's time is the recovery time: {time} vs {recovery_us}µs"
        );
        let failure = case.one("failure");
        assert_eq!(failure.attr("type"), "FAIL");
        let message = failure.attr("message");
        assert!(
            message.starts_with("RTO breached: probe http <home> recovered in ")
                && message.ends_with(", RTO 250.0ms"),
            "{message}"
        );
        assert!(
            failure.text.contains("time to recover: "),
            "{}",
            failure.text
        );
        let out = case.one("system-out");
        assert!(
            out.text.contains(&format!("run {} (", i + 1))
                && out.text.contains("probe http <home>"),
            "system-out is the run's text report: {}",
            out.text
        );
    }
    validate_with_xmllint(&junit);

    // HTML: self-contained, escaped, with a plot per run; then rendered for real.
    let page = std::fs::read_to_string(&html).expect("the --html file was written");
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert_eq!(page.matches("<svg class=\"timeline\"").count(), 2);
    assert!(page.contains("reports &lt;&amp;&gt; &#39;gate&#39;"));
    assert!(!page.contains("<home>"), "probe names are escaped");
    for banned in ["<script", "<link", "<img", "@import", "url("] {
        assert!(!page.contains(banned), "self-contained: no {banned}");
    }
    check_screenshot(&html, &dir.path().join("report.png"));

    // The same report with a history whose latest run regressed: the trend chart and its flag.
    let report: ScenarioReport = serde_json::from_value(json).expect("the JSON report parses");
    let mut trend: Vec<TrendPoint> = [420, 410, 430, 415, 425]
        .iter()
        .enumerate()
        .map(|(i, ms)| TrendPoint {
            run_id: format!("past-{i}"),
            started_unix_ms: 1_760_000_000_000 + i as u64 * 30 * 86_400_000,
            verdict: Verdict::Fail,
            recovery_us: Some(ms * 1000),
        })
        .collect();
    trend.push(TrendPoint {
        run_id: "latest".into(),
        started_unix_ms: 1_760_000_000_000 + 5 * 30 * 86_400_000,
        verdict: Verdict::Fail,
        recovery_us: Some(1_400_000),
    });
    let with_trend = render(&ReportInput::with_trend(&report, &trend), Format::Html);
    assert!(with_trend.contains("<svg class=\"trend\""));
    assert!(with_trend.contains("<b>REGRESSION:</b>"));
    let trend_html = dir.path().join("trend.html");
    std::fs::write(&trend_html, with_trend).unwrap();
    check_screenshot(&trend_html, &dir.path().join("trend.png"));
    if let Ok(keep) = std::env::var("GAMEDAY_KEEP_SCREENSHOTS") {
        for f in [
            "report.png",
            "trend.png",
            "report.html",
            "trend.html",
            "out.xml",
        ] {
            let _ = std::fs::copy(dir.path().join(f), Path::new(&keep).join(f));
        }
    }
}
