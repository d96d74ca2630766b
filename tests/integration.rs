//! Most integration tests as one test binary (issue 15 item 6): each `tests/NAME.rs` stays where
//! it is and is the module `NAME` here, so `cargo test --release --test integration -- NAME::`
//! runs one file's tests. One crate instead of one per file compiles the support modules once
//! and links one release binary; the harness runs several of its tests at a time
//! (`.cargo/test-runner.sh` says how many and why), since most of them wait on timers, child
//! processes, SMTP, MariaDB, PostgreSQL or a browser. The files that are not here, and why, are
//! listed in Cargo.toml beside their `[[test]]` entries.

// Each support module includes its own copy of the one it builds on (cli_support, mariadb and
// real_box each have support/box_process.rs, import_support has journal_common …) so that a
// test binary of its own can declare just that one; here that loads a few files twice.
#![allow(clippy::duplicate_mod)]

// The shared support, declared once for every file below (which says `use crate::NAME;`).
mod alarms_support;
#[path = "support/box_process.rs"]
mod box_process;
mod browser_support;
mod capture_support;
mod cli_support;
#[path = "web_support/differential.rs"]
mod differential;
#[path = "support/fault_proxy.rs"]
mod fault_proxy_support;
#[path = "web_support/hostile_pbx.rs"]
mod hostile_pbx;
mod import_support;
mod journal_common;
#[path = "support/mariadb.rs"]
mod mariadb;
#[path = "web_support/real_box.rs"]
mod real_box;
mod settings_support;
mod support;
mod uplink_support;
mod usb_support;
mod web_support;

// The test files, one module each.
mod alarms_mail;
mod alarms_report;
mod alarms_webhook;
mod calls_golden;
mod cli_check_config;
mod cli_demo;
mod cli_display;
mod cli_filters;
mod cli_help;
mod cli_live_config;
mod cli_settings;
mod codec_replay;
mod config_default;
mod config_validation;
mod crash_kill;
mod display_oled;
mod display_render;
mod docs_self_contained;
mod export_excel_libreoffice;
mod export_golden;
mod fault_proxy;
mod fuzz_regressions;
mod health_pbx_clock;
mod health_status;
mod import_cdr_db;
mod import_cli;
mod import_db_gaps;
mod import_e2e_browser;
mod import_master_csv;
mod import_run_db;
mod import_web;
mod journal_basic;
mod journal_file_modes;
mod journal_filter;
mod journal_memory;
mod people_counts_and_callers;
mod readme_setup;
mod record_roundtrip;
mod settings_roundtrip;
mod sim_calls;
mod sim_server;
mod startup_sigterm;
mod uplink_faults;
mod uplink_grafana;
mod uplink_pg;
mod uplink_server;
mod uplink_status_browser;
mod usb_export;
mod usb_watcher;
mod usb_watermark;
mod web_e2e_all_pages;
mod web_e2e_browser;
mod web_e2e_names;
mod web_e2e_people;
mod web_e2e_settings;
mod web_e2e_stats;
mod web_gate_differential;
mod web_hardening;
mod web_https;
mod web_routes;
mod web_server;

/// With `autotests = false` a new `tests/NAME.rs` runs only once a test binary includes it:
/// this fails until it is `mod NAME;` here or in tests/timing.rs, or a `[[test]]` of its own.
#[test]
fn every_test_file_is_in_a_test_binary() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |f: &str| {
        std::fs::read_to_string(root.join(f)).unwrap_or_else(|e| panic!("reading {f}: {e}"))
    };
    let listed = [
        read("tests/integration.rs"),
        read("tests/timing.rs"),
        read("Cargo.toml"),
    ]
    .concat();
    let dir = std::fs::read_dir(root.join("tests")).expect("reading tests/");
    for entry in dir {
        let name = entry.expect("an entry of tests/").file_name();
        let name = name.to_string_lossy();
        let Some(stem) = name.strip_suffix(".rs") else {
            continue;
        };
        assert!(
            listed.contains(&format!("\nmod {stem};"))
                || listed.contains(&format!("path = \"tests/{name}\"")),
            "tests/{name} is in no test binary: add `mod {stem};` to tests/integration.rs \
             (Cargo.toml's [[test]] list says which files are elsewhere and why)"
        );
    }
}
