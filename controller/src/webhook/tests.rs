//! Unit tests of webhooks: the JSON and Slack bodies, retries against a local receiver, TLS
//! with a private CA.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;

use super::*;
use crate::grade::Verdict;
use crate::report::{RunReport, ScenarioReport};

fn run(id: &str, verdict: Verdict, recover_us: Option<u64>) -> RunReport {
    let mut run = crate::fixtures::run(id, verdict, recover_us);
    run.reason = "recovered".into();
    run.targets = vec!["web-1".into()];
    if let Some(g) = &mut run.grade {
        g.reason = "recovered".into();
    }
    run
}

fn report(runs: Vec<RunReport>) -> ScenarioReport {
    ScenarioReport {
        file: "/etc/gameday/pause.toml".into(),
        ..crate::fixtures::scenario_report("demo-pause", 3_000_000, runs)
    }
}

fn firing() -> Firing {
    let t = DateTime::parse_from_rfc3339("2025-06-02T08:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    Firing {
        slot: t,
        started: t,
        finished: t,
        catch_up: false,
    }
}

#[test]
fn the_json_notice_carries_verdicts_figures_and_the_report_link() {
    let r = report(vec![
        run("run-a", Verdict::Pass, Some(1_200_000)),
        run("run-b", Verdict::Fail, Some(4_000_000)),
    ]);
    let n = Notice::finished("monthly", firing(), &r, None);
    let json: serde_json::Value = serde_json::from_slice(&n.body(WebhookFormat::Json)).unwrap();
    assert_eq!(json["event"], "finished");
    assert_eq!(json["schedule"], "monthly");
    assert_eq!(json["scenario"], "demo-pause");
    assert_eq!(json["verdicts"], serde_json::json!(["PASS", "FAIL"]));
    assert_eq!(json["run_ids"], serde_json::json!(["run-a", "run-b"]));
    assert_eq!(json["pass_rate"], 0.5);
    assert_eq!(json["exit_code"], 1);
    assert_eq!(json["result"], "breach");
    assert_eq!(json["verdict"], "FAIL");
    assert_eq!(
        json["summary"],
        "1 of 2 graded runs met the expectation (pass rate 50%, required 100%)"
    );
    assert_eq!(json["recovery_p50_us"], 1_200_000);
    assert_eq!(json["recovery_max_us"], 4_000_000);
    assert_eq!(json["slot"], "2025-06-02T08:00:00Z");
    assert_eq!(json["report"], "gameday report run-b");
    assert_eq!(n.outcome(), "PASS, FAIL");
    let linked = Notice::finished("monthly", firing(), &r, Some("https://r.example/{run_id}"));
    assert_eq!(linked.report.as_deref(), Some("https://r.example/run-b"));
}

#[test]
fn the_slack_text_says_what_happened() {
    let r = report(vec![run("run-a", Verdict::Pass, Some(1_200_000))]);
    let n = Notice::finished("monthly", firing(), &r, Some("https://r.example/{run_id}"));
    let json: serde_json::Value = serde_json::from_slice(&n.body(WebhookFormat::Slack)).unwrap();
    let text = json["text"].as_str().unwrap();
    assert_eq!(json.as_object().unwrap().len(), 1, "only text: {json}");
    assert!(
        text.starts_with(":white_check_mark: *gameday* schedule `monthly`"),
        "{text}"
    );
    assert!(text.contains("— *PASS*\n"), "{text}");
    assert!(
        text.contains(
            "\nruns: PASS — 1 of 1 graded run met the expectation (pass rate 100%, required 100%)\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("p50 1.200s") && text.contains("RTO 3.000s"),
        "{text}"
    );
    assert!(text.contains("<https://r.example/run-a|run-a>"), "{text}");
    let broken = Notice::invalid(
        "monthly",
        Path::new("/etc/gameday/pause.toml"),
        firing(),
        "pause.toml:3:1: unknown field".into(),
    );
    assert_eq!(broken.exit_code, 2);
    assert_eq!(broken.outcome(), "ERROR: pause.toml:3:1: unknown field");
    assert!(broken.text().starts_with(":x:") && broken.text().contains("unknown field"));
}

/// A receiver that answers the given statuses in turn and counts requests.
async fn receiver(statuses: Vec<u16>) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/hook?token=secret",
        listener.local_addr().unwrap()
    );
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let n = count.fetch_add(1, Ordering::SeqCst);
            let status = statuses.get(n).copied().unwrap_or(200);
            let service =
                hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| async move {
                    assert_eq!(
                        req.uri().path_and_query().unwrap().as_str(),
                        "/hook?token=secret"
                    );
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    serde_json::from_slice::<serde_json::Value>(&body).unwrap();
                    let mut r = hyper::Response::new(Full::new(Bytes::new()));
                    *r.status_mut() = StatusCode::from_u16(status).unwrap();
                    Ok::<_, std::convert::Infallible>(r)
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    });
    (url, seen)
}

fn quick() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        backoff: Duration::from_millis(10),
        timeout: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn a_failing_receiver_is_retried_and_a_refusal_is_not() {
    use std::sync::atomic::Ordering;
    let notice = Notice::finished("m", firing(), &report(vec![]), None);
    let (url, seen) = receiver(vec![503, 500]).await;
    let target = WebhookTarget::new(&url, WebhookFormat::Json, None, None).unwrap();
    assert_eq!(
        target.redacted(),
        format!("http://{}/...", url[7..].split('/').next().unwrap())
    );
    let client = WebhookClient::new(target, quick()).unwrap();
    assert_eq!(client.deliver(&notice).await.unwrap(), 3);
    assert_eq!(seen.load(Ordering::SeqCst), 3);

    let (url, seen) = receiver(vec![400]).await;
    let target = WebhookTarget::new(&url, WebhookFormat::Slack, None, None).unwrap();
    let e = WebhookClient::new(target, quick())
        .unwrap()
        .deliver(&notice)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("gave up after 1 attempt(s)"), "{e}");
    assert_eq!(seen.load(Ordering::SeqCst), 1);

    let (url, _) = receiver(vec![500, 500, 500]).await;
    let target = WebhookTarget::new(&url, WebhookFormat::Json, None, None).unwrap();
    let e = WebhookClient::new(target, quick())
        .unwrap()
        .deliver(&notice)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("gave up after 3 attempt(s)") && e.to_string().contains("500"),
        "{e}"
    );
}

#[tokio::test]
async fn an_https_webhook_trusts_its_ca_and_only_it() {
    use rustls::pki_types::PrivateKeyDer;
    let fleet = crate::certs::ephemeral_fleet(&[]).unwrap();
    let chain = CertificateDer::pem_slice_iter(fleet.controller.cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(fleet.controller.key.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let Ok(tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let service =
                hyper::service::service_fn(|_req: Request<hyper::body::Incoming>| async {
                    let mut r = hyper::Response::new(Full::new(Bytes::new()));
                    *r.status_mut() = StatusCode::NO_CONTENT;
                    Ok::<_, std::convert::Infallible>(r)
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &fleet.ca).unwrap();
    let notice = Notice::finished("m", firing(), &report(vec![]), None);
    let trusted = WebhookTarget::new(&url, WebhookFormat::Json, Some(&ca), None).unwrap();
    let client = WebhookClient::new(trusted, quick()).unwrap();
    assert_eq!(client.deliver(&notice).await.unwrap(), 1);
    let system_roots = WebhookTarget::new(&url, WebhookFormat::Json, None, None).unwrap();
    let e = WebhookClient::new(system_roots, quick())
        .unwrap()
        .deliver(&notice)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("TLS with 127.0.0.1"), "{e}");
}

#[tokio::test]
async fn nobody_listening_is_a_transport_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = WebhookTarget::new(
        &format!("http://127.0.0.1:{port}/"),
        WebhookFormat::Json,
        None,
        None,
    )
    .unwrap();
    let notice = Notice::finished("m", firing(), &report(vec![]), None);
    let e = WebhookClient::new(target, quick())
        .unwrap()
        .deliver(&notice)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("connecting to 127.0.0.1"), "{e}");
}
