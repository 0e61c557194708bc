//! The HTML page of a failing seed renders in a real headless browser (Debian's chromium)
//! with a lane per node and the violation visible. Chromium is required: without it this
//! test fails and says how to install it (`apt-get install -y chromium`), it never passes
//! silently. Set `CHROMIUM` to use another binary.

use raft_sim::options::PlantedBugs;
use raft_sim::{Settings, html, run};
use std::path::PathBuf;
use std::process::Command;

fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return PathBuf::from(p);
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "chromium not found (PATH or $CHROMIUM): this test needs a headless browser; \
         install it with `apt-get install -y chromium`"
    );
}

#[test]
fn a_failing_seed_page_renders_lanes_and_the_violation_in_chromium() {
    let browser = chromium();
    let settings = Settings {
        trace: true,
        bugs: PlantedBugs {
            ack_before_durable: true,
            skip_durable_before_send_check: true,
            ..PlantedBugs::default()
        },
        ..Settings::default()
    };
    let (seed, report) = (0..5)
        .map(|s| (s, run(s, &settings)))
        .find(|(_, r)| r.violation.is_some())
        .expect("the planted bug is caught within 5 seeds");
    let v = report.violation.as_ref().expect("found above");
    let dir = std::env::temp_dir().join(format!("raft-sim-html-{}", std::process::id()));
    let profile = dir.join("profile");
    std::fs::create_dir_all(&profile).expect("a temp dir");
    let page = dir.join("page.html");
    std::fs::write(&page, html::page(&report, &format!("seed {seed}"))).expect("write the page");
    let out = Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(&page)
        .output()
        .unwrap_or_else(|e| panic!("cannot start chromium ({}): {e}", browser.display()));
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("data-rendered=\"yes\""),
        "the page's script ran to its end in chromium; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let slots = report.options.slots();
    assert!(
        dom.contains(&format!("data-lanes=\"{slots}\"")),
        "one lane per node slot ({slots})"
    );
    assert_eq!(dom.matches("class=\"lane\"").count() as u64, slots);
    assert!(
        dom.contains("id=\"violation-line\""),
        "the violation is marked on the chart"
    );
    let header = format!("VIOLATION at {:.6}s: {}", v.at_us as f64 / 1e6, v.property);
    assert!(
        dom.contains(&header),
        "the header names the violation: {header}"
    );
    assert!(dom.contains("class=\"m m-Msg"), "messages are drawn");
    let _ = std::fs::remove_dir_all(&dir);
}
