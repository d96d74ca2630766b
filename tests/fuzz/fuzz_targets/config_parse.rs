//! Fuzz target: the config parser and validator (`cdrbox.toml`, the settings form). Any text
//! must give a config or typed problems, never a panic; an accepted config must also yield its
//! warnings and a PBX context (time zone, charset, trunk patterns) without panicking.
#![no_main]

use cdrbox::config::Config;
use cdrbox::runtime::context_of;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match Config::parse(&text, "fuzz") {
        Ok(c) => {
            let _ = c.warnings();
            for p in &c.pbx {
                let _ = context_of(p);
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
